"""Where each credit family puts its weight on the flag task: mean gated weight per token role, decision recall.

For a shipped flag warm start (chatter ``some`` / ``none``): ``--prompts`` held-out problems, ``--group``
sampled completions each (the RL temperature), rewarded by the task. Each scorer scores the rows of the groups
whose rewards differ (the rows the trainer scores: a group rewarded alike has advantage 0) with the group
context in the layout (``tree`` reads it), and the study's gate (``RLSettings``: tau, beta, floor) turns the
scores into weights. Reported per scorer, over the reasoning tokens of those rows:

* ``weights``: the mean gated weight of the tokens of each role (token-weighted over rows; 1.0 = uniform):
  ``decision`` (the flag-decided operators, the oracle arm's tokens), then by ``token_roles`` for the rest:
  ``causal`` (values the answer reads), ``distractor``, ``chatter``, ``format``;
* ``decision_recall``: recall@k of the decision tokens (k = their number in the row), mean over rows;
* ``seconds``: scoring (and gating) time on one thread, and ``x_grpo_step``: that time over one GRPO forward + backward of
  the policy on the same rows (``grpo_step_seconds``; TRL's step also generates, which is not counted);
* ``token_passes``: decoder token positions run forward (a KV-cache decode step counts its new tokens),
  per scored row, next to the GRPO step's forward (the backward of the gradient scorers is not counted); the
  second models of ``prime`` / ``cdpo`` are counted too.

Every scorer gets the tokenizer (``hicra``) and what its declared needs ask for (``extra_models``): ``prime``'s
reference model is the model before the warm start (wordop: SmolLM2 without the adapter), or, on the flag task
(trained from scratch: no pre-SFT model), the warm model itself frozen, where PRIME's implicit reward is exactly 0
and its weights uniform by construction; ``cdpo``'s contrast pair is (warm, base) on wordop, a stand-in for the
paper's (tuned on correct, tuned on wrong) pair, and cdpo is skipped on the flag task (no second model). Each
scorer's entry carries a ``note`` saying so.

``resample`` (``k`` continuations from every prefix) is run on the first ``--resample-rows`` rows only and
reported with its row count; ``resample_step`` resamples from the end of every ``;`` step (as the study's
arm does), on the same rows. A run with ``--methods`` updates only those scorers of a level (the sampled
completions are the same for the same ``--seed``). One torch thread. Each level is written to ``--out`` when done (the levels not
measured in this run are kept), about 1.5 / 1.5 / 3.5 minutes for none / some / heavy.

    OMP_NUM_THREADS=1 python benchmarks/role_weights_credit.py --chatter some,none
    OMP_NUM_THREADS=1 python benchmarks/role_weights_credit.py --chatter heavy

``--task wordop`` measures SmolLM2's shipped word-operation warm start instead (one level, ``wordop``; the
decision is the operation word; ``--task wordop2`` the two-operation task's, both operation words): the real-LM study's H2 (weight on the decision) and, with ``--fidelity``, H3:
each scorer's per-row Spearman and top-10% overlap against exact OAR-P (``perturbation``, which must be among
``--methods``) and, for the scorers that draw (OAR-G's noise, ``info_gain``'s samples), the same against a
second draw of themselves (their seed-to-seed agreement).

    OMP_NUM_THREADS=1 python benchmarks/role_weights_credit.py --task wordop --prompts 16 --group 4 --fidelity \
        --methods perturbation,gradient,perturbation_linear,info_gain,tree,entropy,oracle,random \
        --out docs/real_lm_study/role_weights_wordop.json
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import torch

from oarl.batch.credit import score_and_gate
from oarl.batch.rollout_layout import encode_text_pairs
from oarl.batch.settings import OARSettings
from oarl.core.diagnostics import oracle_recall
from oarl.core.layout import Layout
from oarl.core.scorers import SCORERS, get_scorer
from oarl.lab.math.evaluation import generate_completions
from oarl.lab.testbed.experiment import load_policy, per_step_resampling
from oarl.lab.testbed.fidelity import row_fidelity, summarize
from oarl.lab.testbed.lora_warmstart import load_base
from oarl.lab.testbed.tasks import get_task_recipe
from oarl.lab.testbed.tasks.base import completion_token_mask, token_roles
from oarl.lab.testbed.tasks.flag_task import flag_recipe
from oarl.lab.testbed.warmstart import find_warm_start

#: New tokens per chatter level of each SmolLM2 word task (its task's ``completion_budget``).
BUDGETS = {name: get_task_recipe(name).make.completion_budget for name in ("wordop", "wordop2")}

ROLES = ("decision", "causal", "distractor", "chatter", "format")
METHODS = (
    "perturbation",
    "gradient",
    "entropy",
    "random",
    "tree",
    "ktae",
    "info_gain",
    "resample",
    "resample_step",
    "gtpo",
    "high_entropy",
    "stare",
    "anchor",
    "hicra",
    "prime",
    "cdpo",
)


@contextmanager
def token_passes(*models):
    """Count the token positions the decoders of ``models`` run forward inside the block: ``counter[0]``."""
    counter = [0]

    def hook(module, args, kwargs):
        x = kwargs.get("input_ids") if kwargs.get("input_ids") is not None else kwargs.get("inputs_embeds")
        x = x if x is not None else args[0]
        counter[0] += int(x.shape[0] * x.shape[1])

    handles = [
        m.get_decoder().register_forward_pre_hook(hook, with_kwargs=True)
        for m in {id(m): m for m in models}.values()
    ]
    try:
        yield counter
    finally:
        for h in handles:
            h.remove()


def grpo_step(model, ids, am, rows) -> tuple[float, int]:
    """Seconds and decoder token positions of one policy forward + backward on ``rows`` (the GRPO loss's
    cost without generation): the sum of the completion's log-probs, backpropagated."""
    ids, am = ids[rows], am[rows]
    model.zero_grad(set_to_none=True)
    with token_passes(model) as n:
        t0 = time.perf_counter()
        logp = model(input_ids=ids, attention_mask=am).logits[:, :-1].float().log_softmax(-1)
        logp.gather(-1, ids[:, 1:, None]).squeeze(-1).mul(am[:, 1:]).sum().backward()
        seconds = time.perf_counter() - t0
    model.zero_grad(set_to_none=True)
    return seconds, n[0]


def load(level: str, a: argparse.Namespace):
    """(task, RL settings, model, tokenizer, base) of the flag task's ``level`` warm start, or of SmolLM2's wordop
    one; ``base`` is the model before the warm start (wordop: SmolLM2 without the LoRA adapter), None for the
    flag task (its warm start is trained from a random initialisation: there is no pre-SFT model)."""
    base = None
    if a.task in BUDGETS:
        recipe = get_task_recipe(a.task)
        chatter = level.removeprefix(a.task).removeprefix("_") or "none"  # "wordop", "wordop_heavy", ...
        task = recipe.make(replace(recipe.config, chatter=chatter))
        ckpt = recipe.checkpoint(task, recipe.warm_start, a.cache_dir)
        meta = json.loads((Path(ckpt) / "oarl_warmstart.json").read_text(encoding="utf-8"))
        base = load_base(meta["sft"]["model"])[0].eval().requires_grad_(False)
        rl = replace(recipe.rl, max_completion_length=BUDGETS[a.task][chatter])  # chatter needs room
    else:
        recipe = flag_recipe()
        task = recipe.make(replace(recipe.config, chatter=level))
        ckpt = find_warm_start(task, recipe.warm_start, a.cache_dir)
        if ckpt is None:
            return None
        rl = recipe.rl
    model, tok = load_policy(ckpt)
    return task, rl, model.eval(), tok, base


def extra_models(name: str, model, base) -> tuple[dict, str | None]:
    """The models a scorer's declared needs ask for beyond the policy, and a note on what they are.

    ``prime`` (``reference_model``): the model before the warm start where there is one (wordop: the base
    SmolLM2), else the warm model itself, frozen: the policy then equals its reference, PRIME's implicit reward
    is exactly 0 and its weights are uniform by construction, not a measurement. ``cdpo`` (``contrast_models``):
    cDPO's pair is two models tuned on correct and on wrong rollouts, which no warm start has; on wordop the
    stand-in pair is (warm model, base model), the contrast of what the warm start learned; on the flag task
    there is no second model, and cdpo is skipped."""
    needs = SCORERS[name].needs
    if "reference_model" in needs:
        if base is not None:
            return {"reference_model": base}, "reference_model: the base model before the warm start"
        frozen = copy.deepcopy(model).requires_grad_(False)
        return {"reference_model": frozen}, (
            "reference_model: the warm model itself, frozen (no pre-SFT model); the implicit reward is 0, so "
            "the weights are uniform by construction, not a measurement"
        )
    if "contrast_models" in needs:
        if base is None:
            return (
                {},
                "skipped: no second model (the flag warm start has no pre-SFT model, no negative model)",
            )
        return {"contrast_models": (model, base)}, (
            "contrast_models: (warm model, base model), a stand-in for cDPO's (tuned on correct, tuned on wrong) pair"
        )
    return {}, None


def fidelity(scores: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor) -> dict:
    """Mean per-row Spearman and top-10% overlap of ``scores`` against ``reference`` over ``mask``'s tokens."""
    rows = mask.any(-1)
    f = row_fidelity(scores[rows], reference[rows], mask[rows])
    return {k: round(summarize(f[k])["mean"], 3) for k in ("spearman", "top_overlap")} | {
        "rows": summarize(f["spearman"])["n"]
    }


def measure(chatter: str, a: argparse.Namespace) -> dict:
    loaded = load(chatter, a)
    if loaded is None:
        return {"skipped": "no shipped or cached warm start"}
    task, rl, model, tok, base = loaded
    problems = task.problems(a.prompts, seed=40_000)
    prompts = [p.prompt for p in problems for _ in range(a.group)]
    answers = [p.answer for p in problems for _ in range(a.group)]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(a.seed)
        comps = generate_completions(
            model, tok, prompts, rl.max_completion_length, do_sample=True, temperature=rl.temperature
        )
    rewards = torch.tensor(task.reward(prompts, comps, answers), dtype=torch.float32)
    groups = torch.arange(a.prompts).repeat_interleave(a.group)
    spread = rewards.view(-1, a.group).std(-1).repeat_interleave(a.group) > 0
    pairs = encode_text_pairs(tok, prompts, comps)
    ids, am, reasoning, answer = pairs.layout.tensors
    P = pairs.prompt_width  # (left padded)
    keep = spread & reasoning.any(-1) & answer.any(-1)
    rm = reasoning & keep[:, None]
    an = answer & keep[:, None]
    decision = torch.zeros_like(rm)
    decision[:, P:] = completion_token_mask(tok, ids[:, :P], ids[:, P:], am[:, P:], task.decision_chars)
    decision &= rm
    role = {r: torch.zeros_like(rm) for r in ROLES[1:]}
    for b in range(len(comps)):
        n = int(am[b, P:].sum())
        for t, r in enumerate(token_roles(tok, prompts[b], ids[b, P : P + n].tolist(), task)):
            if r in role:
                role[r][b, P + t] = True
    role = {"decision": decision, **{r: m & rm & ~decision for r, m in role.items()}}
    layout = Layout(ids, am, rm, an, group_ids=groups, rewards=rewards)
    prompt_len = am[:, :P].sum(-1)

    def reward_fn(row: int, seqs: list[list[int]]) -> list[float]:
        texts = [tok.decode(s[int(prompt_len[row]) :], skip_special_tokens=True) for s in seqs]
        return task.reward([prompts[row]] * len(seqs), texts, [answers[row]] * len(seqs))

    step_seconds, step_passes = grpo_step(model, ids, am, keep)
    out = {
        "rows": int(keep.sum()),
        "groups_with_spread": int(spread.view(-1, a.group)[:, 0].sum()),
        "mean_reward": float(rewards.mean()),
        "grpo_step_seconds": round(step_seconds, 3),
        "grpo_step_token_passes_per_row": round(step_passes / max(int(keep.sum()), 1), 1),
        "scorers": {},
    }
    reference = None
    for name in a.methods.split(","):
        method = "resample" if name == "resample_step" else name
        lay = layout
        if method == "resample":  # the first rows only (k continuations from every prefix or step)
            few = keep & (keep.cumsum(0) <= a.resample_rows)
            lay = layout.replace(reasoning_mask=rm & few[:, None], answer_mask=an & few[:, None])
        own: dict = {}
        if method == "resample":  # the study's options (per step for resample_step), with this script's --k
            steps = per_step_resampling(tok, rl) if name == "resample_step" else {}
            own = {
                **steps,
                "k": a.k,
                "max_new_tokens": rl.max_completion_length,
                "eos_token_id": tok.eos_token_id,
                "temperature": rl.temperature,
            }
        models, note = extra_models(method, model, base)
        if note is not None and note.startswith("skipped"):
            out["scorers"][name] = {"skipped": note}
            print(chatter, name, note, flush=True)
            continue
        oar = rl.oar
        settings = OARSettings(
            method=method,
            probe=oar.probe,
            noise_std=oar.noise_std,
            tau=oar.tau,
            beta=oar.beta,
            floor=oar.floor,
            scorer_options=own or None,
        )
        others = [models.get("reference_model"), *models.get("contrast_models", ())]
        with token_passes(model, *[m for m in others if m is not None]) as passes:
            t0 = time.perf_counter()
            credit = score_and_gate(
                model,
                lay,
                settings,
                generator=torch.Generator().manual_seed(0),
                oracle_mask=decision,  # read by the ceiling arm (oracle) only: the decision tokens
                reward_fn=reward_fn,
                tokenizer=tok,
                **models,
            )
            seconds = time.perf_counter() - t0
        scores, w = credit.scores, credit.weights
        if name == "perturbation":
            reference = scores
        mask = lay.reasoning_mask
        rows = mask.any(-1)
        weights = {
            r: round(float(w[m & mask].mean()), 3) if (m & mask).any() else None for r, m in role.items()
        }
        recall = oracle_recall(scores[rows], decision[rows], mask[rows])
        out["scorers"][name] = {
            "weights": weights,
            "decision_recall": round(float(recall.nanmean()), 3),
            "rows": int(rows.sum()),
            "seconds": round(seconds, 2),
            "x_grpo_step": round(seconds / step_seconds * int(keep.sum()) / max(int(rows.sum()), 1), 2),
            "token_passes_per_row": round(passes[0] / max(int(rows.sum()), 1), 1),
            "grpo_step_seconds": out[
                "grpo_step_seconds"
            ],  # the step it is compared with (runs may be merged)
        } | ({"note": note} if note else {})
        if a.fidelity and reference is not None and method != "resample":
            fid = {"vs_exact_oar_p": fidelity(scores, reference, mask)}
            if "randomness" in SCORERS[method].needs:  # a second draw: the scorer's own noise
                again = get_scorer(method)(
                    model,
                    lay,
                    generator=torch.Generator().manual_seed(1),
                    reward_fn=reward_fn,
                    **settings.resolved_options(),
                )
                fid["vs_itself_seed1"] = fidelity(again, scores, mask)
            out["scorers"][name]["fidelity"] = fid
        print(chatter, name, out["scorers"][name], flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="flag", choices=("flag", *BUDGETS))
    ap.add_argument(
        "--chatter",
        default="heavy,some,none",
        help="flag: levels; wordop, wordop2: one level (none, the default, is reported as the task's name, e.g. "
        "'wordop'; heavy as 'wordop_heavy')",
    )
    ap.add_argument("--fidelity", action="store_true", help="agreement with exact OAR-P (needs perturbation)")
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--resample-rows", type=int, default=24)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache-dir", default="runs/cache")
    ap.add_argument("--out", default="docs/role_weights_credit_flag.json")
    a = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(a.out)
    result = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {}  # other levels are kept
    if a.task in BUDGETS:
        chatter = "none" if a.chatter == ap.get_default("chatter") else a.chatter
        if chatter not in BUDGETS[a.task]:
            ap.error(
                f"--task {a.task} takes one chatter level of {sorted(BUDGETS[a.task])}, got {a.chatter!r}"
            )
        levels = [a.task if chatter == "none" else f"{a.task}_{chatter}"]
    else:
        levels = a.chatter.split(",")
    for level in levels:
        t0 = time.perf_counter()
        new = measure(level, a)
        old = result.get(level, {})
        if (
            old.get("rows") == new.get("rows") and "scorers" in old
        ):  # the same completions: update these scorers
            new["scorers"] = {**old["scorers"], **new["scorers"]}
        result[level] = new
        result[level]["settings"] = {
            k: v for k, v in vars(a).items() if k not in ("out", "chatter", "methods")
        }
        result[level]["seconds"] = round(time.perf_counter() - t0, 1)
        out.write_text(json.dumps(result, indent=1), encoding="utf-8")
        print(f"wrote {out} ({level}: {result[level]['seconds']} s)")


if __name__ == "__main__":
    main()
