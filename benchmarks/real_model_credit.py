"""Cost and agreement of the credit scorers on SmolLM2-135M-Instruct's own completions, against resampling.

The rows: held-out easy-arithmetic problems (``docs/real_model/easy_arith_test.jsonl``) whose measured pass
rate is in (0, 1) (``easy_arith_pass_rates.json``), ``--group`` completions each sampled at ``--temperature``
with ``--max-new-tokens`` (the two-shot prompt of :mod:`oarl.lab.math.easy_arith`), rewarded by the math reward
(math-verify of the final answer). Kept: the completions of groups whose rewards differ that have an answer
span and at least ``--min-steps`` reasoning steps, at most ``--max-rows``. When fewer than ``--min-rows`` are
found, the next held-out problems (pass rate not measured) are sampled too, ``--widen`` at a time.

Steps: runs of reasoning tokens ending at a newline token of the tokenizer (:func:`oarl.lab.bench.step_ends.step_token_ids`);
with ``--steps auto``, sentence ends (``.``, ``!``, ``?``) too when fewer than half of the candidate rows have
two newline steps.

Scored on the kept rows (one batch, one torch thread), timed: ``resample`` (VinePPO; the reference: per step,
``k`` continuations of up to ``--max-new-tokens`` at the sampling temperature; ``credit="aligned"`` and
``"abs"`` both come from one sampling run: the scorer's ``resample_values``, then its ``resample_credit``), ``tree`` (on the whole
groups, no model call), ``info_gain`` per token and per step, ``perturbation`` (exact OAR-P), ``gradient``
(OAR-G), ``entropy``, ``random``; next to one plain GRPO forward + backward of the policy over the same rows.

Agreement with resample, per row on the reasoning tokens: Spearman between the scorer's token scores and
resample's per-step value broadcast to its tokens; top-10% overlap (of the scorer's top 10% tokens, ties broken
at random, the share in resample's top 10%, ties included, over the smaller of the two sets); per step, the
scorer's scores summed per step against resample's ``|dV|`` (Spearman over rows with >= 3 steps, and whether
the scorer's top step is one of resample's top steps). Rows where resample is constant are left out (counted).
Means with a 95% t-interval over rows.

    OMP_NUM_THREADS=1 python benchmarks/real_model_credit.py

Everything computed is kept in ``--cache`` (the samples, then each scorer's scores as it finishes), so a
rerun continues where it stopped; ``--out`` (JSON) and ``--md`` (the tables) are rewritten at the end.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats
from tqdm.auto import tqdm

from oarl.batch.rollout_layout import encode_text_pairs
from oarl.core.layout import Layout
from oarl.core.scorers import get_scorer
from oarl.core.scorers.information.info_gain import cut_points
from oarl.core.scorers.resampling.resample import own_rewards, resample_credit, resample_values
from oarl.lab.bench.step_ends import SENTENCE_ENDS, step_token_ids
from oarl.lab.math.easy_arith import INSTRUCTION, SYSTEM_PROMPT
from oarl.lab.math.evaluation import sample_completions
from oarl.lab.math.prompts import PromptTemplate, build_prompt, render_prompt
from oarl.lab.math.rewards import check_answer
from oarl.lab.testbed.fidelity import summarize, top_overlap
from oarl.utils.atomic import atomic_write_json, atomic_write_text
from oarl.utils.threads import machine_description

SCORERS = ("tree", "info_gain", "info_gain_step", "perturbation", "gradient", "entropy", "random")
REFS = ("resample_abs", "resample_aligned")


def reward(text: str, reference: str) -> float:
    return float(bool(check_answer(text, reference).correct))


def sample(model, tok, a, cache: dict, save) -> dict:
    """Sample groups until enough rows are kept (cached per batch of prompts)."""
    problems = [json.loads(line) for line in Path(a.data).read_text(encoding="utf-8").splitlines() if line]
    rates = json.loads(Path(a.pass_rates).read_text(encoding="utf-8"))["pass_rates"]
    first = [i for i, p in enumerate(rates) if 0 < p < 1]
    rest = list(range(len(rates), len(problems)))
    batches = [first] + [rest[i : i + a.widen] for i in range(0, len(rest), a.widen)]
    template = PromptTemplate(instruction=INSTRUCTION, system_prompt=SYSTEM_PROMPT)
    samples = cache.setdefault("samples", [])
    for bi, idx in enumerate(batches):
        if bi < len(samples):
            continue
        if bi > 0 and count_candidates(samples, tok, a) >= a.min_rows:
            break
        if sum(len(s["problems"]) for s in samples) + len(idx) > a.max_prompts:
            break
        prompts = [render_prompt(build_prompt(problems[i]["question"], tok, template), tok) for i in idx]
        torch.manual_seed(a.seed + bi)
        comps = sample_completions(model, tok, prompts, n=a.group, max_new_tokens=a.max_new_tokens,
                                   batch_size=a.batch_size, temperature=a.temperature, progress=True)  # fmt: skip
        rewards = [[reward(c, problems[i]["answer"]) for c in cs] for i, cs in zip(idx, comps, strict=True)]
        samples.append({"problems": idx, "prompts": prompts, "completions": comps, "rewards": rewards,
                        "answers": [problems[i]["answer"] for i in idx]})  # fmt: skip
        save()
        print(f"sampled {len(idx)} prompts (batch {bi}): {count_candidates(samples, tok, a)} candidate rows")
    return cache


def groups_of(samples: list[dict]) -> list[dict]:
    """The groups with differing rewards."""
    out = []
    for s in samples:
        for i, p, cs, rs, ans in zip(s["problems"], s["prompts"], s["completions"], s["rewards"], s["answers"], strict=True):  # fmt: skip
            if min(rs) != max(rs):
                out.append({"problem": i, "prompt": p, "completions": cs, "rewards": rs, "answer": ans})
    return out


def group_layout(tok, groups: list[dict]) -> tuple[Layout, list[tuple[int, int]]]:
    prompts = [g["prompt"] for g in groups for _ in g["completions"]]
    comps = [c for g in groups for c in g["completions"]]
    gid = torch.arange(len(groups)).repeat_interleave(torch.tensor([len(g["completions"]) for g in groups]))
    rewards = torch.tensor([r for g in groups for r in g["rewards"]], dtype=torch.float32)
    lay = encode_text_pairs(tok, prompts, comps, group_ids=gid, rewards=rewards).layout
    where = [(gi, j) for gi, g in enumerate(groups) for j in range(len(g["completions"]))]
    return lay, where


def n_steps(lay: Layout, steps: tuple[int, ...]) -> torch.Tensor:
    """``[B]`` steps in each row's reasoning."""
    reasoning = lay.reasoning_mask.bool()
    after, _ = cut_points(lay.attention_mask.bool(), reasoning, steps, lay.input_ids)
    return torch.tensor([len(after[b][reasoning[b]].unique()) for b in range(len(after))])


def choose_steps(samples: list[dict], tok, a) -> tuple[tuple[int, ...], str]:
    newline = step_token_ids(tok)
    if a.steps == "newline":
        return newline, "newline"
    both = step_token_ids(tok, sentence_ends=SENTENCE_ENDS)
    if a.steps == "sentence":
        return both, "newline+sentence"
    lay, _ = group_layout(tok, groups_of(samples))
    ok = lay.answer_mask.any(-1) & lay.reasoning_mask.any(-1)
    two = (n_steps(lay, newline) >= 2) & ok
    return (newline, "newline") if int(two.sum()) * 2 >= int(ok.sum()) else (both, "newline+sentence")


def count_candidates(samples: list[dict], tok, a) -> int:
    if not groups_of(samples):
        return 0
    steps, _ = choose_steps(samples, tok, a)
    lay, _ = group_layout(tok, groups_of(samples))
    return int(candidates(lay, steps, a.min_steps).sum())


def candidates(lay: Layout, steps: tuple[int, ...], min_steps: int) -> torch.Tensor:
    ok = lay.answer_mask.any(-1) & lay.reasoning_mask.any(-1)
    return ok & (n_steps(lay, steps) >= min_steps)


def grpo_step_seconds(
    model, lay: Layout, adv: torch.Tensor, prompt_width: int, full_head: bool = False
) -> float:
    """One plain GRPO forward + backward of the policy over the rows (policy-gradient loss on the completion).
    The LM head only where a completion token is predicted (as TRL), or at every position (``full_head``)."""
    model.zero_grad(set_to_none=True)
    t0 = time.perf_counter()
    ids, am = lay.input_ids, lay.attention_mask
    keep = ids.shape[1] if full_head else ids.shape[1] - prompt_width + 1
    logits = model(
        input_ids=ids, attention_mask=am, position_ids=lay.position_ids, logits_to_keep=keep
    ).logits
    target = ids[:, prompt_width:]
    logp = (
        logits[:, -(ids.shape[1] - prompt_width + 1) : -1]
        .float()
        .log_softmax(-1)
        .gather(-1, target[..., None])
        .squeeze(-1)
    )
    comp = am[:, prompt_width:].bool()
    loss = -(logp * adv[:, None] * comp).sum() / comp.sum()
    loss.backward()
    seconds = time.perf_counter() - t0
    model.zero_grad(set_to_none=True)
    return seconds


def run_resample(
    model, tok, lay: Layout, refs: list[str], prompt_len: torch.Tensor, steps, a, seed: int
) -> tuple[dict, float]:
    """``resample``'s values measured once (:func:`resample_values`: the scorer's draws for this seed) and both
    credits computed from them as the scorer computes them (:func:`resample_credit`)."""

    def reward_fn(row: int, seqs: list[list[int]]) -> list[float]:
        texts = [tok.decode(s[int(prompt_len[row]) :], skip_special_tokens=True) for s in seqs]
        return [reward(t, refs[row]) for t in texts]

    t0 = time.perf_counter()
    values = resample_values(
        model,
        lay,
        reward_fn,
        torch.Generator().manual_seed(seed),
        k=a.k,
        max_new_tokens=a.max_new_tokens,
        temperature=a.temperature,
        eos_token_id=tok.eos_token_id,
        step_token_ids=steps,
        max_batch_sequences=a.max_batch_sequences,
    )
    own = own_rewards(lay, reward_fn)
    seconds = time.perf_counter() - t0
    rm = values.reasoning
    out = {}
    for credit in ("abs", "aligned"):
        s = resample_credit(values, credit, own)
        out[f"resample_{credit}"] = [s[b][rm[b]].tolist() for b in range(len(rm))]
    out["value_root"] = values.root.tolist()
    out["steps"] = [values.step_end[b][rm[b]].tolist() for b in range(len(rm))]  # each token's step (its end)
    return out, seconds


def agreement(scores: list[list[float]], ref: list[list[float]], steps: list[list[int]], ref_abs: list[list[float]],
              frac: float, seed: int) -> dict:  # fmt: skip
    rng = np.random.default_rng(seed)
    rho, top, rho_step, hit = [], [], [], []
    const = 0
    for s, r, st, ra in zip(scores, ref, steps, ref_abs, strict=True):
        s, r, st, ra = np.array(s), np.array(r), np.array(st), np.array(ra)
        if np.ptp(r) == 0:
            const += 1
            rho.append(float("nan"))
            top.append(float("nan"))
        else:
            rho.append(float(stats.spearmanr(s, r).statistic) if np.ptp(s) > 0 else 0.0)
            top.append(top_overlap(s, r, frac))  # the library's one definition (ties averaged)
        ids = np.unique(st)
        ssum = np.array([s[st == i].sum() for i in ids])
        rstep = np.array([ra[st == i][0] for i in ids])
        if np.ptp(rstep) > 0:
            best = set(np.nonzero(rstep == rstep.max())[0].tolist())
            hit.append(float(int(rng.choice(np.nonzero(ssum == ssum.max())[0])) in best))
            if len(ids) >= 3:
                rho_step.append(float(stats.spearmanr(ssum, rstep).statistic) if np.ptp(ssum) > 0 else 0.0)
    return {"spearman": summarize(rho), "top10_overlap": summarize(top), "step_spearman_vs_abs": summarize(rho_step),
            "top_step_hit_vs_abs": summarize(hit), "rows_reference_constant": const}  # fmt: skip


def fmt(d: dict) -> str:
    return "–" if d["n"] == 0 else f"{d['mean']:.2f} ± {d['ci95']:.2f}"


def tables(res: dict) -> str:
    grpo = res["cost"]["grpo_step"]["seconds_per_row"]
    lines = ["| scorer | s / row | ms / completion token | × GRPO step |", "|---|---|---|---|"]
    lines.append(
        f"| GRPO step (fwd + bwd) | {grpo:.3f} | {res['cost']['grpo_step']['ms_per_token']:.2f} | 1.00 |"
    )
    for name, c in res["cost"].items():
        if name != "grpo_step":
            lines.append(
                f"| `{name}` | {c['seconds_per_row']:.3f} | {c['ms_per_token']:.2f} | {c['x_grpo_step']:.2f} |"
            )
    for ref in REFS:
        n = res["agreement"][ref]["random"]["spearman"]["n"]
        lines += ["", f"Against `{ref}` ({n} rows where it is not constant; mean ± 95% t-interval):", "",
                  "| scorer | Spearman (tokens) | top-10% overlap | step Spearman vs abs | top step hit vs abs |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for name, g in res["agreement"][ref].items():
            lines.append(f"| `{name}` | {fmt(g['spearman'])} | {fmt(g['top10_overlap'])} | "
                         f"{fmt(g['step_spearman_vs_abs'])} (n={g['step_spearman_vs_abs']['n']}) | {fmt(g['top_step_hit_vs_abs'])} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--data", default="docs/real_model/easy_arith_test.jsonl")
    ap.add_argument("--pass-rates", default="docs/real_model/easy_arith_pass_rates.json")
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--batch-size", type=int, default=64, help="sequences per generate call")
    ap.add_argument("--min-rows", type=int, default=32)
    ap.add_argument("--max-rows", type=int, default=40)
    ap.add_argument("--min-steps", type=int, default=2)
    ap.add_argument("--widen", type=int, default=16, help="more held-out problems per widening")
    ap.add_argument("--max-prompts", type=int, default=96)
    ap.add_argument("--steps", choices=("auto", "newline", "sentence"), default="auto")
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--max-batch-sequences", type=int, default=64)
    ap.add_argument("--top", type=float, default=0.1)
    ap.add_argument("--methods", default=",".join(SCORERS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat-resample-seed", type=int, help="run resample again with this seed (its noise)")
    ap.add_argument("--machine-note", default="", help="what the JSON should say about the machine's load")
    ap.add_argument("--cache", default="runs/real_model_credit/cache.json")
    ap.add_argument("--out", default="docs/real_model/credit_cost_agreement.json")
    ap.add_argument("--md", default="docs/real_model/credit_cost_agreement_tables.md")
    a = ap.parse_args()

    from transformers import AutoModelForCausalLM

    from oarl.lab.models.resolve import resolve_model
    from oarl.utils.checkpoint import load_tokenizer

    torch.set_num_threads(1)
    t_start = time.perf_counter()
    path = resolve_model(a.model)
    tok = load_tokenizer(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    cache_path = Path(a.cache)
    cache = json.loads(cache_path.read_text(encoding="utf-8")) if cache_path.exists() else {}

    def save() -> None:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(cache_path, cache)

    sample(model, tok, a, cache, save)
    steps, step_kind = choose_steps(cache["samples"], tok, a)
    groups = groups_of(cache["samples"])
    full, where = group_layout(tok, groups)
    cand = candidates(full, steps, a.min_steps)
    keep = cand & (cand.cumsum(0) <= a.max_rows)
    kidx = keep.nonzero().flatten()
    print(
        f"steps: {step_kind}; {len(groups)} mixed groups, {int(cand.sum())} candidate rows, keeping {len(kidx)}"
    )
    prompts = [groups[where[i][0]]["prompt"] for i in kidx.tolist()]
    comps = [groups[where[i][0]]["completions"][where[i][1]] for i in kidx.tolist()]
    refs = [groups[where[i][0]]["answer"] for i in kidx.tolist()]
    rewards = full.rewards[kidx]
    pairs = encode_text_pairs(tok, prompts, comps, group_ids=full.group_ids[kidx], rewards=rewards)
    lay, width_p, prompt_len = pairs.layout, pairs.prompt_width, pairs.prompt_lengths
    comp_tokens = int(lay.attention_mask[:, width_p:].sum())
    group_mean = torch.stack([full.rewards[full.group_ids == g].mean() for g in full.group_ids[kidx]])
    adv = rewards - group_mean
    reasoning = lay.reasoning_mask.bool()
    n = len(kidx)

    scores = cache.setdefault("scores", {})
    seconds = cache.setdefault("seconds", {})
    if "grpo_step" not in seconds:
        grpo_step_seconds(model, lay, adv, width_p)  # warm-up
        seconds["grpo_step"] = min(grpo_step_seconds(model, lay, adv, width_p) for _ in range(2))
        save()
    if "grpo_step_full_head" not in seconds:
        seconds["grpo_step_full_head"] = min(
            grpo_step_seconds(model, lay, adv, width_p, True) for _ in range(2)
        )
        save()
    if "resample_abs" not in scores:
        out, secs = run_resample(model, tok, lay, refs, prompt_len, steps, a, a.seed)
        scores.update({k: out[k] for k in ("resample_abs", "resample_aligned")})
        cache["resample_steps"], cache["value_root"] = out["steps"], out["value_root"]
        seconds["resample"] = secs
        save()
    repeat = ["resample_abs_repeat", "resample_aligned_repeat"] if a.repeat_resample_seed is not None else []
    if repeat and "resample_abs_repeat" not in scores:  # the reference's own noise: another sampling seed
        out, secs = run_resample(model, tok, lay, refs, prompt_len, steps, a, a.repeat_resample_seed)
        scores.update({f"{k}_repeat": out[k] for k in ("resample_abs", "resample_aligned")})
        seconds["resample_repeat"] = secs
        save()
    for method in tqdm(a.methods.split(","), desc="scorers"):
        if method in scores:
            continue
        name = "info_gain" if method == "info_gain_step" else method
        opts = {"step_token_ids": steps} if method == "info_gain_step" else {}
        target = lay
        if name == "tree":  # the whole groups: the prefix tree needs every completion of the prompt
            target = full
        g = torch.Generator().manual_seed(a.seed)
        t0 = time.perf_counter()
        s = get_scorer(name)(model, target, generator=g, **opts)
        seconds[method] = time.perf_counter() - t0
        if name == "tree":
            s, rmask = s[kidx], full.reasoning_mask.bool()[kidx]
        else:
            rmask = reasoning
        scores[method] = [s[b][rmask[b]].tolist() for b in range(n)]
        save()
        print(method, f"{seconds[method]:.1f} s", flush=True)

    lengths = [len(r) for r in scores["resample_abs"]]
    for m in a.methods.split(","):
        assert [len(r) for r in scores[m]] == lengths, f"{m}: reasoning tokens differ from resample's"
    grpo = seconds["grpo_step"]
    cost = {"grpo_step": {"seconds": round(grpo, 3), "seconds_per_row": grpo / n, "ms_per_token": 1e3 * grpo / comp_tokens, "x_grpo_step": 1.0}}  # fmt: skip
    for m in ["grpo_step_full_head", "resample", *a.methods.split(",")]:
        cost[m] = {"seconds": round(seconds[m], 3), "seconds_per_row": seconds[m] / n,
                   "ms_per_token": 1e3 * seconds[m] / comp_tokens, "x_grpo_step": seconds[m] / grpo}  # fmt: skip
    agree = {}
    for ref in REFS:
        agree[ref] = {}
        for m in [
            *(["resample_abs"] if ref == "resample_aligned" else ["resample_aligned"]),
            *repeat,
            *a.methods.split(","),
        ]:
            agree[ref][m] = agreement(
                scores[m], scores[ref], cache["resample_steps"], scores["resample_abs"], a.top, a.seed
            )
    rows = []
    for j, i in enumerate(kidx.tolist()):
        gi, ci = where[i]
        rows.append({"problem": groups[gi]["problem"], "sample": ci, "reward": float(rewards[j]),
                     "completion": comps[j], "reasoning_tokens": lengths[j],
                     "steps": len(set(cache["resample_steps"][j])), "value_root": cache["value_root"][j]})  # fmt: skip
    res = {
        "what": __doc__.splitlines()[0],
        "command": "OMP_NUM_THREADS=1 python benchmarks/real_model_credit.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(a).items() if ap.get_default(k) != v),
        "machine": f"{machine_description()}, float32" + (f"; {a.machine_note}" if a.machine_note else ""),
        "settings": vars(a),
        "steps": step_kind, "step_token_count": len(steps),
        "prompts_sampled": sum(len(s["problems"]) for s in cache["samples"]),
        "mixed_groups": len(groups), "candidate_rows": int(cand.sum()), "rows": n,
        "rows_correct": int(rewards.sum()), "completion_tokens": comp_tokens,
        "reasoning_tokens": sum(lengths), "reasoning_steps": sum(r["steps"] for r in rows),
        "cost": cost, "agreement": agree, "row_details": rows,
        "wall_seconds_this_run": round(time.perf_counter() - t_start, 1),
    }  # fmt: skip
    atomic_write_json(a.out, res, indent=1)
    atomic_write_text(a.md, tables(res))
    print(tables(res))
    print(f"wrote {a.out} and {a.md}")


if __name__ == "__main__":
    main()
