"""Token classes of real reasoning, and each scorer's credit per class."""

from __future__ import annotations

import math
from types import SimpleNamespace

import torch

from oarl.lab.viz.token_classes import CLASSES, class_shares, markdown, token_class


def test_token_class():
    assert token_class(" 42", "reasoning") == "numbers"
    assert token_class(" +", "reasoning") == "operators"
    assert token_class(" =", "reasoning") == "operators"
    assert token_class(" apples", "reasoning") == "words"
    assert token_class("\n\n", "reasoning") == "formatting"
    assert token_class(".", "reasoning") == "formatting"
    assert token_class(" 7", "answer") == "answer"


def _tok(text, column, role):
    return SimpleNamespace(text=text, column=column, role=role)


def test_class_shares_counts_weights_and_top_tokens():
    row = SimpleNamespace(found=True, completion=[
        _tok(" 3", 0, "reasoning"), _tok(" +", 1, "reasoning"), _tok(" 4", 2, "reasoning"),
        _tok(" apples", 3, "reasoning"), _tok("\n", 4, "reasoning"), _tok(" 7", 5, "answer"),
    ])  # fmt: skip
    scores = torch.tensor([[5.0, 1.0, 2.0, 0.5, 0.1, 0.0]])
    weights = torch.tensor([[2.0, 1.0, 1.0, 0.5, 0.5, 1.0]])
    att = SimpleNamespace(rows=[row], methods={"m": SimpleNamespace(scores=scores, weights=weights)})
    out = class_shares(att)["m"]
    assert set(out) == set(CLASSES)
    assert math.isclose(out["numbers"]["tokens"], 2 / 6) and math.isclose(out["numbers"]["weight"], 3 / 6)
    assert out["numbers"]["top10"] == 1.0  # ceil(0.1 * 5) = 1 token: " 3"
    assert math.isclose(out["answer"]["mean_weight"], 1.0)
    assert "| m |" in markdown({"m": out})
