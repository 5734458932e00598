"""Snapshot of the OAR step's outputs, to check that a refactor leaves them bit-identical.

On a tiny arithmetic-task model built from a config (random weights, one thread, fixed seeds) and one fixed batch
of 4 prompts x 2 completions (groups, rewards, a zero-advantage group, a row without an answer span, a row longer
than the model's context, a loss mask with holes, a non-finite advantage, oracle labels), it runs every registered
scorer (and plain GRPO, ``"none"``) through ``score_and_gate``, ``oar_token_advantages`` and ``OARStep`` (two
calls: the probe warm-up, then the probe) and saves every score tensor, weight, ``[B, T]`` advantage and metric.

    python benchmarks/step_snapshot.py --write before.pt     # on the code before the change
    python benchmarks/step_snapshot.py --check before.pt     # after: torch.equal on every tensor, == on metrics

Only the adapters at the top touch oarl's step API; a refactor updates them and nothing else. The timing metric
(``oar/scorer_seconds``, ``seconds``) is not compared.
"""

from __future__ import annotations

import argparse
import math
import sys

import torch

from oarl.batch.credit import score_and_gate
from oarl.batch.reshape import oar_token_advantages
from oarl.batch.rollout import Rollout
from oarl.batch.rollout_layout import encode_text_pairs
from oarl.batch.settings import OARSettings
from oarl.batch.step import OARStep
from oarl.core.scorers import SCORERS
from oarl.lab.testbed import tiny_model
from oarl.lab.testbed.tasks import arith

TIMING = ("oar/scorer_seconds", "seconds")
#: The scorers' own options that keep the snapshot quick (resampling samples k continuations per token).
OPTIONS = {"resample": {"k": 2, "max_new_tokens": 6}, "info_gain": {"max_copies": 8}}


# ---------------------------------------------------------------- adapters: the only code that calls the step API
# Written for the API of commit "Rollout / OARSettings" (issue 33); the snapshot in /work/notes/snapshot_before.pt
# was taken with the adapters of the commit before it (method strings, positional tensors).


def methods() -> list[str]:
    """Every method the snapshot runs (plain GRPO, a registered scorer since issue 33, first)."""
    # scorers that read a second model or the tokenizer (added after the snapshot) get no such input here
    later = {"reference_model", "contrast_models", "tokenizer"}
    return ["none", *[m for m in SCORERS if m != "none" and not SCORERS[m].needs & later]]


def make_settings(method: str, mask_token_id: int, **kw) -> OARSettings:
    options = OPTIONS.get(method)
    return OARSettings(
        method=method, noise_std=0.1, mask_token_id=mask_token_id, scorer_options=options, **kw
    )


def run_score_and_gate(model, layout, method, settings, gen, oracle, reward_fn, start):
    """``Credit`` of ``method`` on ``layout``."""
    return score_and_gate(
        model, layout, settings, generator=gen, oracle_mask=oracle, reward_fn=reward_fn, start=start
    )


def rollout_of(b: dict, advantages, reward_fn, **kw) -> Rollout:
    return Rollout(
        b["prompt_ids"],
        b["prompt_mask"],
        b["completion_ids"],
        b["completion_mask"],
        advantages,
        rewards=b["rewards"],
        loss_mask=b["loss_mask"],
        reward_fn=reward_fn,
        **kw,
    )


def run_reshape(model, tok, b, settings, gen, reward_fn):
    """``OARBatchResult`` of ``oar_token_advantages`` on the batch (zero-advantage rows skipped)."""
    rollout = rollout_of(
        b, b["advantages_nan"], reward_fn, group_ids=b["group_ids"], oracle_labels=b["oracle"]
    )
    return oar_token_advantages(model, tok, rollout, settings, gen)


def run_step(model, tok, b, method, mask_token_id, labeler, reward_fn):
    """Two ``OARStep`` calls with a one-step probe warm-up: ``[(adv, metrics), (adv, metrics)]``."""
    step = OARStep(make_settings(method, mask_token_id, probe_warmup_steps=1), seed=0, token_labeler=labeler)
    rollout = rollout_of(b, b["advantages"], reward_fn, num_generations=2)
    return [step(model, tok, rollout) for _ in range(2)]


# ---------------------------------------------------------------- the fixed batch


def build() -> tuple:
    """``(model, tokenizer, batch dict)``: the fixed inputs."""
    tok = tiny_model.build_tokenizer()
    model = tiny_model.build_tiny_model(
        tok, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, seed=0
    )
    model.eval()
    probs = arith.generate_problems(4, arith.ArithConfig(seed=1))
    prompts, comps = [], []
    for p in probs:
        reasoning, _, _ = p.completion.partition("ANSWER")
        wrong = f"{reasoning}ANSWER {p.answer + 1}"
        prompts += [p.prompt, p.prompt]
        comps += [p.completion, wrong]
    comps[5] = comps[5].replace("ANSWER", "")  # no answer span
    reasoning, _, answer = comps[6].partition("ANSWER")
    comps[6] = reasoning * 3 + "ANSWER" + answer  # the longest row: over the context limit below
    rewards = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0])  # group 1 (rows 2, 3): zero advantage
    r = rewards.view(-1, 2)
    adv = ((r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + 1e-4)).flatten()
    p = tok(prompts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    c = tok(comps, return_tensors="pt", padding=True, padding_side="right", add_special_tokens=False)
    lengths = p.attention_mask.sum(-1) + c.attention_mask.sum(-1)
    model.config.max_position_embeddings = int(lengths.max()) - 1  # row 6 is too long
    loss_mask = torch.ones_like(c.attention_mask)
    loss_mask[0, 2:4] = 0
    loss_mask[4, 0:2] = 0
    digits = torch.tensor(tok.convert_tokens_to_ids(list("0123456789")))
    oracle = torch.isin(c.input_ids, digits) & c.attention_mask.bool()
    adv_nan = adv.clone()
    adv_nan[7] = float("nan")
    batch = {
        "prompts": prompts,
        "completions": comps,
        "prompt_ids": p.input_ids,
        "prompt_mask": p.attention_mask,
        "completion_ids": c.input_ids,
        "completion_mask": c.attention_mask,
        "rewards": rewards,
        "advantages": adv,
        "advantages_nan": adv_nan,
        "group_ids": torch.arange(8) // 2,
        "loss_mask": loss_mask,
        "oracle": oracle,
    }
    return model, tok, batch


def labeler_for(oracle: torch.Tensor):
    def labeler(tokenizer, prompt_ids, completion_ids, completion_mask):
        return oracle.clone()

    return labeler


def reward_fn(row: int, sequences: list[list[int]]) -> list[float]:
    return [float((len(s) + row) % 3) for s in sequences]


def snapshot() -> dict:
    """Every entry by name: tensors and metric floats."""
    torch.set_num_threads(1)
    model, tok, b = build()
    out: dict = {}
    pairs = encode_text_pairs(
        tok, b["prompts"], b["completions"], group_ids=b["group_ids"], rewards=b["rewards"]
    )
    P = pairs.prompt_width
    oracle_layout = torch.zeros_like(pairs.layout.attention_mask, dtype=torch.bool)
    T = pairs.layout.attention_mask.shape[1] - P
    oracle_layout[:, P:] = b["oracle"][:, :T]
    for method in methods():
        settings = make_settings(method, tok.pad_token_id)
        torch.manual_seed(0)
        credit = run_score_and_gate(
            model,
            pairs.layout,
            method,
            settings,
            torch.Generator().manual_seed(1),
            oracle_layout,
            reward_fn,
            P,
        )
        if credit is not None:
            for k in ("scores", "weights", "nonfinite"):
                out[f"{method}/score_and_gate/{k}"] = getattr(credit, k)
        torch.manual_seed(0)
        res = run_reshape(model, tok, b, settings, torch.Generator().manual_seed(2), reward_fn)
        for k, v in vars(res).items():
            if k not in TIMING:
                out[f"{method}/reshape/{k}"] = v
        torch.manual_seed(0)
        steps = run_step(model, tok, b, method, tok.pad_token_id, labeler_for(b["oracle"]), reward_fn)
        for i, (adv, metrics) in enumerate(steps):
            out[f"{method}/step{i}/advantages"] = adv
            for k, v in metrics.items():
                if k not in TIMING:
                    out[f"{method}/step{i}/{k}"] = v
    return out


def same(a, b) -> bool:
    """Bit-identical: tensors of one dtype and shape, ``torch.equal`` (NaN where the other has NaN); values ``==``
    (NaN equals NaN)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)) or (a.dtype, a.shape) != (
            b.dtype,
            b.shape,
        ):
            return False
        if a.is_floating_point():
            return torch.equal(a.isnan(), b.isnan()) and torch.equal(
                a.masked_fill(a.isnan(), 0), b.masked_fill(b.isnan(), 0)
            )
        return torch.equal(a, b)
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--write", metavar="FILE")
    g.add_argument("--check", metavar="FILE")
    args = ap.parse_args(argv)
    snap = snapshot()
    if args.write:
        torch.save(snap, args.write)
        print(f"wrote {len(snap)} entries to {args.write}")
        return 0
    before = torch.load(args.check, weights_only=False)
    differ = [k for k in before if k not in snap or not same(before[k], snap[k])]
    new = [k for k in snap if k not in before]
    print(f"compared {len(before)} entries: {len(before) - len(differ)} identical, {len(differ)} differ")
    for k in differ:
        print(f"  DIFFERS: {k}")
    if new:
        print(f"{len(new)} new entries (not in the snapshot, not compared): {', '.join(new[:12])}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
