"""Why approximate OAR-P is harder on a trained model: how far and how non-linearly masking effects travel.

On the flag task's warm start (task-written completions, chatter lengthened to 60-80 characters), every
scorer below is compared with exact OAR-P (mean per-row Spearman, top-10% overlap):

* ``perturbation_horizon`` at horizons 0 / 4 / 16 / 64 (exact propagation for h positions after t, then
  only the direct paths to the probe): how far the effects that decide the ranking travel;
* ``perturbation_linear`` with its indirect part removed (direct paths only), as shipped (direct exact,
  indirect first order) and all-linear (``direct=False``): whether first-order propagation helps here;
* a replacement-distance sweep: the same model with the mask token's embedding moved to ``e_x + d`` for
  ``|d| = s |e_x|`` (every reasoning token set to ``x``), relative error of ``perturbation_linear`` against
  exact OAR-P at full Fisher rank: where the first-order step stops holding.

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/approx_trained.py  (~3 min; writes approx_trained.json)
"""

from __future__ import annotations

import copy
import statistics
from dataclasses import replace
from pathlib import Path

import torch

from oarl.core.layout import Layout
from oarl.core.scorers import SCORERS, perturbation_scores
from oarl.lab.testbed.fidelity import row_fidelity
from oarl.utils.atomic import atomic_write_json

MODEL = "runs/cache/flag-sft-c72f97c9661a"


def _batch(model_path: str, n: int, chatter: tuple[int, int]) -> dict:
    from oarl.lab.testbed.oracle import oracle_batch, scorable_rows
    from oarl.lab.testbed.tasks import flag
    from oarl.lab.testbed.tasks.flag_task import FlagTask, flag_recipe
    from oarl.utils.checkpoint import load_tokenizer

    tok = load_tokenizer(model_path)
    cfg = replace(flag_recipe().config, chatter=chatter, seed=flag_recipe().config.seed + 777)
    probs = flag.generate_problems(n, cfg)
    batch = oracle_batch(tok, [p.prompt for p in probs], [p.completion for p in probs], FlagTask(cfg))
    keep = scorable_rows(batch)
    return {k: v[keep] for k, v in batch.items()}


def _args(batch: dict) -> list[torch.Tensor]:
    return [batch[k] for k in ("input_ids", "attention_mask", "reasoning_mask", "answer_mask")]


def _fid(scores: torch.Tensor, ref: torch.Tensor, rm: torch.Tensor) -> dict:
    r = row_fidelity(scores, ref, rm)
    return {"spearman": statistics.mean(r["spearman"]), "top_overlap": statistics.mean(r["top_overlap"])}


def reach(model, batch: dict) -> dict:
    args, rm = _args(batch), batch["reasoning_mask"]
    ref = perturbation_scores(model, Layout(*args))
    out = {f"horizon h={h}": _fid(SCORERS["perturbation_horizon"](model, *args, horizon=h, copies_per_chunk=1),
                                  ref, rm) for h in (0, 4, 16, 64)}  # fmt: skip
    out["linear, direct paths only"] = _fid(
        SCORERS["perturbation_linear"](model, *args, indirect=False), ref, rm
    )
    out["linear (direct exact + indirect first order)"] = _fid(
        SCORERS["perturbation_linear"](model, *args), ref, rm
    )
    out["linear, all paths first order"] = _fid(
        SCORERS["perturbation_linear"](model, *args, direct=False), ref, rm
    )
    return out


def distance(base, batch: dict) -> dict:
    """Relative error of perturbation_linear (full rank) vs exact OAR-P as the replacement moves away."""
    ids, am, rm, an = _args(batch)
    x = int(ids[rm][0])
    ids = ids.where(~rm, torch.full_like(ids, x))
    mask = base.config.vocab_size - 1  # a token id reused as the replacement, its input embedding moved
    out = {}
    for s in (0.01, 0.1, 0.3, 1.0):
        model = copy.deepcopy(base).double()
        with torch.no_grad():
            w = model.get_input_embeddings().weight.clone()
            d = torch.randn(w.shape[1], generator=torch.Generator().manual_seed(0), dtype=w.dtype)
            w[mask] = w[x] + s * w[x].norm() * d / d.norm()
            model.set_input_embeddings(torch.nn.Embedding.from_pretrained(w))  # untied from the head
        ex = perturbation_scores(model, Layout(ids, am, rm, an), mask_token_id=mask)
        got = SCORERS["perturbation_linear"](model, ids, am, rm, an, mask_token_id=mask,
                                             fisher_rank=w.shape[0], fisher_top=w.shape[0])  # fmt: skip
        out[str(s)] = {"relative_error": float((got - ex)[rm].norm() / ex[rm].norm()), **_fid(got, ex, rm)}
    pad = model.config.pad_token_id
    w = base.get_input_embeddings().weight
    out["pad_distance_over_norm"] = float(((w[pad] - w[1:]).norm(dim=-1) / w[1:].norm(dim=-1)).mean())
    return out


def main() -> None:
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(1)
    model = AutoModelForCausalLM.from_pretrained(MODEL).eval()
    batch = _batch(MODEL, 12, (60, 80))
    res = {"model": MODEL, "rows": len(batch["input_ids"]),
           "mean_T": float(batch["reasoning_mask"].sum(-1).float().mean()), "reach": reach(model, batch)}  # fmt: skip
    res["distance"] = distance(model, _batch(MODEL, 4, (16, 24)))
    atomic_write_json(Path("benchmarks/results/approx_trained.json"), res, indent=1)
    print(res)


if __name__ == "__main__":
    main()
