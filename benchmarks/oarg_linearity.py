"""Why gradient scorers cannot match OAR-P's full ranking: how linear is the model over OAR-P's replacement?

For each of ``--rows`` sampled completions of the demo task and every reasoning token t, OAR-P replaces the
embedding e_t by e_mask. This script computes, per token:

- the exact KL (masked forward), and the Fisher quadratic form of the *exact* logit change (is the KL's
  second-order form the problem? Spearman of the two per row);
- the first-order logit change at the clean point, <grad z, e_mask - e_t> (what ``linearized`` uses);
- the midpoint-rule logit change, gradient taken with token t alone half-way to the mask (one forward and
  backward per token: costlier than OAR-P itself, the best a one-point path estimate can do);

and the per-row Spearman of each estimate's quadratic form with the exact KL, plus the distance
|e_mask - e_t| / |e_t|. Writes JSON. Usage:

    OMP_NUM_THREADS=1 python benchmarks/oarg_linearity.py --rows 24 --out docs/fidelity/linearity.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from scipy import stats
from transformers import AutoModelForCausalLM

from oarl.core.model import full_logits, position_ids_from_mask
from oarl.core.probes import probe_index
from oarl.core.scorers.gradient.linearized import coarse_logits, fisher_quadratic
from oarl.lab.testbed.demo import checkpoint_task, demo_warm_start
from oarl.lab.testbed.fidelity import summarize
from oarl.lab.testbed.fidelity_study import task_batch
from oarl.utils.checkpoint import load_tokenizer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="checkpoint (default: the demo warm start)")
    ap.add_argument("--rows", type=int, default=24)
    ap.add_argument("--classes", type=int, default=2, help="outcomes kept apart in the Fisher form (+ rest)")
    ap.add_argument("--out", default="docs/fidelity/linearity.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    path = args.model or str(demo_warm_start("runs/cache"))
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    batch = task_batch(model, load_tokenizer(path), checkpoint_task(path), args.rows * 2, seed=0)
    ids, am, rm, an = (batch[k] for k in ("input_ids", "attention_mask", "reasoning_mask", "answer_mask"))
    pos, valid = probe_index(an, "as_mean")
    E = model.get_input_embeddings()
    e_mask = E.weight[model.config.pad_token_id].detach()

    def zbar(e: torch.Tensor, a: torch.Tensor, P: torch.Tensor) -> torch.Tensor:
        out = model(inputs_embeds=e, attention_mask=a, position_ids=position_ids_from_mask(a)).logits
        return out[0, P].mean(0)

    per_row = {"quadratic_exact_dz": [], "first_order": [], "midpoint": [], "relative_distance": []}
    t0 = time.perf_counter()
    for b in range(min(args.rows, len(ids))):
        i, a, P = ids[b : b + 1], am[b : b + 1], pos[b][valid[b]]
        e0 = E(i).detach()
        with torch.no_grad():
            z0 = full_logits(model, i, a)[0, P].mean(0)
        p = z0.softmax(-1)
        top = p.topk(args.classes).indices
        rest = torch.ones_like(p, dtype=torch.bool)
        rest[top] = False
        coarse_p = torch.cat([p[top], p[rest].sum().view(1)])

        def coarse_change(dz: torch.Tensor, top=top, rest=rest, p=p) -> torch.Tensor:
            # the rest bucket's logit is a logsumexp: its change is the p-weighted mean change
            return torch.cat(
                [dz[..., top], ((dz[..., rest] * p[rest]).sum(-1) / p[rest].sum()).unsqueeze(-1)], -1
            )

        e = e0.clone().requires_grad_(True)
        c0 = coarse_logits(zbar(e, a, P).unsqueeze(0), args.classes)[0]
        grads0 = [torch.autograd.grad(c0[m], e, retain_graph=True)[0][0] for m in range(len(c0))]
        kl, quad, lin, mid, dist = [], [], [], [], []
        for t in rm[b].bool().nonzero().flatten().tolist():
            d = e_mask - e0[0, t]
            x = e0.clone()
            x[0, t] = e_mask
            with torch.no_grad():
                z1 = zbar(x, a, P)
            kl.append(float((p * (z0.log_softmax(-1) - z1.log_softmax(-1))).sum()))
            quad.append(float(fisher_quadratic(coarse_change(z1 - z0).view(1, 1, -1), coarse_p.view(1, -1))))
            lin_dz = torch.stack([(g[t] * d).sum() for g in grads0])
            lin.append(float(fisher_quadratic(lin_dz.view(1, 1, -1), coarse_p.view(1, -1))))
            x = e0.clone()
            x[0, t] = e0[0, t] + 0.5 * d
            x.requires_grad_(True)
            cm = coarse_logits(zbar(x, a, P).unsqueeze(0), args.classes)[0]
            mid_dz = torch.stack(
                [
                    (torch.autograd.grad(cm[m], x, retain_graph=True)[0][0, t] * d).sum()
                    for m in range(len(cm))
                ]
            )
            mid.append(float(fisher_quadratic(mid_dz.detach().view(1, 1, -1), coarse_p.view(1, -1))))
            dist.append(float(d.norm() / e0[0, t].norm()))
        for key, est in (("quadratic_exact_dz", quad), ("first_order", lin), ("midpoint", mid)):
            per_row[key].append(float(stats.spearmanr(kl, est).statistic))
        per_row["relative_distance"].append(sum(dist) / len(dist))
        print(b, {k: round(v[-1], 3) for k, v in per_row.items()}, flush=True)
    result = {
        "model": path,
        "rows": len(per_row["first_order"]),
        "fisher_classes": args.classes,
        "spearman_with_exact_kl": {k: summarize(v) for k, v in per_row.items() if k != "relative_distance"},
        "relative_distance": summarize(per_row["relative_distance"]),
        "seconds": time.perf_counter() - t0,
        "per_row": per_row,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "per_row"}, indent=2))


if __name__ == "__main__":
    main()
