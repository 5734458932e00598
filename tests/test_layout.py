"""Layout: the one batch object every scorer reads."""

import pytest
import torch
from conftest import layout, tiny_lm

from oarl.core.layout import Layout
from oarl.core.model import position_ids_from_mask
from oarl.core.scorers import get_scorer


def test_layout_checks_its_tensors_and_carries_optional_group_fields():
    ids, am, rm, an = layout([(2, 4, 1), (3, 3, 2)], pad_side="left")
    lay = Layout(ids, am, rm, an, group_ids=torch.tensor([0, 0]), rewards=torch.tensor([1.0, 0.0]))
    assert torch.equal(lay.position_ids, position_ids_from_mask(am))
    assert lay.tensors == (ids, am, rm, an)
    with pytest.raises(ValueError, match="overlap"):
        Layout(ids, am, rm, rm)
    with pytest.raises(ValueError, match="rewards has shape"):
        Layout(ids, am, rm, an, rewards=torch.zeros(3))
    sub = lay.rows(torch.tensor([1]))
    assert torch.equal(sub.input_ids, ids[1:]) and torch.equal(sub.rewards, torch.tensor([0.0]))
    other = lay.replace(reasoning_mask=torch.zeros_like(rm))
    assert not other.reasoning_mask.any() and other.input_ids is ids
    positions, valid = lay.probe_positions("as_mean")
    assert positions.shape == valid.shape == (2, 2)


def test_a_spec_takes_a_layout_or_its_four_tensors():
    model, batch = tiny_lm(), layout([(2, 5, 1), (3, 4, 2)])
    spec = get_scorer("perturbation")
    assert torch.equal(spec(model, Layout(*batch)), spec(model, *batch))  # exact: the same call
    with pytest.raises(TypeError, match="not both"):
        spec(model, Layout(*batch), batch[1])
