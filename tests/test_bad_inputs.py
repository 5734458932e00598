"""Bad input gets a clear error naming what and where, or the documented, counted fallback (uniform weights)."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import tiny_lm

from oarl.batch.reshape import oar_token_advantages
from oarl.batch.rollout import Rollout
from oarl.batch.settings import OARSettings
from oarl.batch.spans import completion_span_masks
from oarl.lab.math.data import DataError, load_records

# ---------------------------------------------------------------- data files


@pytest.mark.parametrize(
    "content, line, message",
    [
        (b'{"question": "a", "answer": "1"}\n{"question": "b", "answer": ', 2, "not valid JSON"),
        (b'{"question": "a", "answer": "1"}\n{"question": "b"}\n', 2, "'answer': missing"),
        (b"", None, "no records"),
        (b"\n  \n\n", None, "no records"),
        (b'{"question": "a", "answer": "1"}\n{"question": "caf\xe9", "answer": "2"}\n', 2, "not valid UTF-8"),
        (b'{"question": "a", "answer": ' + b"9" * 5000 + b"}\n", 1, "4300 digits"),
        (b'{"question": "a", "answer": 1e400}\n{"question": "b", "answer": []}\n', 2, "got list"),
    ],
    ids=["malformed", "missing-field", "empty", "blank-only", "non-utf8", "huge-int", "non-scalar"],
)
def test_bad_data_files_name_file_and_line(tmp_path, content, line, message):
    path = tmp_path / "data.jsonl"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as err:
        load_records(path)
    assert err.value.line == line and "data.jsonl" in str(err.value)
    if line is not None:
        assert f"line {line}" in str(err.value)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        load_records(tmp_path / "nope.jsonl")


# ---------------------------------------------------------------- odd completions


class PieceTokenizer:
    """A slow tokenizer over fixed text pieces (no offsets: the prefix-decoding path)."""

    PIECES = ["", "c", "=", "1", ";", "ANSWER", " ", "5", "ANSWER 5", "\ufffd", "9" * 400]

    def decode(self, ids, **_):
        return "".join(self.PIECES[i] for i in ids)

    def batch_decode(self, seqs, **_):
        return [self.decode(s) for s in seqs]

    def __call__(self, *a, **k):
        raise NotImplementedError


COMPLETIONS = {
    "empty": [],
    "no span": [1, 2, 3, 4],
    "answer at position 0": [8],
    "one reasoning token": [4, 5, 7],  # ";" then the "ANSWER" marker (never reasoning) and "5"
    "non-UTF-8 byte before the answer": [1, 9, 5, 6, 7],
    "huge number answer": [1, 2, 3, 4, 5, 6, 10],
    "normal": [1, 2, 3, 4, 5, 6, 7],
}


def batch(completions: list[list[int]], prompt_len: int = 3):
    B, T = len(completions), max(len(c) for c in completions) + 1
    cids = torch.zeros(B, T, dtype=torch.long)
    cmask = torch.zeros(B, T, dtype=torch.long)
    for b, c in enumerate(completions):
        cids[b, : len(c)] = torch.tensor(c, dtype=torch.long)
        cmask[b, : len(c)] = 1
    pids = torch.randint(20, 90, (B, prompt_len), generator=torch.Generator().manual_seed(0))
    return pids, torch.ones_like(pids), cids, cmask


@pytest.mark.parametrize("method", ["gradient", "perturbation", "entropy"])
def test_odd_completions_fall_back_to_uniform_weights_and_are_counted(method):
    names = list(COMPLETIONS)
    pids, pmask, cids, cmask = batch(list(COMPLETIONS.values()))
    adv = torch.linspace(-1.0, 1.0, len(names))
    res = oar_token_advantages(
        tiny_lm(), PieceTokenizer(), Rollout(pids, pmask, cids, cmask, adv), OARSettings(method=method)
    )
    row = {n: i for i, n in enumerate(names)}
    assert torch.isfinite(res.advantages).all()
    assert res.no_span.tolist() == [n in ("empty", "no span") for n in names]
    assert res.no_reasoning.tolist() == [n == "answer at position 0" for n in names]
    assert not res.too_long.any() and not res.nonfinite.any()
    for name in ("empty", "no span", "answer at position 0", "one reasoning token"):
        # Bit-exact: unscored rows get weights written as ones; a lone reasoning token normalises to 0, so its
        # weight is 1 + beta * 0 rescaled by 1 / 1. And A * 1.0 == A exactly.
        assert torch.equal(res.weights[row[name]], torch.ones(cids.shape[1])), name
        assert torch.equal(res.advantages[row[name]], adv[row[name]].expand(cids.shape[1]))
    for name in ("non-UTF-8 byte before the answer", "huge number answer", "normal"):
        b = row[name]
        assert res.scored[b], name
        spans = completion_span_masks(PieceTokenizer(), cids[b : b + 1], cmask[b : b + 1])
        reasoning = spans.reasoning[0]
        assert reasoning.sum() >= 1 and spans.answer[0].any()
        assert res.weights[b][reasoning].sum().item() == pytest.approx(int(reasoning.sum()), rel=1e-5)
        assert (res.weights[b][~reasoning] == 1).all()  # exact: non-reasoning positions are written as ones


def test_rows_longer_than_the_context_are_not_scored():
    model = tiny_lm()
    model.config.max_position_embeddings = 6
    pids, pmask, cids, cmask = batch([[4, 5, 7], [1, 2, 3, 4, 5, 6, 7]])  # 3 + 3 fits, 3 + 7 does not
    res = oar_token_advantages(
        model, PieceTokenizer(), Rollout(pids, pmask, cids, cmask, torch.tensor([1.0, -1.0])), OARSettings()
    )
    assert res.too_long.tolist() == [False, True] and res.scored.tolist() == [True, False]
    # Bit-exact: an unscored row's weights are written as ones.
    assert torch.equal(res.weights[1], torch.ones(cids.shape[1]))


# ---------------------------------------------------------------- config: errors before any model load


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--oar_tau", "1.5"], "tau"),
        (["--oar_tau", "0"], "tau"),
        (["--oar_beta", "-1"], "beta"),
        (["--oar_noise_std", "-0.1"], "noise_std"),
        (["--oar_probe", "as_max"], "unknown probe"),
        (["--oar_floor", "2"], "floor"),
        (["--reward_timeout", "0"], "reward_timeout"),
        (["--eval_every", "0"], "eval_every"),
        (["--format_reward_weight", "nan"], "format_reward_weight"),
    ],
)
def test_out_of_range_config_fails_before_any_model_load(monkeypatch, tmp_path, flags, message):
    from oarl.cli import train

    def no_load(*a, **k):
        raise AssertionError("a model or dataset was loaded before the config was validated")

    monkeypatch.setattr(train, "build_trainer", no_load)
    monkeypatch.setattr(train, "resume_checkpoint", no_load)
    with pytest.raises(ValueError, match=message):
        train.main(["--output_dir", str(tmp_path), "--use_cpu", "true", *flags])


@pytest.mark.parametrize("flags", [["--oar_method", "magic"], ["--task", "poetry"]])
def test_unknown_method_or_task_is_a_usage_error(monkeypatch, tmp_path, capsys, flags):
    from oarl.cli import train

    monkeypatch.setattr(train, "build_trainer", lambda *a, **k: pytest.fail("loaded a model"))
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--output_dir", str(tmp_path), *flags])
    assert exit_info.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_yaml_config_values_are_validated_too(monkeypatch, tmp_path):
    from oarl.cli import train

    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"output_dir": str(tmp_path), "task": "poetry"}))  # JSON is YAML
    monkeypatch.setattr(train, "build_trainer", lambda *a, **k: pytest.fail("loaded a model"))
    with pytest.raises(ValueError, match="unknown task 'poetry'"):  # argparse choices skip file values
        train.main(["--config", str(cfg)])


def test_scorer_options_reach_the_scorer_and_named_settings_are_set_once():
    from oarl.core.scorers import ScorerSpec, register_scorer, unregister_scorer

    seen = {}

    @register_scorer(ScorerSpec("_spy", "controls", frozenset({"model"}), "control", "none"))
    def spy(model, layout, probe="as_mean", window=1):
        seen.update(probe=probe, window=window)
        return layout.reasoning_mask.float()

    try:
        pids, pmask, cids, cmask = batch([COMPLETIONS["normal"]])
        settings = OARSettings(method="_spy", probe="lt_logits", scorer_options={"window": 4})
        oar_token_advantages(
            tiny_lm(), PieceTokenizer(), Rollout(pids, pmask, cids, cmask, torch.ones(1)), settings
        )
        assert seen == {"window": 4, "probe": "lt_logits"}
        with pytest.raises(ValueError, match=r"\['probe'\] are also named settings"):
            OARSettings(method="_spy", scorer_options={"probe": "lt_logits"})
        with pytest.raises(ValueError, match=r"no option\(s\) \['windw'\].*valid options: \['window'\]"):
            OARSettings(method="_spy", scorer_options={"windw": 4})
        with pytest.raises(ValueError, match="already registered"):
            register_scorer(ScorerSpec("_spy", "controls", frozenset(), "control", "none"))(spy)
    finally:
        unregister_scorer("_spy")


def test_oar_scorer_options_json_string(tmp_path):
    from oarl import OARConfig

    CPU = dict(use_cpu=True, bf16=False, report_to="none")
    args = OARConfig(
        output_dir=str(tmp_path), oar_method="perturbation_span", oar_scorer_options='{"window": 8}', **CPU
    )
    assert args.oar_scorer_options == {"window": 8}
    with pytest.raises(ValueError, match="not valid JSON"):
        OARConfig(output_dir=str(tmp_path), oar_scorer_options="{window", **CPU)


def test_plain_grpo_counts_answerless_rows_like_every_arm():
    """``oar/no_span_frac`` compares across arms: method "none" finds the spans too (it reported 0 always)."""
    names = list(COMPLETIONS)
    pids, pmask, cids, cmask = batch(list(COMPLETIONS.values()))
    adv = torch.linspace(-1.0, 1.0, len(names))
    grpo = oar_token_advantages(
        tiny_lm(), PieceTokenizer(), Rollout(pids, pmask, cids, cmask, adv), OARSettings(method="none")
    )
    oar = oar_token_advantages(
        tiny_lm(), PieceTokenizer(), Rollout(pids, pmask, cids, cmask, adv), OARSettings(method="entropy")
    )
    assert grpo.no_span.tolist() == oar.no_span.tolist() == [n in ("empty", "no span") for n in names]
    assert grpo.no_reasoning.tolist() == oar.no_reasoning.tolist()
    assert not grpo.scored.any() and torch.equal(grpo.weights, torch.ones_like(grpo.weights))
