"""The resampling scorer (VinePPO): a cached sampler and one value per cut == a slow loop of plain forwards."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
import torch
from conftest import layout, tiny_lm
from test_trainer import COMMON, make_trainer, task  # noqa: F401  (task is a fixture)
from trl.trainer.utils import is_async_callable

from oarl.core.layout import Layout
from oarl.core.scorers import get_scorer
from oarl.core.scorers.resampling.resample import sample_continuations

ROWS = [(3, 4, 2), (2, 5, 0)]
EOS = 7


def reward(row: int, seqs: list[list[int]]) -> list[float]:
    """A reward that depends on the sampled tokens: the last token's residue, plus the length's."""
    return [float(s[-1] % 3) + 0.5 * (len(s) % 2) for s in seqs]


def slow_sample(model, prefixes: list[list[int]], k: int, n: int, eos: int, g) -> list[list[list[int]]]:
    """No cache: a full forward of all left-padded sequences per step (finished ones keep drawing, as the
    scorer does)."""
    seqs = [p for p in prefixes for _ in range(k)]
    out: list[list[int]] = [[] for _ in seqs]
    done = torch.zeros(len(seqs), dtype=torch.bool)
    for i in range(n):
        width = max(len(s) for s in seqs)
        ids = torch.tensor([[0] * (width - len(s)) + s for s in seqs])
        am = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs])
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=am, position_ids=(am.cumsum(-1) - 1).clamp(min=0))
        tok = torch.multinomial(logits.logits[:, -1].float().softmax(-1), 1, generator=g).squeeze(-1)
        for j in (~done).nonzero().flatten().tolist():
            out[j].append(int(tok[j]))
        done |= tok == eos
        if bool(done.all()) or i == n - 1:
            break
        seqs = [s + [int(t)] for s, t in zip(seqs, tok, strict=True)]
    return [[prefixes[c] + out[c * k + j] for j in range(k)] for c in range(len(prefixes))]


def brute_force(model, ids, am, rm, k, n, g, credit="aligned", per_batch=None) -> torch.Tensor:
    out = torch.zeros(ids.shape, dtype=torch.float64)
    rows = {}
    for b in range(len(ids)):
        cols = [j for j in range(ids.shape[1]) if am[b, j]]
        r = [j for j in cols if rm[b, j]]
        rows[b] = (cols, r)
    cuts = [
        (b, c)
        for b, (cols, r) in rows.items()
        for c in sorted({*r, *(max(j for j in cols if j < t) for t in r)})
    ]
    per_batch = per_batch or len(cuts)
    values = {}
    for i in range(0, len(cuts), per_batch):
        chunk = cuts[i : i + per_batch]
        prefixes = [[int(ids[b, j]) for j in rows[b][0] if j <= c] for b, c in chunk]
        for (b, c), seqs in zip(chunk, slow_sample(model, prefixes, k, n, EOS, g), strict=True):
            values[b, c] = sum(reward(b, seqs)) / k
    for b, (cols, r) in rows.items():
        root = values[b, max(j for j in cols if j < r[0])]
        own = reward(b, [[int(ids[b, j]) for j in cols]])[0]
        for t in r:
            dv = values[b, t] - values[b, max(j for j in cols if j < t)]
            out[b, t] = dv * ((own > root) - (own < root)) if credit == "aligned" else abs(dv)
    return out


@pytest.mark.parametrize("credit,batch", [("aligned", 1024), ("abs", 1024), ("aligned", 6)])
def test_matches_a_slow_loop(credit, batch):
    """Cached, batched sampling of every row's cuts == full forwards of the same left-padded batches
    (``batch`` = 6 sequences: two cuts of k = 3 per batch, so the chunking is exercised too)."""
    model = tiny_lm("llama", vocab=12)
    ids, am, rm, an = layout(ROWS, vocab=12, pad_side="left")
    got = get_scorer("resample")(
        model, ids, am, rm, an, generator=torch.Generator().manual_seed(3), reward_fn=reward,
        k=3, max_new_tokens=5, eos_token_id=EOS, credit=credit, max_batch_sequences=batch,
    )  # fmt: skip
    want = brute_force(model, ids, am, rm, 3, 5, torch.Generator().manual_seed(3), credit, batch // 3)
    torch.testing.assert_close(got.double(), want, rtol=0, atol=1e-6)
    assert (got[rm] != 0).sum() >= 3 and (got[~rm] == 0).all()


def test_the_sampler_stops_at_eos_and_keeps_it():
    model = tiny_lm("llama", vocab=12)
    g = torch.Generator().manual_seed(0)
    (seqs,) = sample_continuations(model, [torch.tensor([1, 2, 3])], 16, 6, 1.0, EOS, g)
    assert all(s[:3] == [1, 2, 3] and 3 < len(s) <= 9 for s in seqs)
    assert all(EOS not in s[3:-1] for s in seqs) and any(s[-1] == EOS and len(s) < 9 for s in seqs)


def test_needs_a_reward_function_and_checks_options():
    ids, am, rm, an = layout(ROWS)
    with pytest.raises(ValueError, match="reward_fn"):
        get_scorer("resample")(tiny_lm(), Layout(ids, am, rm, an), generator=torch.Generator())
    for bad in (
        {"k": 0},
        {"max_batch_sequences": 0},
        {"max_new_tokens": 1.5},
        {"temperature": 0},
        {"credit": "x"},
        {"step_token_ids": ("a",)},
    ):
        with pytest.raises(ValueError, match="resample"):
            get_scorer("resample").validate(bad)


def test_the_trainer_refuses_reward_functions_it_cannot_call():
    from oarl.integrations.trl.trainer import check_reward_funcs

    async def judge(prompts, completions, **kwargs):
        return [0.0] * len(prompts)

    class Judge:
        async def __call__(self, prompts, completions, **kwargs):
            return [0.0] * len(prompts)

    check_reward_funcs("resample", [reward, functools.partial(reward, 0)])
    async_ones = (
        judge,
        functools.partial(judge, prompts=[]),
        functools.partial(functools.partial(judge)),
        Judge(),
    )
    assert all(is_async_callable(f) for f in async_ones)  # as TRL sees them (it awaits them)
    for bad in (*async_ones, torch.nn.Linear(1, 1)):
        with pytest.raises(ValueError, match="plain synchronous callables"):
            check_reward_funcs("resample", [bad])


def test_the_trainers_reward_fn_gives_trls_rewards(task, tmp_path, monkeypatch):  # noqa: F811
    """Through OARGRPOTrainer: the reward_fn rewards a row's own completion exactly as TRL rewarded it."""
    import oarl.batch.step as step_module
    from oarl.integrations.trl.trainer import OARConfig, OARGRPOTrainer

    seen = []
    real = step_module.oar_token_advantages

    def spy(model, tok, rollout, *args, **kwargs):
        pids, pmask, cids, cmask = (
            rollout.prompt_ids,
            rollout.prompt_mask,
            rollout.completion_ids,
            rollout.completion_mask,
        )
        own = [
            pids[b][pmask[b].bool()].tolist() + cids[b][cmask[b].bool()].tolist() for b in range(len(cids))
        ]
        seen.append([rollout.reward_fn(b, [own[b]])[0] for b in range(len(own))])
        return real(model, tok, rollout, *args, **kwargs)

    keywords = []

    def varied(completions, log_extra, log_metric, **kwargs):
        """Needs the keywords TRL passes (it would raise without them) and logs through them."""
        keywords.append(sorted(kwargs) + ["log_extra", "log_metric"])
        log_extra("length", [len(c) for c in completions])
        log_metric("mean_length", sum(map(len, completions)) / len(completions))
        return [float(len(c) % 4) for c in completions]

    monkeypatch.setattr(step_module, "oar_token_advantages", spy)
    options = {"k": 2, "max_new_tokens": 4}
    args = OARConfig(output_dir=str(tmp_path), oar_method="resample", oar_scorer_options=options, **COMMON)
    trainer = make_trainer(task, OARGRPOTrainer, args, reward=varied)
    trainer.train()
    assert seen[0] == trainer._oar_rewards_per_func[:, 0].tolist()  # exact: small integers, one function
    assert len(keywords) > 1 and all(k == keywords[0] for k in keywords)  # TRL's call and the scorer's alike
    logs = [h for h in trainer.state.log_history if "loss" in h][0]
    assert logs["oar/scored_frac"] > 0 and logs["oar/nonfinite_fallback"] == 0


def test_the_study_arm_resamples_per_step_over_the_whole_budget():
    from oarl.lab.testbed.experiment import RLSettings, get_arm
    from oarl.lab.testbed.tiny_model import build_tokenizer

    tok = build_tokenizer()
    opts = get_arm("resample").scorer_options(tok, RLSettings(max_completion_length=96))
    semicolon = tok.convert_tokens_to_ids(";")
    assert semicolon != tok.unk_token_id
    assert opts["max_new_tokens"] == 96 and opts["step_token_ids"] == (semicolon,)
    get_scorer("resample").validate(opts)


def test_the_study_arm_reads_the_per_step_role_weights():
    """The mechanism test and the families table read the study's ``resample`` arm under ``resample_step``, the
    name ``benchmarks/role_weights_credit.py`` gives the same per-step options; other arms under their scorer."""
    from oarl.lab.testbed.experiment import get_arm

    role_weights = json.loads(
        (Path(__file__).parents[1] / "docs/families/role_weights_wordop_heavy.json").read_text()
    )
    names = role_weights["wordop_heavy"]["scorers"]
    assert get_arm("resample").role_name == "resample_step" and "resample_step" in names
    assert get_arm("oar_g").role_name == "gradient" and get_arm("tree").role_name == "tree"
