"""oarl against the authors' released fragment (``Valsure/Outcome-Grounded-Advantage-Reshaping``, ``OAR-main.py``).

The fragment has no licence file, so nothing of it is copied here: the ``authors_*`` functions are our own
re-statements of what its three functions compute (segment layout ``before + reasoning + conclude + answer``,
one row at a time, full-vocabulary logits), written so that each quirk can be switched on or off:

- ``authors_perturbation(..., append_answer=False)``: the masked copies are ``before + masked + conclude``
  (no answer), so AS-Mean / AS-Joint read the last ``A`` positions of a sequence that has no answer;
- ``authors_gradient``: OAR-G with ``model.zero_grad(set_to_none=True)`` and ``J.backward()``; its LT-Logits
  (``"last"``) reads the logits at the last position of the full sequence, i.e. after the answer;
- ``authors_gate(..., overwrite=True)``: ``threshold`` is reassigned inside the row loop, so row i > 0 is gated
  at the quantile level equal to row i-1's threshold value; ``np.log1p`` (NaN below -1); ``+1e-8`` terms.

The helpers the fragment calls but does not define (``get_pfinal_representation``, ``mean_answer_logits_...``,
``joint_logp_...``) are taken to read the same positions as the gradient function's inline helpers.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/paper_fidelity.py --rows 4 \
        --out docs/paper/paper_fidelity.json
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr

from oarl.batch.spans import completion_span_masks
from oarl.core.gating import bilevel_weights
from oarl.core.layout import Layout
from oarl.core.scorers.gradient.oar_g import gradient_scores
from oarl.core.scorers.masking.exact import perturbation_scores

PROBES = ("lt_logits", "as_mean", "as_joint")


def segments(tokenizer, prompt: str, completion: str) -> dict[str, list[int]] | None:
    """``before / reasoning / conclude / answer`` token ids of a pair (cut after the answer), or None."""
    p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    c = tokenizer(completion, add_special_tokens=False, return_tensors="pt")
    spans = completion_span_masks(tokenizer, c["input_ids"], c["attention_mask"])
    if not spans.found[0] or not spans.reasoning[0].any():
        return None
    ids = c["input_ids"][0].tolist()
    r = spans.reasoning[0].nonzero().flatten().tolist()
    a = spans.answer[0].nonzero().flatten().tolist()
    return {"before": p, "reasoning": ids[: r[-1] + 1], "conclude": ids[r[-1] + 1 : a[0]],
            "answer": ids[a[0] : a[-1] + 1]}  # fmt: skip


def layout_of(seg: dict[str, list[int]]) -> Layout:
    """The same row as an oarl :class:`Layout` (one row, no padding)."""
    parts = [seg[k] for k in ("before", "reasoning", "conclude", "answer")]
    ids = torch.tensor([sum(parts, [])])
    role = torch.tensor(sum(([i] * len(x) for i, x in enumerate(parts)), []))[None]
    return Layout(ids, torch.ones_like(ids), role == 1, role == 3)


def _probe(logits: torch.Tensor, ids: list[int], n: int, answer: list[int], probe: str) -> torch.Tensor:
    """The authors' probe on full logits ``[L, V]`` of a sequence whose first ``n`` tokens are used: LT-Logits
    at position ``n - 1``; AS-Mean / AS-Joint at the ``A`` positions ``n - A - 1 .. n - 2``."""
    A = len(answer)
    if probe == "lt_logits":
        return F.log_softmax(logits[n - 1], -1)
    at = logits[n - A - 1 : n - 1]
    if probe == "as_mean":
        return F.log_softmax(at.mean(0), -1)
    return F.log_softmax(at, -1).gather(-1, torch.tensor(answer)[:, None]).mean()


def _div(clean: torch.Tensor, other: torch.Tensor, probe: str) -> float:
    if probe == "as_joint":
        return float(clean - other)
    return float((clean.exp() * (clean - other)).sum())


@torch.no_grad()
def authors_perturbation(model, seg, pad_id: int, append_answer: bool) -> dict[str, list[float]]:
    """OAR-P as the fragment computes it, all three probes from one forward per masked copy (same math)."""
    before, reasoning, conclude, answer = (seg[k] for k in ("before", "reasoning", "conclude", "answer"))
    full = before + reasoning + conclude + answer
    n0 = len(full) - len(answer)  # the fragment's masked copies stop here
    clean_logits = model(torch.tensor([full])).logits[0].float()
    # Clean target: LT-Logits predicts the first answer token (position n0 - 1); the others read the answer.
    clean = {p: _probe(clean_logits, full, n0 if p == "lt_logits" else len(full), answer, p) for p in PROBES}
    out: dict[str, list[float]] = {p: [] for p in PROBES}
    for t in range(len(reasoning)):
        masked = list(full)
        masked[len(before) + t] = pad_id
        logits = model(torch.tensor([masked])).logits[0].float()  # causal: its prefix is the no-answer copy's
        for p in PROBES:
            n = len(full) if (append_answer and p != "lt_logits") else n0
            out[p].append(_div(clean[p], _probe(logits, masked, n, answer, p), p))
    return out


def authors_gradient(model, seg, probe: str, noise: torch.Tensor, eps: float = 1e-12) -> list[float]:
    """OAR-G as the fragment computes it (``noise``: ``[1, L, D]``, zero outside the reasoning), including
    ``zero_grad(set_to_none=True)`` and ``J.backward()`` on the model."""
    full = sum((seg[k] for k in ("before", "reasoning", "conclude", "answer")), [])
    ids, r0 = torch.tensor([full]), len(seg["before"])
    L = len(full)

    def read(logits):  # the fragment's "last" reads position L - 1: after the answer
        if probe == "lt_logits":
            return F.log_softmax(logits[L - 1], -1)
        return _probe(logits, full, L, seg["answer"], probe)

    with torch.no_grad():
        clean = read(model(input_ids=ids).logits[0].float())
    embeds = model.get_input_embeddings()(ids).detach().requires_grad_(True)
    model.zero_grad(set_to_none=True)
    noisy = read(model(inputs_embeds=embeds + noise).logits[0].float())
    if probe == "as_joint":
        J = clean - noisy
    else:
        p0 = clean.exp()
        J = (p0 * (torch.log(p0 + eps) - noisy)).sum()
    J.backward()
    sal = (embeds.grad[0] * embeds[0].detach()).sum(-1).abs()
    return sal[r0 : r0 + len(seg["reasoning"])].tolist()


def authors_gate(
    rows: list[np.ndarray], tau: float, beta: float, overwrite: bool
) -> tuple[list, list[float]]:
    """The fragment's gate over a batch of rows; returns the weights and the quantile level each row got."""
    threshold, weights, levels = tau, [], []
    for s in rows:
        level = threshold if overwrite else tau
        levels.append(float(level))
        with np.errstate(invalid="ignore"):
            x = np.log1p(s)
        lo, hi = x.min(), x.max()
        norm = (x - lo) / (hi - lo if hi > lo else 1.0)
        thr = np.quantile(norm, level)
        if overwrite:
            threshold = thr
        w = np.ones_like(norm)
        low = norm < thr
        w[low] = np.maximum(norm[low] / (thr + 1e-8), 0.1)
        w[~low] = 1.0 + beta * (norm[~low] - thr) / (1.0 - thr + 1e-8)
        w = w * (len(w) / (w.sum() + 1e-8)) if w.sum() > 0 else np.ones_like(w)
        weights.append(w)
    return weights, levels


def _suppressed(s: np.ndarray, level: float) -> float:
    """Share of a row's tokens below the gate's threshold (suppressed) at quantile ``level``."""
    with np.errstate(invalid="ignore"):
        x = np.log1p(s)
    norm = (x - x.min()) / (x.max() - x.min() if x.max() > x.min() else 1.0)
    return float(np.mean(norm < np.quantile(norm, level)))


def _rel(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def _rho(a, b) -> float:
    return float(spearmanr(a, b).statistic) if len(a) > 2 else math.nan


def measure(model, segs: list[dict], pad_id: int, noise_std: float = 1e-3, tau: float = 0.4) -> dict:
    """Every comparison of the page: OAR-P, OAR-G, the gate, the threshold overwrite, the ``.grad`` pollution."""
    out: dict = {"rows": len(segs), "reasoning_tokens": [len(s["reasoning"]) for s in segs]}
    oarp = {p: {"written": [], "appended": [], "rho_written": []} for p in PROBES}
    oarg = {p: {"same_noise_rho": [], "same_noise_rel": [], "seed_rho": []} for p in PROBES}
    ours_rows: dict[str, list] = {p: [] for p in PROBES}
    joint_below = 0
    for seg in segs:
        lay = layout_of(seg)
        r = lay.reasoning_mask[0]
        auth = {k: authors_perturbation(model, seg, pad_id, k == "appended") for k in ("written", "appended")}
        for p in PROBES:
            ours = perturbation_scores(model, lay, probe=p, mask_token_id=pad_id)[0, r].double().numpy()
            ours_rows[p].append(ours)
            oarp[p]["appended"].append(_rel(auth["appended"][p], ours))
            oarp[p]["written"].append(_rel(auth["written"][p], ours))
            oarp[p]["rho_written"].append(_rho(auth["written"][p], ours))
        joint_below += int((np.asarray(auth["appended"]["as_joint"]) < -1).sum())
        D = model.get_input_embeddings().weight.shape[1]
        for p in PROBES:
            g = torch.Generator().manual_seed(0)
            ours = gradient_scores(model, lay, probe=p, noise_std=noise_std, generator=g)[0, r].numpy()
            noise = torch.randn((1, r.numel(), D), generator=torch.Generator().manual_seed(0)) * noise_std
            theirs = authors_gradient(model, seg, p, noise * r[None, :, None].float())
            g1 = torch.Generator().manual_seed(1)
            other = gradient_scores(model, lay, probe=p, noise_std=noise_std, generator=g1)[0, r].numpy()
            oarg[p]["same_noise_rho"].append(_rho(theirs, ours))
            oarg[p]["same_noise_rel"].append(_rel(theirs, ours))
            oarg[p]["seed_rho"].append(_rho(other, ours))
    mean = lambda v: float(np.nanmean(v))  # noqa: E731
    out["oar_p"] = {p: {"max_rel_appended": max(v["appended"]), "max_rel_as_written": max(v["written"]),
                        "spearman_as_written": mean(v["rho_written"])} for p, v in oarp.items()}  # fmt: skip
    out["oar_g"] = {p: {k: mean(x) for k, x in v.items()} for p, v in oarg.items()}
    out["as_joint_scores_below_minus_1"] = joint_below
    out["as_joint_scores"] = int(sum(len(s["reasoning"]) for s in segs))
    gate: dict = {}
    for p in PROBES:
        rows = ours_rows[p]
        theirs, _ = authors_gate(rows, tau, 2.0, overwrite=False)
        nan_rows = sum(bool(np.isnan(w).any()) for w in theirs)
        finite = [(w, s) for w, s in zip(theirs, rows, strict=True) if not np.isnan(w).any()]
        diff = [float(np.abs(w - bilevel_weights(torch.tensor(s)[None], torch.ones(1, len(s), dtype=torch.bool),
                tau)[0].double().numpy()).max()) for w, s in finite]  # fmt: skip
        over, levels = authors_gate(rows, tau, 2.0, overwrite=True)
        boosted = [float(np.mean(w > 1.0)) for w in over[1:]]  # after renormalising to sum T
        suppressed = [_suppressed(s, lv) for s, lv in zip(rows[1:], levels[1:], strict=True)]
        suppressed_tau = [_suppressed(s, tau) for s in rows[1:]]
        gate[p] = {"max_abs_diff": max(diff) if diff else math.nan, "nan_rows": nan_rows,
                   "overwrite_levels": levels, "overwrite_boosted_share_later_rows": boosted,
                   "suppressed_share_later_rows": {"overwritten": suppressed, "tau": suppressed_tau}}  # fmt: skip
    out["gate"] = gate
    out["grad"] = grad_pollution(model, segs[0], noise_std)
    return out


def grad_pollution(model, seg, noise_std: float) -> dict:
    """What each OAR-G leaves in the parameters' ``.grad`` after a policy-loss backward."""
    lay = layout_of(seg)
    params = [q for q in model.parameters() if q.requires_grad]

    def policy_grad():
        model.zero_grad(set_to_none=True)
        logits = model(lay.input_ids).logits[0, :-1]
        F.cross_entropy(logits, lay.input_ids[0, 1:]).backward()
        return [q.grad.clone() for q in params]

    before = policy_grad()
    gradient_scores(model, lay, noise_std=noise_std, generator=torch.Generator().manual_seed(0))
    ours_same = all(torch.equal(q.grad, b) for q, b in zip(params, before, strict=True))
    noise = torch.randn((1, lay.input_ids.shape[1], before[0].shape[-1])) * noise_std
    authors_gradient(model, seg, "as_mean", noise * lay.reasoning_mask[0, None, :, None].float())
    after = [q.grad for q in params]
    kept = sum(
        float((a.double() * b.double()).sum()) for a, b in zip(after, before, strict=True) if a is not None
    )
    norm = lambda gs: math.sqrt(sum(float(g.double().pow(2).sum()) for g in gs if g is not None))  # noqa: E731
    model.zero_grad(set_to_none=True)
    return {"oarl_grad_unchanged": ours_same, "policy_grad_norm": norm(before),
            "authors_grad_norm_after": norm(after), "policy_grad_share_kept": kept / norm(before) ** 2,
            "params_with_grad_after": sum(a is not None for a in after), "params": len(params)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--pairs", default="docs/real_model/easy_arith_pairs.jsonl")
    ap.add_argument("--rows", type=int, default=4)
    ap.add_argument("--out", default="docs/paper/paper_fidelity.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from oarl.lab.models import resolve_model

    path = resolve_model(args.model)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(path)
    segs = []
    for line in Path(args.pairs).read_text().splitlines():
        pair = json.loads(line)
        seg = segments(tok, pair["prompt"], pair["completion"])
        if seg is not None and len(seg["reasoning"]) >= 4:
            segs.append(seg)
        if len(segs) == args.rows:
            break
    start = time.perf_counter()
    res = measure(model, segs, int(model.config.pad_token_id))
    res.update(model=args.model, pairs=args.pairs, seconds=round(time.perf_counter() - start, 1),
               torch_threads=1, command=f"python benchmarks/paper_fidelity.py --rows {args.rows}")  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
