"""Approximate OAR-P: fidelity to exact OAR-P vs cost, seconds per sequence vs T, oracle recall (flag task).

Parts (each writes its own JSON under --out, merged by benchmarks/approx_report.py):

* ``fidelity``: random-init Llama (the bench's tiny shape: vocab 49, hidden 128, 4 layers), random token
  rows (prompt 32, T reasoning, answer 4), per init std (0.02 = HF default: near-uniform attention, long
  indirect paths; 0.1: peaky attention, token-specific effects). Exact OAR-P is the reference; every
  approximation's per-row Spearman / top-10% overlap and its cost (seconds, forward token-passes).
* ``timing``: seconds per sequence vs T for naive, exact, each approximation and OAR-G (one row each T).
* ``oracle``: the flag task's warm start on task-written completions whose chatter is lengthened through the
  task's own ``chatter`` range (roles stay known); recall@k / AUROC of exact vs each approximation.

Run (one thread each; ~20 min per part on a shared 2-core machine):
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/approx_fidelity.py fidelity --lengths 256,1024
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/approx_fidelity.py timing --lengths 64,128,256,512,1024,2048,4096
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/approx_fidelity.py oracle --model runs/cache/flag-sft-latest
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from oarl.core.layout import Layout
from oarl.core.scorers import SCORERS, naive_perturbation_scores, perturbation_scores
from oarl.lab.testbed.fidelity import PassCounter, row_fidelity, summarize
from oarl.utils.atomic import atomic_write_json

# label -> (scorer name, options). Approximations: (a) span, (b) pre-rank, (c) refine and horizon.
APPROX = {
    "span w=16": ("perturbation_span", {"window": 16}),
    "span w=64": ("perturbation_span", {"window": 64}),
    "span w=64 linear": ("perturbation_span", {"window": 64, "spread": "linear"}),
    "prerank f=0.05": ("perturbation_prerank", {"fraction": 0.05}),
    "prerank f=0.2": ("perturbation_prerank", {"fraction": 0.2}),
    "refine w=32 f=0.03": ("perturbation_refine", {"window": 32, "fraction": 0.03, "spread": "linear"}),
    "horizon h=0 m=8": ("perturbation_horizon", {"horizon": 0, "copies_per_chunk": 8}),
    "horizon h=0 m=8 w=64": ("perturbation_horizon", {"horizon": 0, "copies_per_chunk": 8, "window": 64}),
    "horizon h=0 m=8 w=128": ("perturbation_horizon", {"horizon": 0, "copies_per_chunk": 8, "window": 128}),
    "horizon h=16 m=16 w=64": ("perturbation_horizon", {"horizon": 16, "copies_per_chunk": 16, "window": 64}),
    "linear r=4": ("perturbation_linear", {"fisher_rank": 4}),
    "linear r=8": ("perturbation_linear", {"fisher_rank": 8}),
    "linear r=16": ("perturbation_linear", {"fisher_rank": 16}),
    "linear r=8 all-linear": ("perturbation_linear", {"fisher_rank": 8, "direct": False}),
    "OAR-G noise 1e-3": ("gradient", {"noise_std": 1e-3}),
    "OAR-G noise 0.1": ("gradient", {"noise_std": 0.1}),
}
TIMED = (
    "span w=64",
    "prerank f=0.05",
    "refine w=32 f=0.03",
    "horizon h=0 m=8 w=64",
    "linear r=8",
    "OAR-G noise 1e-3",
)


def tiny_model(init: float, vocab: int = 49) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=128, intermediate_size=384, num_hidden_layers=4,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=8192, pad_token_id=0,
                      tie_word_embeddings=True, initializer_range=init)  # fmt: skip
    return LlamaForCausalLM(cfg).eval()


def random_rows(n: int, T: int, vocab: int = 49, prompt: int = 32, answer: int = 4, seed: int = 1) -> dict:
    g = torch.Generator().manual_seed(seed)
    L = prompt + T + answer
    ids = torch.randint(1, vocab, (n, L), generator=g)
    rm = torch.zeros(n, L, dtype=torch.bool)
    rm[:, prompt : prompt + T] = True
    an = torch.zeros_like(rm)
    an[:, prompt + T :] = True
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "reasoning_mask": rm, "answer_mask": an}


def _run(model, batch: dict, name: str, options: dict) -> tuple[torch.Tensor, PassCounter]:
    args = [batch[k] for k in ("input_ids", "attention_mask", "reasoning_mask", "answer_mask")]
    with PassCounter(model) as c:
        s = SCORERS[name](model, *args, generator=torch.Generator().manual_seed(0), **options)
    return s, c


def fidelity(a: argparse.Namespace) -> dict:
    out: dict = {"rows": a.n, "cases": []}
    for init in [float(x) for x in a.inits.split(",")]:
        model = tiny_model(init)
        for T in [int(x) for x in a.lengths.split(",")]:
            batch = random_rows(a.n, T)
            ref, c_ex = _run(model, batch, "perturbation", {})
            case = {"init": init, "T": T, "exact": {"seconds": c_ex.seconds / a.n, "units": c_ex.cost_units / a.n},
                    "approx": {}}  # fmt: skip
            for label, (name, opts) in _selected(a).items():
                s, c = _run(model, batch, name, opts)
                r = row_fidelity(s, ref, batch["reasoning_mask"])
                case["approx"][label] = {
                    "spearman": summarize(r["spearman"]), "top_overlap": summarize(r["top_overlap"]),
                    "seconds": c.seconds / a.n, "units": c.cost_units / a.n,
                    "cheaper_units": c_ex.cost_units / c.cost_units, "cheaper_seconds": c_ex.seconds / c.seconds,
                }  # fmt: skip
                print(init, T, label, {k: round(v["mean"], 3) if isinstance(v, dict) else round(v, 3)
                                       for k, v in case["approx"][label].items()}, flush=True)  # fmt: skip
            out["cases"].append(case)
            atomic_write_json(Path(a.out) / f"approx_fidelity{a.tag}.json", out, indent=1)
    return out


def timing(a: argparse.Namespace) -> dict:
    model = tiny_model(0.02)
    out: dict = {"seconds": {}}
    for T in [int(x) for x in a.lengths.split(",")]:
        batch = random_rows(1, T)
        row: dict = {}
        args = [batch[k] for k in ("input_ids", "attention_mask", "reasoning_mask", "answer_mask")]
        if T <= a.max_naive:
            t0 = time.perf_counter()
            naive_perturbation_scores(model, *args, copies_per_forward=32)
            row["naive"] = time.perf_counter() - t0
        if T <= a.max_exact:
            t0 = time.perf_counter()
            perturbation_scores(model, Layout(*args))
            row["exact"] = time.perf_counter() - t0
        for label in (t for t in TIMED if t in _selected(a)):
            name, opts = APPROX[label]
            row[label] = _run(model, batch, name, opts)[1].seconds
        out["seconds"][T] = row
        print(T, {k: round(v, 3) for k, v in row.items()}, flush=True)
        atomic_write_json(Path(a.out) / f"approx_timing{a.tag}.json", out, indent=1)
    return out


def oracle(a: argparse.Namespace) -> dict:
    from dataclasses import replace

    from transformers import AutoModelForCausalLM

    from oarl.lab.testbed.oracle import oracle_batch, row_metrics, scorable_rows
    from oarl.lab.testbed.tasks import flag
    from oarl.lab.testbed.tasks.flag_task import FlagTask, flag_recipe
    from oarl.utils.checkpoint import load_tokenizer

    model = AutoModelForCausalLM.from_pretrained(a.model).eval()
    tok = load_tokenizer(a.model)
    out: dict = {"model": str(a.model), "cases": []}
    base = flag_recipe().config
    for lo, hi in [tuple(int(v) for v in r.split("-")) for r in a.chatter.split(",")]:
        cfg = replace(base, chatter=(lo, hi), seed=base.seed + 777)
        probs = flag.generate_problems(a.n, cfg)
        batch = oracle_batch(tok, [p.prompt for p in probs], [p.completion for p in probs], FlagTask(cfg))
        keep = scorable_rows(batch)
        batch = {k: v[keep] for k, v in batch.items()}
        T = batch["reasoning_mask"].sum(-1).float().mean().item()
        case: dict = {"chatter": [lo, hi], "rows": int(keep.sum()), "mean_T": T, "scorers": {}}
        labels = ["exact", *_selected(a)]
        ref = None
        for label in labels:
            name, opts = ("perturbation", {}) if label == "exact" else APPROX[label]
            opts = _scale_options(opts, T)
            s, c = _run(model, batch, name, opts)
            m = row_metrics(s.where(batch["reasoning_mask"], 0.0), batch)
            ref = s if ref is None else ref
            fid = row_fidelity(s, ref, batch["reasoning_mask"])
            case["scorers"][label] = {
                "options": opts, "recall": summarize(m["recall"].tolist()), "auroc": summarize(m["auroc"].tolist()),
                "chance": summarize(m["chance"].tolist()), "spearman_vs_exact": summarize(fid["spearman"]),
                "seconds": c.seconds / len(s), "units": c.cost_units / len(s),
            }  # fmt: skip
            print(lo, hi, round(T), label, round(case["scorers"][label]["recall"]["mean"], 3),
                  round(case["scorers"][label]["spearman_vs_exact"]["mean"], 3), flush=True)  # fmt: skip
        out["cases"].append(case)
        atomic_write_json(Path(a.out) / f"approx_oracle{a.tag}.json", out, indent=1)
    return out


def _selected(a: argparse.Namespace) -> dict:
    """The approximations to run: ``--labels`` (comma-separated), else all of :data:`APPROX`."""
    if not a.labels:
        return APPROX
    unknown = set(a.labels.split(",")) - set(APPROX)
    if unknown:
        raise SystemExit(f"unknown labels {sorted(unknown)}; known: {list(APPROX)}")
    return {k: APPROX[k] for k in a.labels.split(",")}


def _scale_options(opts: dict, T: float) -> dict:
    """Window / chunk sizes given for T = 1024, scaled to a row of ``T`` tokens (at least 1)."""
    scale = T / 1024
    return {k: (max(1, math.ceil(v * scale)) if k in ("window",) else v) for k, v in opts.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("part", choices=("fidelity", "timing", "oracle"))
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--lengths", default="256,1024")
    p.add_argument("--inits", default="0.02,0.1")
    p.add_argument("--n", type=int, default=3, help="rows per case (fidelity) / problems (oracle)")
    p.add_argument("--max-naive", type=int, default=512)
    p.add_argument("--max-exact", type=int, default=1024)
    p.add_argument("--model", default="runs/cache/flag-sft-latest")
    p.add_argument("--labels", default="", help="comma-separated approximations to run (default: all)")
    p.add_argument("--tag", default="", help="suffix of the JSON file names (keeps earlier runs)")
    p.add_argument("--chatter", default="16-24,60-80", help="chatter length ranges (oracle part)")
    a = p.parse_args()
    torch.set_num_threads(1)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    {"fidelity": fidelity, "timing": timing, "oracle": oracle}[a.part](a)
    print(json.dumps({"part": a.part, "seconds": time.perf_counter() - t0}))


if __name__ == "__main__":
    main()
