"""Group context (group ids and rewards) reaches the scorers that need ``group_rewards``: through the trainer-
independent batch step (whole groups, unscored rows as context) and through ``OARGRPOTrainer`` (TRL's rewards)."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_lm
from test_bad_inputs import PieceTokenizer, batch
from test_trainer import COMMON, make_trainer, task  # noqa: F401  (task is a fixture)

import oarl.batch.step as step_module
from oarl.batch.reshape import oar_token_advantages
from oarl.batch.rollout import Rollout
from oarl.batch.settings import OARSettings
from oarl.core.layout import Layout
from oarl.core.scorers import ScorerSpec, register_scorer, unregister_scorer
from oarl.integrations.trl.trainer import OARConfig, OARGRPOTrainer

SEEN: list[Layout] = []


@pytest.fixture
def recorder():
    """A temporary model-free scorer that needs group rewards and records the layouts it is given."""

    @register_scorer(ScorerSpec("group_probe", "controls", frozenset({"group_rewards"}), "control", "none"))
    def group_probe(model, layout: Layout) -> torch.Tensor:
        """Records the layout; scores the reasoning tokens uniformly."""
        SEEN.append(layout)
        return layout.reasoning_mask.float()

    SEEN.clear()
    yield SEEN
    unregister_scorer("group_probe")


NORMAL, NO_SPAN = [1, 2, 3, 4, 5, 6, 7], [1, 2, 3, 4]


def test_the_batch_step_passes_whole_groups(recorder):
    # group 0: scored, skipped (zero advantage), no answer span; group 1: all skipped; group 2: one scored row.
    comps = [NORMAL, NORMAL, NO_SPAN, NORMAL, NORMAL, NORMAL, NORMAL]
    pids, pmask, cids, cmask = batch(comps)
    groups = torch.tensor([0, 0, 0, 1, 1, 2, 2])
    rewards = torch.tensor([1.0, 0.5, 0.0, 1.0, 1.0, 2.0, float("nan")])
    adv = torch.tensor([1.0, 0.0, -1.0, 0.0, 0.0, 1.0, 0.0])
    rollout = Rollout(pids, pmask, cids, cmask, adv, rewards=rewards, group_ids=groups)
    res = oar_token_advantages(tiny_lm(), PieceTokenizer(), rollout, OARSettings(method="group_probe"))
    assert res.scored.tolist() == [True, False, False, False, False, True, False]
    (lay,) = recorder
    assert lay.group_ids.tolist() == [0, 0, 0, 2, 2]  # group 1 has no scored row: not passed
    torch.testing.assert_close(lay.rewards, rewards[[0, 1, 2, 5, 6]], equal_nan=True)
    assert lay.reasoning_mask.any(-1).tolist() == [
        True,
        False,
        False,
        True,
        False,
    ]  # context rows: empty masks
    assert lay.answer_mask.any(-1).tolist() == [True, False, False, True, False]
    assert torch.equal(lay.input_ids[:, pids.shape[1] :], cids[[0, 1, 2, 5, 6]])


def test_the_batch_step_refuses_a_group_scorer_without_groups(recorder):
    pids, pmask, cids, cmask = batch([NORMAL, NORMAL])
    with pytest.raises(ValueError, match="rewards= and group_ids="):
        oar_token_advantages(
            tiny_lm(),
            PieceTokenizer(),
            Rollout(pids, pmask, cids, cmask, torch.ones(2)),
            OARSettings(method="group_probe"),
        )


def test_other_scorers_see_the_scored_rows_only(recorder):
    """A scorer that does not need groups gets the scored rows (the layout it always had), groups attached."""
    pids, pmask, cids, cmask = batch([NORMAL, NO_SPAN, NORMAL])
    seen = []

    @register_scorer(ScorerSpec("rows_probe", "controls", frozenset(), "control", "none"))
    def rows_probe(model, layout: Layout) -> torch.Tensor:
        """Records the layout."""
        seen.append(layout)
        return layout.reasoning_mask.float()

    try:
        rollout = Rollout(
            pids,
            pmask,
            cids,
            cmask,
            torch.ones(3),
            group_ids=torch.tensor([0, 0, 0]),
            rewards=torch.tensor([1.0, 0.0, 1.0]),
        )
        oar_token_advantages(tiny_lm(), PieceTokenizer(), rollout, OARSettings(method="rows_probe"))
    finally:
        unregister_scorer("rows_probe")
    assert len(seen[0].input_ids) == 2 and seen[0].group_ids.tolist() == [0, 0]


def test_the_trainer_gives_trl_rewards_and_groups(recorder, task, tmp_path, monkeypatch):  # noqa: F811
    calls = []
    real = step_module.oar_token_advantages

    def spy(*args, **kwargs):
        rollout = args[2]
        calls.append((rollout.advantages.clone(), rollout.groups, rollout.rewards))
        return real(*args, **kwargs)

    monkeypatch.setattr(step_module, "oar_token_advantages", spy)
    args = OARConfig(output_dir=str(tmp_path), oar_method="group_probe", **COMMON)
    trainer = make_trainer(task, OARGRPOTrainer, args)
    trainer.train()
    ((adv, groups, rewards),) = calls
    G = COMMON["num_generations"]
    assert groups.tolist() == [i // G for i in range(COMMON["per_device_train_batch_size"])]
    # TRL's advantages are the group-centred, group-scaled rewards: the rewards given are the rows' own.
    r = rewards.view(-1, G)
    want = ((r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + 1e-4)).flatten()
    torch.testing.assert_close(adv, want)
    assert len(recorder) == 1 and recorder[0].group_ids is not None
