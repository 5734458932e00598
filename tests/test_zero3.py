# ruff: noqa: F811  (the task fixture imported from test_trainer is redefined as a test argument)
"""Sharded parameters: under DeepSpeed ZeRO-3 the trainer scores on gathered weights, or refuses at start.

DeepSpeed is not a dependency. Its behaviour is checked two ways: always, with ZeRO-3 faked at the trainer's
one detection point (``DistributedBackend``); and, with ``OARL_DEEPSPEED_TESTS=1`` where ``deepspeed`` imports,
by a real 2-process ZeRO-3 run on CPU (gloo, DeepSpeed's CPU accelerator; ~25 s, see docs/gpu.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_multiprocess import free_port
from test_trainer import COMMON, make_trainer, task  # noqa: F401  (task is a fixture)

import oarl.integrations.trl.trainer as trainer_module
from oarl.core.scorers import model_free_scorers
from oarl.integrations.trl.trainer import OARConfig, OARGRPOTrainer, check_sharding

WORKER = Path(__file__).with_name("zero3_worker.py")


@pytest.mark.parametrize("method", ["gradient", "perturbation", "entropy"])
def test_check_sharding_refuses_what_cannot_score(method):
    check_sharding(method, zero_stage=2, fsdp=False, gather_zero3=False)  # ZeRO-2: full weights per GPU
    check_sharding(method, zero_stage=3, fsdp=False, gather_zero3=True)  # gathered once per step
    with pytest.raises(
        ValueError, match=r"ZeRO-3.*ds3_gather_for_generation=False.*ZeRO-2.*oar_method='none'"
    ):
        check_sharding(method, zero_stage=3, fsdp=False, gather_zero3=False)
    with pytest.raises(ValueError, match=r"FSDP.*ZeRO-2"):
        check_sharding(method, zero_stage=0, fsdp=True, gather_zero3=True)


@pytest.mark.parametrize("method", ["none", *model_free_scorers()])
def test_methods_that_never_run_the_model_are_allowed_anywhere(method):
    check_sharding(method, zero_stage=3, fsdp=True, gather_zero3=False)


class FakeZero3:
    """What ``trl.distributed.DistributedBackend`` reports under accelerate's DeepSpeed plugin at stage 3."""

    def __init__(self, accelerator) -> None:
        self.zero_stage, self.fsdp_version = 3, None

    @property
    def is_zero3(self) -> bool:
        return True


def test_trainer_refuses_zero3_without_gathering_at_start(task, tmp_path, monkeypatch):
    monkeypatch.setattr(trainer_module, "DistributedBackend", FakeZero3)
    args = OARConfig(
        output_dir=str(tmp_path), oar_method="gradient", ds3_gather_for_generation=False, **COMMON
    )
    with pytest.raises(ValueError, match="ZeRO-2"):
        make_trainer(task, OARGRPOTrainer, args)
    none = OARConfig(output_dir=str(tmp_path), oar_method="none", ds3_gather_for_generation=False, **COMMON)
    make_trainer(task, OARGRPOTrainer, none)  # plain GRPO needs no scoring: allowed


@pytest.mark.parametrize(
    ("method", "gathers"), [("gradient", True), ("perturbation", True), ("random", False)]
)
def test_trainer_scores_inside_the_gathering_context_under_zero3(
    task, tmp_path, monkeypatch, method, gathers
):
    monkeypatch.setattr(trainer_module, "DistributedBackend", FakeZero3)
    calls = []

    @contextlib.contextmanager
    def spy(model, accelerator, gather_deepspeed3_params=False, **kwargs):
        calls.append(gather_deepspeed3_params)
        yield accelerator.unwrap_model(model)

    monkeypatch.setattr(trainer_module, "unwrap_model_for_generation", spy)
    args = OARConfig(output_dir=str(tmp_path), oar_method=method, **COMMON)
    trainer = make_trainer(task, OARGRPOTrainer, args)
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h][0]
    assert logs["oar/scored_frac"] > 0
    assert calls == ([True] if gathers else [])  # one gather per generation step, none for model-free scores


@pytest.mark.skipif(
    os.environ.get("OARL_DEEPSPEED_TESTS") != "1", reason="real DeepSpeed run: set OARL_DEEPSPEED_TESTS=1"
)
@pytest.mark.parametrize("method", ["gradient", "perturbation"])
def test_real_zero3_two_cpu_processes(tiny_math_model, tmp_path, method):
    pytest.importorskip("deepspeed")
    ds = tmp_path / "ds3.json"
    ds.write_text(json.dumps({
        "train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": "auto", "train_batch_size": "auto",
        "zero_optimization": {"stage": 3, "stage3_param_persistence_threshold": 0}, "bf16": {"enabled": False},
    }))  # fmt: skip
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--use_deepspeed", "--deepspeed_config_file", str(ds),
           "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(free_port()), str(WORKER), str(tiny_math_model), str(tmp_path), method]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=400, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    ranks = [json.loads((tmp_path / f"rank{i}.json").read_text()) for i in range(2)]
    for r in ranks:
        assert r["zero_stage"] == 3 and r["partitioned"] and r["world_size"] == 2 and r["steps"] == 3
        assert any(f > 0 for f in r["scored_frac"])  # the scorer ran on every step's own rows
        assert r["max_diff"] <= 1e-6 * max(1.0, r["max_score"])  # gathered scores = full-weight scores
    assert ranks[0]["weights"] == ranks[1]["weights"]
