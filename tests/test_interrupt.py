"""Ctrl-C stops ``oarl train`` like SIGTERM: a checkpoint at the step (even with ``save_strategy: "no"``), the
resume command, exit 130, no traceback; a second Ctrl-C exits at once. And ``metrics.jsonl`` gets every step's
``oar/*`` from the first step on, whatever ``logging_steps`` says."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from oarl.utils.interrupt import StopSignals, exit_code, interrupted_message


def test_sigint_checkpoints_prints_the_resume_command_and_exits_130(arith_model, tmp_path):
    out = tmp_path / "run"
    flags = dict(
        task="arith", model_path=arith_model, output_dir=out, oar_method="entropy", use_cpu="true",
        max_steps=200, per_device_train_batch_size=4, num_generations=2, max_completion_length=8,
        train_size=800, eval_size=2, eval_every=1000, save_strategy="no", logging_steps=5, seed=0,
    )  # fmt: skip
    cmd = [sys.executable, "-m", "oarl.cli", "train", *(f"--{k}={v}" for k, v in flags.items())]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = out / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while not metrics.is_file():  # written at the end of step 1 although TRL logs every 5 steps
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "no first step in time"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    assert "Ctrl-C (SIGINT): stopping after this step with a checkpoint" in stderr
    ckpts = sorted(out.glob("checkpoint-*"))
    assert len(ckpts) == 1 and (ckpts[0] / "trainer_state.json").is_file()  # although save_strategy is "no"
    step = int(ckpts[0].name.split("-")[1])
    assert f"checkpoint saved at step {step}" in stdout and "continue with: oarl train" in stdout
    assert stdout.rstrip().endswith("--resume")
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [r["step"] for r in rows if "oar/no_span_frac" in r][:step] == list(range(1, step + 1))


def test_a_second_signal_exits_at_once(monkeypatch, capsys):
    exits = []
    monkeypatch.setattr(os, "_exit", exits.append)
    stop = StopSignals("stopping")
    stop._handle(signal.SIGINT, None)
    assert stop.requested and not exits
    stop._handle(signal.SIGINT, None)
    assert exits == [130] and "again: exiting now" in capsys.readouterr().err
    assert exit_code(signal.SIGTERM) == 143


def test_ctrl_c_outside_a_step_is_one_line_with_the_way_on(monkeypatch, capsys):
    from oarl import cli
    from oarl.cli import study

    def interrupted(argv):
        raise KeyboardInterrupt

    monkeypatch.setattr(study, "main", interrupted)
    assert cli.main(["study", "--seeds", "0-1"]) == 130
    err = capsys.readouterr().err
    assert (
        err.strip()
        == "oarl study: interrupted (Ctrl-C); finished runs are kept; resume with: oarl study --seeds 0-1"
    )
    assert "Traceback" not in err
    assert interrupted_message(["eval"], None) == "oarl eval: interrupted (Ctrl-C)"


@pytest.mark.parametrize("command", ["train", "study", "demo", "warmstart", "eval"])
def test_every_long_command_says_how_to_go_on(command):
    import importlib

    from oarl.cli import COMMANDS

    hint = importlib.import_module(COMMANDS[command][0]).RESUME_HINT
    assert "{command}" in hint


def test_ctrl_c_stops_a_parallel_study_at_once_and_keeps_what_finished(tmp_path):
    """A terminal's Ctrl-C reaches the whole process group (the study and its worker processes): one line with
    the resume command, exit 130, no traceback, no worker left behind."""
    out = tmp_path / "study"
    cmd = [sys.executable, "-m", "oarl.cli", "study", "--task", "flag", "--arms", "grpo,oracle", "--seeds", "0-3",
           "--steps", "40", "--eval-every", "20", "--eval-problems", "8", "--workers", "2", "--out", str(out)]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    deadline = time.monotonic() + 240
    while not list((out / "runs").glob("*.jsonl")):  # the workers have started their first runs
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "no run started in time"
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)
    start = time.monotonic()
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr[-3000:]
    assert time.monotonic() - start < 30
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    assert "oarl study: interrupted (Ctrl-C)" in stderr and "resume with: oarl study --task flag" in stderr
    assert group_gone(proc.pid, within=20.0)  # no worker left running (an exited one is reaped by init)


def group_gone(pgid: int, within: float) -> bool:
    """True once no process of the group ``pgid`` is left (zombies are reaped shortly after their parent ends)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False
