"""Interruption: SIGTERM stops `oarl train` with a checkpoint; `--resume` continues with identical metrics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import single_thread

from oarl.integrations.trl.resume import INTERRUPTED_EXIT_CODE, checkpoint_step, last_checkpoint
from oarl.lab.testbed.experiment import JsonlWriter
from oarl.utils.atomic import append_line, atomic_write_json, trim_jsonl

STEPS = 6


@pytest.fixture(scope="module")
def tiny_arith_model(tmp_path_factory) -> Path:
    """A hidden-64, 2-layer arith model, briefly supervised so some completions are right (rewards vary)."""
    from oarl.lab.testbed import tiny_model
    from oarl.lab.testbed.tasks import arith

    out = tmp_path_factory.mktemp("tiny-arith")
    tok = tiny_model.build_tokenizer()
    model = tiny_model.build_tiny_model(tok, hidden_size=64, num_layers=2, intermediate_size=128)
    probs = arith.generate_problems(256, arith.ArithConfig(seed=1))
    enc = tok([p.prompt + p.completion + tok.eos_token for p in probs], padding=True, return_tensors="pt")
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3)
    model.train()
    with single_thread():  # the same weights whatever the core count (see conftest.single_thread)
        for step in range(40):
            idx = torch.arange(24) + (step * 24) % 232
            ids, am = enc.input_ids[idx], enc.attention_mask[idx]
            loss = model(input_ids=ids, attention_mask=am, labels=ids.masked_fill(am == 0, -100)).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def train_cmd(model: Path, out: Path, *extra: str) -> list[str]:
    flags = dict(
        task="arith", model_path=model, output_dir=out, oar_method="gradient", use_cpu="true", bf16="false",
        report_to="none", max_steps=STEPS, per_device_train_batch_size=8, num_generations=4,
        max_completion_length=24, learning_rate=1e-3, lr_scheduler_type="constant", logging_steps=1,
        gradient_checkpointing="false", save_strategy="steps", save_steps=2, seed=0, disable_tqdm="true",
        train_size=64, eval_size=4, eval_every=3,
    )  # fmt: skip
    args = [f"--{k}={v}" for k, v in flags.items()]
    return [sys.executable, "-m", "oarl.cli", "train", *args, *extra]


def read_metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def comparable(row: dict) -> dict:
    """A metrics row without wall-clock timings (everything else must match exactly)."""
    return {k: v for k, v in row.items() if "time" not in k and "seconds" not in k}


def test_sigterm_then_resume_matches_an_uninterrupted_run(tiny_arith_model, tmp_path):
    # One torch thread in all three runs, whatever the caller's OMP_NUM_THREADS: the exact comparison below
    # needs the same thread count in each (it sets the order of float sums), and on a loaded machine one
    # thread is much faster for this tiny model. The timeouts only turn a hang into a failure.
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    full = tmp_path / "full"
    done = subprocess.run(
        train_cmd(tiny_arith_model, full), env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]

    cut = tmp_path / "cut"
    proc = subprocess.Popen(
        train_cmd(tiny_arith_model, cut), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + 300
    while not (cut / "checkpoint-2" / "trainer_state.json").exists():
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint-2 in time"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    log = proc.communicate(timeout=300)[0]
    assert proc.returncode == INTERRUPTED_EXIT_CODE, log[-3000:]
    ckpt = last_checkpoint(cut)
    stopped = checkpoint_step(ckpt)
    assert 2 <= stopped < STEPS and f"checkpoint saved at step {stopped}" in log
    assert not (cut / "final").exists()
    assert (Path(ckpt) / "oar_rng_state_0.pth").exists()
    # Simulate a hard kill's leftovers: a row past the checkpoint and a half-written line.
    append_line(cut / "metrics.jsonl", json.dumps({"step": stopped + 1, "loss": 123.0}))
    with (cut / "metrics.jsonl").open("a") as f:
        f.write('{"step": 9, "lo')

    resumed = subprocess.run(
        train_cmd(tiny_arith_model, cut, "--resume"), env=env, capture_output=True, text=True, timeout=900
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {ckpt} (2 later metric line(s) dropped)" in resumed.stdout
    expected, got = read_metrics(full), read_metrics(cut)
    assert [r["step"] for r in got] == [r["step"] for r in expected]
    # Bit-exact by design: the resumed run restores the weights, optimiser and every RNG from the checkpoint
    # and then runs the same ops on the same thread count (env above), so every logged float is identical.
    assert [comparable(r) for r in got] == [comparable(r) for r in expected]
    assert any(r.get("oar/scored_frac", 0) > 0 for r in got[stopped:])  # OAR-G noise was drawn after resume


def test_resume_without_checkpoint_starts_fresh(tmp_path, monkeypatch, capsys):
    from oarl.cli import train

    args = train.TaskArguments(resume=True)
    config = type("C", (), {"resume_from_checkpoint": None, "output_dir": str(tmp_path), "process_index": 0})
    assert train.resume_checkpoint(args, config) is None
    assert "no complete checkpoint" in capsys.readouterr().out


def test_last_checkpoint_skips_half_written_folders(tmp_path):
    assert last_checkpoint(tmp_path / "missing") is None
    for step, complete in [(2, True), (4, True), (10, True), (12, False)]:
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if complete:
            (folder / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-x").mkdir()
    assert last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")  # numeric, not lexical, order
    with pytest.raises(ValueError, match="checkpoint-N"):
        checkpoint_step(tmp_path / "final")


def test_atomic_writes_and_trim(tmp_path, monkeypatch):
    path = tmp_path / "sub" / "results.json"
    atomic_write_json(path, {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_json(path, {"a": 2})
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"a": 1}  # old version intact, no temp file left behind
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]

    writer = JsonlWriter(tmp_path / "m.jsonl")
    for step in (1, 2, 3):
        writer.write({"step": step, "x": "y" * 20_000})  # longer than a stdio buffer: still one line
    writer.write({"note": "no step"})
    assert writer.trim_after(2) == 1
    assert [json.loads(line).get("step") for line in writer.path.read_text().splitlines()] == [1, 2, None]
    assert trim_jsonl(tmp_path / "absent.jsonl", lambda r: True) == 0
