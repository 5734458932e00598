"""The OAR-G fidelity study: every scorer x probe against exact OAR-P on the same probe, with costs.

Two settings, so a conclusion does not rest on one tiny model:

- a trained testbed checkpoint with sampled completions (oracle causal tokens known: recall@k, AUROC), and
- a random-init model of another shape (:func:`random_model`, e.g. ~30M parameters with a 32k vocabulary) on
  random token rows (rank agreement and cost only; there is no oracle).

:func:`noise_sweep` is the diagnosis: OAR-G's agreement with OAR-P as the noise std varies, in float32 and
float64, next to the embedding RMS.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from oarl.batch.rollout_layout import LAYOUT_KEYS
from oarl.core.layout import Layout
from oarl.core.scorers import get_scorer, perturbation_scores, shared_options
from oarl.core.scorers.gradient.variants import reasoning_rms
from oarl.lab.math.evaluation import generate_completions
from oarl.lab.testbed import oracle
from oarl.lab.testbed.fidelity import row_fidelity, scorer_fidelity, summarize

SHAPES: dict[str, dict[str, int]] = {
    # ~29M parameters (tied embeddings 16.4M + 4 layers x 3.2M), the vocabulary of Llama-2 / Mistral
    "30m": dict(
        vocab_size=32000,
        hidden_size=512,
        intermediate_size=1376,
        num_hidden_layers=4,
        num_attention_heads=8,
        num_key_value_heads=8,
    ),  # fmt: skip
    "tiny": dict(
        vocab_size=512,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    ),  # fmt: skip
}


def random_model(shape: str = "30m", seed: int = 0) -> nn.Module:
    """A random-init ``LlamaForCausalLM`` of a named :data:`SHAPES` entry (tied embeddings, pad id 0), eval mode."""
    from transformers import LlamaConfig, LlamaForCausalLM

    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; expected one of {sorted(SHAPES)}")
    torch.manual_seed(seed)
    config = LlamaConfig(
        **SHAPES[shape], max_position_embeddings=4096, pad_token_id=0, tie_word_embeddings=True
    )
    return LlamaForCausalLM(config).eval()


def random_batch(
    vocab_size: int, rows: int, prompt: int, reasoning: int, answer: int, seed: int = 0
) -> dict[str, Tensor]:
    """Rows of random tokens (ids >= 1, so never the pad/mask id 0): prompt, reasoning, answer; ``[B, L]`` each."""
    g = torch.Generator().manual_seed(seed)
    L = prompt + reasoning + answer
    ids = torch.randint(1, vocab_size, (rows, L), generator=g)
    reasoning_mask = torch.zeros(rows, L, dtype=torch.bool)
    reasoning_mask[:, prompt : prompt + reasoning] = True
    answer_mask = torch.zeros(rows, L, dtype=torch.bool)
    answer_mask[:, prompt + reasoning :] = True
    return {
        "input_ids": ids,
        "attention_mask": torch.ones(rows, L, dtype=torch.long),
        "reasoning_mask": reasoning_mask,
        "answer_mask": answer_mask,
    }


def task_batch(
    model: nn.Module,
    tokenizer,
    task,
    samples: int,
    seed: int = 0,
    max_new_tokens: int = 96,
    completions: str = "sample",
) -> dict[str, Tensor]:
    """An oracle batch of ``samples`` held-out problems, scorable rows only: sampled completions (temperature
    1) or the task's ``"gold"`` ones. A ValueError when no row has an answer span and oracle tokens."""
    problems = task.problems(samples, seed=30_000)
    prompts = [p.prompt for p in problems]
    if completions == "gold":
        texts = [p.completion for p in problems]
    else:
        torch.manual_seed(seed)
        texts = generate_completions(
            model, tokenizer, prompts, max_new_tokens, do_sample=True, temperature=1.0
        )
    batch = oracle.oracle_batch(tokenizer, prompts, texts, task)
    keep = oracle.scorable_rows(batch)
    if not keep.any():
        raise ValueError(f"none of {samples} {completions} completions has an answer span and oracle tokens")
    return {k: v[keep] for k, v in batch.items()}


def _layout(batch: Mapping[str, Tensor]) -> list[Tensor]:
    return [batch[k] for k in LAYOUT_KEYS]


def evaluate(
    model: nn.Module,
    batch: Mapping[str, Tensor],
    methods: Sequence[str],
    probes: Sequence[str],
    seed: int = 0,
    progress=None,
    other_mask_id: int | None = None,
    **options: object,
) -> dict[str, dict]:
    """``{probe: {method: metrics}}``: each scorer against exact OAR-P on the same probe.

    Metrics: ``spearman``, ``kendall``, ``top_overlap`` (t-interval summaries over rows), ``recall`` and
    ``auroc`` (when ``batch`` has an ``oracle_mask``), ``cost`` (seconds, token-passes) and ``cost_ratio``
    (seconds and units relative to the plain ``gradient`` scorer, when it is among ``methods``). The exact
    OAR-P row itself is included as ``perturbation`` (its cost is the reference's). With ``other_mask_id``,
    a row ``perturbation@other_mask`` gives exact OAR-P with that replacement token instead of the pad token:
    how much of OAR-P's ranking is specific to the mask token (a ceiling for any approximation's agreement).
    """
    out: dict[str, dict] = {}
    for probe in probes:
        reference = None  # exact OAR-P, the first row; its scores are the reference for the others
        rows: dict[str, dict] = {}
        names = ["perturbation", *([] if other_mask_id is None else ["perturbation@other_mask"])]
        for method in names + [m for m in methods if m != "perturbation"]:
            scorer = get_scorer(method.partition("@")[0])
            gen = torch.Generator().manual_seed(seed)
            extra = {"mask_token_id": other_mask_id} if method.endswith("@other_mask") else {}

            opts = shared_options(scorer.name, probe=probe, **{**options, **extra})

            def score_fn(b: dict, scorer=scorer, gen=gen, opts=opts) -> Tensor:
                return scorer(model, *_layout(b), generator=gen, **opts)

            r = scorer_fidelity(score_fn, reference, batch, model)
            if reference is None:
                reference = r["scores"]
            scores = r.pop("scores")
            r.pop("rows")
            if "oracle_mask" in batch:
                m = oracle.row_metrics(scores, batch)
                r["recall"], r["auroc"] = summarize(m["recall"].tolist()), summarize(m["auroc"].tolist())
                r["chance"] = summarize(m["chance"].tolist())
            rows[method] = r
            if progress is not None:
                progress(probe, method, r)
        base = rows.get("gradient", {}).get("cost")
        for r in rows.values():
            if base:
                r["cost_ratio"] = {
                    "seconds": r["cost"]["seconds"] / max(base["seconds"], 1e-12),
                    "units": r["cost"]["cost_units"] / max(base["cost_units"], 1e-12),
                }
        out[probe] = rows
    return out


def time_scorers(
    model: nn.Module,
    batch: Mapping[str, Tensor],
    methods: Sequence[str],
    probe: str = "as_mean",
    repeats: int = 3,
    **options: object,
) -> dict[str, float]:
    """Median seconds of each scorer on ``batch``, timed round-robin ``repeats`` times in this process (so a
    shared machine's load falls on every scorer alike). ``perturbation`` is included."""
    import statistics

    names = ["perturbation", *[m for m in methods if m != "perturbation"]]
    times: dict[str, list[float]] = {m: [] for m in names}
    for _ in range(repeats):
        for m in names:
            gen = torch.Generator().manual_seed(0)
            t0 = time.perf_counter()
            get_scorer(m)(model, *_layout(batch), generator=gen, **shared_options(m, probe=probe, **options))
            times[m].append(time.perf_counter() - t0)
    return {m: statistics.median(v) for m, v in times.items()}


def noise_sweep(
    model: nn.Module,
    batch: Mapping[str, Tensor],
    noises: Sequence[float],
    probe: str = "as_mean",
    dtypes: Sequence[torch.dtype] = (torch.float32, torch.float64),
    seed: int = 0,
) -> dict[str, object]:
    """OAR-G (``gradient``) agreement with exact OAR-P and oracle recall as the noise std varies.

    Returns ``{"embedding_rms": float, "rows": [{dtype, noise_std, relative_noise, spearman, top_overlap,
    recall?}]}``; ``relative_noise`` = noise std / embedding RMS of the reasoning tokens.
    """
    args = _layout(batch)
    rms = float(reasoning_rms(model, batch["input_ids"], batch["reasoning_mask"]).mean())
    reference = perturbation_scores(model, Layout(*args), probe=probe)
    rows = []
    original = next(model.parameters()).dtype
    try:
        for dtype in dtypes:
            model.to(dtype)
            for noise in noises:
                gen = torch.Generator().manual_seed(seed)
                scores = get_scorer("gradient")(model, *args, probe=probe, noise_std=noise, generator=gen)
                fid = row_fidelity(scores, reference, batch["reasoning_mask"])
                row = {"dtype": str(dtype).removeprefix("torch."), "noise_std": noise,
                       "relative_noise": noise / rms if rms > 0 else math.nan,
                       "spearman": summarize(fid["spearman"]), "top_overlap": summarize(fid["top_overlap"])}  # fmt: skip
                if "oracle_mask" in batch:
                    row["recall"] = summarize(oracle.row_metrics(scores, batch)["recall"].tolist())
                rows.append(row)
    finally:
        model.to(original)
    return {"embedding_rms": rms, "probe": probe, "rows": rows}
