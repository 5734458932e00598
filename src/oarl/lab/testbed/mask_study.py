"""What "masking a token" means for OAR-P on a real LM: the replacement changes the ranking how much?

OAR-P scores a reasoning token by how far the outcome probe moves when that token is replaced. The paper
replaces it with [PAD]. SmolLM2's pad token is ``<|im_end|>``, its end-of-turn marker, so there masking
inserts an end of message (the paper's open question 3). This module scores one row with several
replacements, plainly (one forward per masked copy, no caching), and compares each ranking with the others:

- ``token:<id>``: a replacement token (pad/eos, unk, a space, ...),
- ``mean_embedding``: the mean of the input embedding matrix at that position,
- ``delete``: the token removed (the sequence one shorter; the answer span moves with it).

``python -m oarl.lab.testbed.mask_study --model smollm2-135m --data PAIRS.jsonl --out FILE.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from itertools import combinations
from pathlib import Path

import torch
from torch import Tensor, nn

from oarl.batch.spans import completion_span_masks
from oarl.core.probes import outcome_probe, probe_divergence
from oarl.core.scorers import get_scorer
from oarl.lab.models.resolve import resolve_model
from oarl.lab.testbed.fidelity import row_fidelity, summarize
from oarl.utils.atomic import atomic_write_json
from oarl.utils.checkpoint import load_tokenizer


@torch.no_grad()
def masked_scores(
    model: nn.Module, ids: Tensor, reasoning: Tensor, answer: Tensor, variant: str, probe: str = "as_mean",
    chunk: int = 16,
) -> Tensor:  # fmt: skip
    """``[L]`` OAR-P scores of one unpadded row (``ids``, masks ``[L]``) with one replacement ``variant``."""
    ids, reasoning, answer = ids.unsqueeze(0), reasoning.bool(), answer.bool().unsqueeze(0)
    clean = outcome_probe(model(input_ids=ids).logits.float(), ids, answer, probe)
    positions = reasoning.nonzero().flatten().tolist()
    scores = torch.zeros(ids.shape[1])
    emb = model.get_input_embeddings().weight
    for start in range(0, len(positions), chunk):
        part = positions[start : start + chunk]
        n = len(part)
        if variant == "delete":
            keep = [torch.cat([torch.arange(t), torch.arange(t + 1, ids.shape[1])]) for t in part]
            b_ids = torch.stack([ids[0, k] for k in keep])
            b_ans = torch.stack([answer[0, k] for k in keep])
            other = outcome_probe(model(input_ids=b_ids).logits.float(), b_ids, b_ans, probe)
        elif variant == "mean_embedding":
            b_ids = ids.expand(n, -1)
            embeds = model.get_input_embeddings()(b_ids).clone()
            embeds[torch.arange(n), torch.tensor(part)] = emb.mean(0)
            other = outcome_probe(
                model(inputs_embeds=embeds).logits.float(), b_ids, answer.expand(n, -1), probe
            )
        elif variant.startswith("token:"):
            b_ids = ids.expand(n, -1).clone()
            b_ids[torch.arange(n), torch.tensor(part)] = int(variant.removeprefix("token:"))
            # the probe's targets are the clean answer tokens, also when a replaced token is one of them
            logits = model(input_ids=b_ids).logits.float()
            other = outcome_probe(logits, ids.expand(n, -1), answer.expand(n, -1), probe)
        else:
            raise ValueError(f"unknown mask variant {variant!r}: token:<id>, mean_embedding or delete")
        div = probe_divergence(clean.expand(n, *clean.shape[1:]), other, probe)
        scores[torch.tensor(part)] = div.float()
    return scores


def encode_row(tokenizer, prompt: str, completion: str) -> tuple[Tensor, Tensor, Tensor] | None:
    """``ids``, ``reasoning``, ``answer`` ``[L]`` of one pair; None without an answer span."""
    p = tokenizer(prompt, add_special_tokens=False, return_tensors="pt").input_ids[0]
    c = tokenizer(completion, add_special_tokens=False, return_tensors="pt").input_ids
    spans = completion_span_masks(tokenizer, c, torch.ones_like(c))
    if not bool(spans.found[0]):
        return None
    none = torch.zeros_like(p, dtype=torch.bool)
    return torch.cat([p, c[0]]), torch.cat([none, spans.reasoning[0]]), torch.cat([none, spans.answer[0]])


def compare(all_scores: dict[str, list[Tensor]], masks: list[Tensor]) -> dict:
    """Spearman / top-10% overlap of every pair of variants, summarized over rows."""
    out = {}
    for a, b in combinations(all_scores, 2):
        per = {"spearman": [], "top_overlap": []}
        for sa, sb, m in zip(all_scores[a], all_scores[b], masks, strict=True):
            f = row_fidelity(sa.unsqueeze(0), sb.unsqueeze(0), m.unsqueeze(0))
            per["spearman"] += f["spearman"]
            per["top_overlap"] += f["top_overlap"]
        out[f"{a} vs {b}"] = {k: summarize(v) for k, v in per.items()}
    return out


def main(argv: list[str] | None = None) -> int:
    from transformers import AutoModelForCausalLM

    ap = argparse.ArgumentParser(
        prog="python -m oarl.lab.testbed.mask_study", description=__doc__.splitlines()[0]
    )
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True, help="prompt/completion JSONL")
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument(
        "--tokens", default="pad,unk,space", help="replacement tokens: pad, unk, space or a token"
    )
    ap.add_argument("--variants", default="mean_embedding,delete", help="non-token variants to add ('' none)")
    ap.add_argument(
        "--scorers", default="", help="library scorers to rank beside the variants (default masks)"
    )
    ap.add_argument("--probe", default="as_mean")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    path = resolve_model(args.model)
    tok, model = load_tokenizer(path), AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    named = {"pad": tok.pad_token_id, "unk": tok.unk_token_id, "space": tok.convert_tokens_to_ids("Ġ")}
    variants = {}
    for name in (t.strip() for t in args.tokens.split(",") if t.strip()):
        tid = named.get(name, tok.convert_tokens_to_ids(name))
        if tid is None:
            raise ValueError(f"no token {name!r} in this tokenizer")
        variants[f"{name} ({tok.convert_ids_to_tokens(tid)!r})"] = f"token:{tid}"
    for v in (v.strip() for v in args.variants.split(",") if v.strip()):
        variants[v] = v
    scorers = [s.strip() for s in args.scorers.split(",") if s.strip()]
    with Path(args.data).open() as f:
        pairs = [json.loads(line) for line in f if line.strip()]
    rows = [r for r in (encode_row(tok, p["prompt"], p["completion"]) for p in pairs) if r is not None][
        : args.rows
    ]
    scores: dict[str, list[Tensor]] = {v: [] for v in [*variants, *(f"scorer {s}" for s in scorers)]}
    seconds = dict.fromkeys(scores, 0.0)
    for i, (ids, reasoning, answer) in enumerate(rows):
        for name, variant in variants.items():
            t0 = time.perf_counter()
            scores[name].append(masked_scores(model, ids, reasoning, answer, variant, args.probe))
            seconds[name] += time.perf_counter() - t0
        for s in scorers:
            t0 = time.perf_counter()
            layout = (ids[None], torch.ones_like(ids)[None], reasoning[None], answer[None])
            scorer = get_scorer(s)
            opts = {"probe": args.probe} if scorer.takes("probe") else {}  # entropy reads no probe
            out = scorer(model, *layout, generator=torch.Generator().manual_seed(0), **opts)
            scores[f"scorer {s}"].append(out[0].detach().float())
            seconds[f"scorer {s}"] += time.perf_counter() - t0
        print(f"row {i + 1}/{len(rows)}: {int(reasoning.sum())} reasoning tokens", flush=True)
    out = {"command": "python -m oarl.lab.testbed.mask_study " + " ".join(sys.argv[1:] if argv is None else argv),
           "rows": len(rows), "reasoning_tokens": [int(r[1].sum()) for r in rows], "seconds": seconds,
           "pairs": compare(scores, [r[1] for r in rows]),
           # per row, each variant's scores of the reasoning tokens (for later comparisons without rescoring)
           "scores": {v: [s[r[1]].tolist() for s, r in zip(sc, rows, strict=True)] for v, sc in scores.items()}}  # fmt: skip
    atomic_write_json(args.out, out, indent=1)
    for k, v in out["pairs"].items():
        print(f"{k:50s} Spearman {v['spearman']['mean']:.3f}  top-10% {v['top_overlap']['mean']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
