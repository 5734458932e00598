# ruff: noqa: F811  (the task fixture imported from test_trainer is redefined as a test argument)
"""``report_to`` backends receive OAR's metrics: TensorBoard's event file, read back, holds every ``oar/*`` tag."""

from __future__ import annotations

import math

import pytest
from test_trainer import COMMON, make_trainer, task  # noqa: F401  (task is a fixture)

from oarl.integrations.trl.trainer import OARConfig, OARGRPOTrainer

pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install -e '.[tensorboard]')")

EXPECTED = (
    "oar/ess_ratio", "oar/top10_adv_share", "oar/weight_mean", "oar/weight_max", "oar/no_span_frac",
    "oar/scored_frac", "oar/zero_adv_skipped_frac", "oar/scorer_seconds", "oar/nonfinite_fallback",
)  # fmt: skip


def test_tensorboard_event_file_holds_oar_metrics(task, tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logdir = tmp_path / "tb"
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(logdir))
    args = OARConfig(
        output_dir=str(tmp_path / "out"),
        oar_method="gradient",
        **{**COMMON, "report_to": ["tensorboard"], "max_steps": 2},
    )
    trainer = make_trainer(task, OARGRPOTrainer, args)
    trainer.train()
    events = EventAccumulator(str(logdir))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    for name in EXPECTED:
        assert f"train/{name}" in tags, sorted(tags)
    ess = events.Scalars("train/oar/ess_ratio")
    assert [e.step for e in ess] == [1, 2]
    assert all(0 < e.value <= 1 + 1e-6 for e in ess)
    logged = [h for h in trainer.state.log_history if "oar/ess_ratio" in h]
    for event, entry in zip(ess, logged, strict=True):  # the same values the trainer logged
        assert math.isclose(event.value, entry["oar/ess_ratio"], rel_tol=1e-6)
