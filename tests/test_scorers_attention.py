"""Anchor (``anchor``): Future Attention Influence against the model's own eager attention probabilities."""

from __future__ import annotations

import torch
from conftest import layout, tiny_lm

from oarl.core.layout import Layout
from oarl.core.scorers import get_scorer


def test_fai_is_the_mean_attention_received_from_later_tokens():
    model = tiny_lm("llama", seed=10)
    ids, am, rm, an = batch = layout([(3, 7, 2), (2, 9, 1)], pad_side="left", seed=5)
    got = get_scorer("anchor")(model, Layout(*batch))
    old, model.config._attn_implementation = model.config._attn_implementation, "eager"
    try:
        for b in range(2):
            cols = am[b].bool().nonzero().flatten().tolist()
            with torch.no_grad():
                att = model(input_ids=ids[b, cols][None], output_attentions=True).attentions
            a = torch.stack([x[0] for x in att]).double().mean(1)  # [layers, L, L], mean over heads
            n = len(cols)
            for j, c in enumerate(cols):
                if not rm[b, c]:
                    assert got[b, c] == 0
                    continue
                fai = sum(float(a[:, s, j].mean()) for s in range(j + 1, n)) / (n - j - 1)
                assert abs(float(got[b, c]) - fai) < 1e-5, (b, c)
    finally:
        model.config._attn_implementation = old
