"""Bad input gets a clear error naming what and where, or the documented, counted fallback (uniform weights)."""

from __future__ import annotations

import json
import re

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
def test_out_of_range_config_fails_before_any_model_load(monkeypatch, tmp_path, capsys, flags, message):
    from oarl.cli import train

    def no_load(*a, **k):
        raise AssertionError("a model or dataset was loaded before the config was validated")

    monkeypatch.setattr(train, "build_trainer", no_load)
    monkeypatch.setattr(train, "resume_checkpoint", no_load)
    assert train.main(["--output_dir", str(tmp_path / "run"), "--use_cpu", "true", *flags]) == 2
    err = capsys.readouterr().err
    assert "oarl train: error:" in err and message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("flags", [["--oar_method", "magic"], ["--task", "poetry"]])
def test_unknown_method_or_task_is_a_usage_error(monkeypatch, tmp_path, capsys, flags):
    from oarl.cli import train

    monkeypatch.setattr(train, "build_trainer", lambda *a, **k: pytest.fail("loaded a model"))
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--output_dir", str(tmp_path), *flags])
    assert exit_info.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_yaml_config_values_are_validated_too(monkeypatch, tmp_path, capsys):
    from oarl.cli import train

    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"output_dir": str(tmp_path), "task": "poetry"}))  # JSON is YAML
    monkeypatch.setattr(train, "build_trainer", lambda *a, **k: pytest.fail("loaded a model"))
    assert train.main(["--config", str(cfg)]) == 2  # argparse choices skip file values: checked here
    assert "unknown task 'poetry'" in capsys.readouterr().err


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


# ---------------------------------------------------------------- a user's first hour (issue 34), row by row


def _oarl(argv: list[str], capsys) -> tuple[int, str, str, float]:
    """``oarl ARGV`` in this process: exit code, stdout, stderr, seconds."""
    import importlib
    import time

    from oarl.cli import COMMANDS, main

    importlib.import_module(
        COMMANDS[argv[0]][0]
    )  # the import is not what is timed (it is slow on a busy CPU)
    t0 = time.perf_counter()
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err, time.perf_counter() - t0


def test_train_task_runs_its_recipe_on_this_machine_and_echoes_what_the_user_set(capsys):
    """Row 1: ``oarl train --task flag --max_steps 2``: the flag recipe's lr and lengths, the machine's device
    (CPU float32 without a GPU, not TRL's bf16 default), the user's max_steps over the recipe's, all echoed."""
    import torch

    from oarl.cli.train import task_defaults

    applied = task_defaults("flag", {"task": "flag", "max_steps": 2, "output_dir": "runs/x"})
    out = capsys.readouterr().out
    assert applied["learning_rate"] == 1e-4 and applied["max_completion_length"] == 96
    assert applied["per_device_train_batch_size"] == 64 and "max_steps" not in applied
    assert applied["use_cpu"] == (not torch.cuda.is_available())
    assert (
        "learning_rate=0.0001" in out
        and "(from the task)" in out
        and "you set: task=flag, max_steps=2" in out
    )
    if not torch.cuda.is_available():
        assert not applied["bf16"] and "no CUDA GPU" in out
        with pytest.raises(ValueError, match="no CUDA GPU"):
            task_defaults("flag", {"use_cpu": False})


def test_train_task_defaults_reach_the_parsed_config(monkeypatch, tmp_path, capsys):
    from oarl.cli import train

    seen = {}
    monkeypatch.setattr(train, "run", lambda task_args, config, lora: seen.update(c=config, t=task_args) or 0)
    assert train.main(["--task", "flag", "--max_steps", "2", "--output_dir", str(tmp_path / "x")]) == 0
    config = seen["c"]
    assert (config.learning_rate, config.max_completion_length, config.max_steps) == (1e-4, 96, 2)
    assert config.oar_noise_std == 0.1 and seen["t"].eval_every == 10
    assert not (tmp_path / "x").exists()  # nothing written before the run starts


def test_no_answer_span_warns_once_with_the_formats_and_the_fix():
    """Row 3: completions without any answer form: OAR is off for them; the step says so, once."""
    from oarl.batch.rollout import Rollout
    from oarl.batch.span_watch import NoAnswerSpanError, NoAnswerSpanWarning
    from oarl.batch.step import OARStep

    rollout = Rollout(*batch([COMPLETIONS["no span"]] * 4), advantages=torch.ones(4))
    step = OARStep(OARSettings(method="entropy", no_span_window=2))
    with pytest.warns(NoAnswerSpanWarning, match=r"100% of rows.*ANSWER x.*re:Final") as caught:
        _, metrics = step(tiny_lm(), PieceTokenizer(), rollout)
        step(tiny_lm(), PieceTokenizer(), rollout)  # once only
    assert len([w for w in caught if issubclass(w.category, NoAnswerSpanWarning)]) == 1
    assert metrics["oar/no_span_frac"] == 1.0
    hard = OARStep(OARSettings(method="entropy", no_span_error=True))
    with pytest.raises(NoAnswerSpanError, match="oar_no_span_error"):
        hard(tiny_lm(), PieceTokenizer(), rollout)
    with pytest.raises(ValueError, match="no_span_warn_frac"):
        OARSettings(no_span_warn_frac=1.5)


def test_custom_answer_pattern_is_a_span_finder_and_a_bad_one_fails_at_config_time(tmp_path):
    from oarl import OARConfig
    from oarl.batch.spans import find_answer_span

    text = "seven plus one. Final: 8"
    assert find_answer_span(text) is None
    assert find_answer_span(text, ["boxed", "re:Final: (\\S+)"]) == (text.index("8"), len(text))
    CPU = dict(use_cpu=True, bf16=False, report_to="none")
    for bad, message in [("re:Final: (", "not a valid regular expression"), ("re:Final", "exactly one")]:
        with pytest.raises(ValueError, match=re.escape(repr(bad)) + ".*" + message):
            OARConfig(output_dir=str(tmp_path), oar_span_finders=[bad], **CPU)


def test_attribute_says_nothing_scored_for_a_row_without_an_answer_span(
    arith_model, tmp_path, monkeypatch, capsys
):
    """Row 4: never ``ESS-ratio nan`` in the console or ``ESS 1.00`` on the figure for an unscored row."""
    monkeypatch.chdir(tmp_path)
    code, out, err, _ = _oarl(
        [
            "attribute",
            "--model",
            str(arith_model),
            "--prompt",
            "c=1;",
            "--completion",
            "c",
            "--method",
            "entropy",
        ],
        capsys,
    )
    assert code == 0, err
    assert "no answer span: nothing scored" in out and "nan" not in out
    html = (tmp_path / "runs/attribution/attribution.html").read_text()
    assert "no answer span: nothing scored" in html and "ESS 1.00" not in html


@pytest.mark.parametrize(
    "argv",
    [
        ["attribute", "--prompt", "a", "--completion", "b", "--model"],
        ["train", "--task", "gsm8k", "--use_cpu", "true", "--output_dir", "runs/t", "--model_path"],
        ["eval", "--data", "arith", "--model"],
        ["gpu-check", "--cpu", "--model"],
        ["model", "path"],
    ],
    ids=["attribute", "train", "eval", "gpu-check", "model-path"],
)
@pytest.mark.parametrize(
    "model, message",
    [("smollm3", "did you mean 'smollm2-135m'"), ("/path/that/does/not/exist", "no such folder: /path/that")],
    ids=["typo", "missing-path"],
)
def test_unknown_model_fails_at_once_with_the_known_names(
    argv, model, message, tmp_path, monkeypatch, capsys
):
    """Rows 5-6: a missing path or a typo: refused in well under 5 s, no hub attempt, no traceback, nothing
    written; every command that takes a model shares the resolver."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OARL_ALLOW_DOWNLOAD", raising=False)
    code, _, err, _ = _oarl([*argv, model], capsys)
    assert code == 2 and message in err and "smollm2-135m" in err and "Traceback" not in err
    _, _, _, seconds = _oarl([*argv, model], capsys)  # again, its lazy imports done: the refusal itself
    assert seconds < 5  # it took 51 s of hub retries
    assert not any(tmp_path.iterdir())  # no runs/... folder left behind


def test_empty_prompts_are_refused_with_the_row(arith_model, tmp_path):
    """Row 7: the Python API names the row at construction (it raised IndexError inside generate at step 1)."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM

    from oarl import OARConfig, OARGRPOTrainer
    from oarl.utils.checkpoint import load_tokenizer

    args = OARConfig(output_dir=str(tmp_path / "run"), use_cpu=True, bf16=False, report_to="none", num_generations=2,
                     per_device_train_batch_size=2, max_completion_length=4)  # fmt: skip
    data = Dataset.from_dict({"prompt": ["c=1;", "c=2;", "   "]})
    with pytest.raises(ValueError, match="row 2: the 'prompt' is empty or whitespace only"):
        OARGRPOTrainer(
            model=AutoModelForCausalLM.from_pretrained(arith_model),
            reward_funcs=lambda completions, **k: [0.0] * len(completions),
            args=args,
            train_dataset=data,
            processing_class=load_tokenizer(arith_model),
        )
    assert not (tmp_path / "run").exists()


def test_jsonl_task_refuses_an_empty_prompt_with_the_line_and_leaves_no_folder(arith_model, tmp_path, capsys):
    """Rows 7 and 10: ``--task jsonl`` with a blank question; the failed run leaves no empty output folder."""
    data = tmp_path / "d.jsonl"
    data.write_text('{"question": "1+1?", "answer": "2"}\n{"question": "  ", "answer": "3"}\n')
    out = tmp_path / "runs" / "name"
    argv = ["train", "--task", "jsonl", "--data_path", str(data), "--model_path", str(arith_model),
            "--use_cpu", "true", "--output_dir", str(out)]  # fmt: skip
    code, _, err, _ = _oarl(argv, capsys)
    assert code == 2 and "d.jsonl, line 2, field 'question': empty or whitespace only" in err
    assert not out.exists()


def test_yaml_unknown_key_names_the_key_and_the_nearest_field(tmp_path, capsys):
    """Row 8: no TRL-internal advice (``fail_with_unknown_args``), and nothing loaded first."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("task: flag\nlearning_rat: 0.1\n")
    code, _, err, seconds = _oarl(["train", "--config", str(cfg)], capsys)
    assert code == 2 and "unknown key 'learning_rat'; did you mean 'learning_rate'?" in err
    assert "fail_with_unknown_args" not in err and seconds < 5


def test_gpu_check_failure_leaves_no_empty_run_folder(arith_model, tmp_path, monkeypatch, capsys):
    """Row 10: ``runs/gpu_check/<time>`` is removed when the check fails before writing anything."""
    monkeypatch.chdir(tmp_path)
    argv = [
        "gpu-check",
        "--cpu",
        "--model",
        str(arith_model),
        "--data",
        "gsm8k",
        "--data-dir",
        str(tmp_path / "no"),
    ]
    code, _, err, _ = _oarl(argv, capsys)
    assert code == 2 and "Traceback" not in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*"))


def test_docs_gpu_cpu_command_uses_a_model_a_fresh_clone_has():
    """Row 11: docs/gpu.md's CPU command names a model the resolver knows, not a folder only `oarl demo` makes."""
    from pathlib import Path

    from oarl.lab.models.registry import spec_for

    doc = (Path(__file__).resolve().parents[1] / "docs" / "gpu.md").read_text()
    lines = [line for line in doc.splitlines() if line.startswith("oarl gpu-check --cpu")]
    assert lines
    for line in lines:
        model = line.split("--model")[1].split()[0]
        assert spec_for(model) is not None, line


@pytest.mark.parametrize(
    "command, where",
    [("plot", "curves.png in the current folder"), ("attribute", "runs/attribution/attribution.html"),
     ("train", "runs/train/"), ("gpu-check", "runs/gpu_check/<time>"),
     ("fidelity", "runs/fidelity/fidelity.json"), ("oracle-eval", "runs/oracle_eval/oracle_eval.json")],
)  # fmt: skip
def test_help_of_every_writing_command_says_where(command, where, capsys):
    """Row 13: ``--help`` names the default output path."""
    from oarl.cli import main

    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert where in " ".join(capsys.readouterr().out.split())


def test_eval_yaml_unknown_key_is_named_too(tmp_path, capsys):
    cfg = tmp_path / "e.yaml"
    cfg.write_text("data: arith\nmodle: smollm2-135m\n")
    code, _, err, _ = _oarl(["eval", "--config", str(cfg)], capsys)
    assert code == 2 and "unknown key 'modle'; did you mean 'model'?" in err


def test_a_study_arm_whose_scorer_the_runner_cannot_feed_is_refused_at_once(tmp_path, capsys):
    """``cdpo`` needs two contrast models that ``oarl study`` does not train: refused before any warm start."""
    from oarl import cli

    out = tmp_path / "study"
    assert (
        cli.main(["study", "--task", "flag", "--arms", "grpo,cdpo", "--seeds", "0", "--out", str(out)]) == 2
    )
    err = capsys.readouterr().err
    assert "arm 'cdpo' cannot run in oarl study" in err and "oar_contrast_models" in err
    assert "Traceback" not in err and not out.exists()


def test_a_study_on_cuda_without_a_gpu_is_refused_at_once(tmp_path, capsys, monkeypatch):
    """``--device cuda`` where torch sees no GPU (``make gpu-families`` on a CPU machine): refused before any
    warm start, naming the fix, not by TRL's "use_cpu" error minutes later."""
    import torch

    from oarl import cli

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "study"
    argv = "study --task flag --arms grpo --seeds 0 --device cuda --out".split() + [str(out)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "sees no CUDA GPU" in err and "docs/gpu.md" in err and "--device at cpu" in err
    assert "Traceback" not in err and not out.exists()
