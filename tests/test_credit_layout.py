"""One layout builder and one score-and-gate (``oarl.batch.rollout_layout``, ``oarl.batch.credit``): bit-identical to
slow references written out as the trainer, the testbed and the viewer wrote them before they shared them."""

from __future__ import annotations

import pytest
import torch

from oarl.batch.credit import gate_scores, score_and_gate
from oarl.batch.reshape import oar_token_advantages
from oarl.batch.rollout import Rollout
from oarl.batch.rollout_layout import encode_text_pairs
from oarl.batch.settings import OARSettings
from oarl.batch.spans import completion_span_masks, trained_spans
from oarl.core.gating import bilevel_weights
from oarl.core.layout import Layout
from oarl.core.scorers import get_scorer, shared_options
from oarl.lab.testbed import oracle, tiny_model
from oarl.lab.testbed.tasks.arith_task import ArithTask
from oarl.lab.viz.attribution import attribute, encode_pairs, score_methods


@pytest.fixture(scope="module")
def pairs():
    """The arithmetic tokenizer, a tiny random model and six pairs: normal, no span, no reasoning, a tail."""
    tok = tiny_model.build_tokenizer()
    model = tiny_model.build_tiny_model(
        tok, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64
    ).eval()
    problems = ArithTask().problems(6, seed=3)
    prompts = [p.prompt for p in problems]
    comps = [p.completion for p in problems]
    comps[1] = comps[1].replace("ANSWER", "")
    comps[2] = "ANSWER " + comps[2].split("ANSWER ")[1]
    comps[3] = comps[3] + ";x=1"
    return tok, model, prompts, comps


def slow_layout(tok, prompts, comps):
    """Each pair tokenized alone and padded by hand (prompt left, completion right); spans per row."""
    P_ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    C_ids = [tok(c, add_special_tokens=False)["input_ids"] for c in comps]
    P, T = max(map(len, P_ids)), max(map(len, C_ids))
    rows = {k: [] for k in ("input_ids", "attention_mask", "reasoning_mask", "answer_mask")}
    for p, c in zip(P_ids, C_ids, strict=True):
        cid = torch.tensor([c + [tok.pad_token_id] * (T - len(c))])
        cm = torch.tensor([[1] * len(c) + [0] * (T - len(c))])
        spans = completion_span_masks(tok, cid, cm)
        none = torch.zeros(1, P, dtype=torch.bool)
        rows["input_ids"].append(torch.cat([torch.tensor([[tok.pad_token_id] * (P - len(p)) + p]), cid], 1))
        rows["attention_mask"].append(torch.cat([torch.tensor([[0] * (P - len(p)) + [1] * len(p)]), cm], 1))
        rows["reasoning_mask"].append(torch.cat([none, spans.reasoning], 1))
        rows["answer_mask"].append(torch.cat([none, spans.answer], 1))
    return {k: torch.cat(v) for k, v in rows.items()}, P


def test_one_layout_for_the_testbed_and_the_viewer(pairs):
    tok, _, prompts, comps = pairs
    ref, P = slow_layout(tok, prompts, comps)
    enc = encode_text_pairs(tok, prompts, comps, offsets=True)
    assert enc.prompt_width == P and enc.completion_offsets.shape[:2] == (
        len(comps),
        ref["input_ids"].shape[1] - P,
    )
    assert enc.found.tolist() == [True, False, True, True, True, True]
    for got in (enc.tensors(), oracle.text_batch(tok, prompts, comps), encode_pairs(tok, prompts, comps)):
        for k, v in ref.items():
            assert torch.equal(got[k], v), k
    view = encode_pairs(tok, prompts, comps)
    assert torch.equal(
        view["prompt_mask"], ref["attention_mask"].bool() & (torch.arange(view["prompt_mask"].shape[1]) < P)
    )
    with pytest.raises(ValueError, match="as many prompts"):
        encode_text_pairs(tok, prompts, comps[:-1])


def test_the_trainer_gate_equals_the_written_out_path(pairs):
    """``oar_token_advantages`` against the path written out as it was: cat the rows, score, gate the scored
    rows' completion columns with ``bilevel_weights``."""
    tok, model, prompts, comps = pairs
    c = tok(comps, add_special_tokens=False, padding=True, padding_side="right", return_tensors="pt")
    p = tok(prompts, add_special_tokens=False, padding=True, padding_side="left", return_tensors="pt")
    adv = torch.tensor([1.0, -0.5, 0.3, 0.0, 0.7, -1.0])
    for method in ("gradient", "perturbation", "entropy", "random"):
        settings = OARSettings(method=method, tau=0.3, floor=0.15)
        rollout = Rollout(p["input_ids"], p["attention_mask"], c["input_ids"], c["attention_mask"], adv)
        res = oar_token_advantages(model, tok, rollout, settings, torch.Generator().manual_seed(5))
        spans = trained_spans(
            completion_span_masks(tok, c["input_ids"], c["attention_mask"]), c["attention_mask"]
        )
        rows = (spans.found & spans.reasoning.any(-1) & (adv != 0)).nonzero().flatten()
        pad = torch.zeros(len(rows), p["input_ids"].shape[1], dtype=torch.bool)
        lay = Layout(
            torch.cat([p["input_ids"][rows], c["input_ids"][rows]], 1),
            torch.cat([p["attention_mask"][rows], c["attention_mask"][rows]], 1),
            torch.cat([pad, spans.reasoning[rows]], 1),
            torch.cat([pad, spans.answer[rows]], 1),
        )
        scores = get_scorer(method)(
            model, lay, generator=torch.Generator().manual_seed(5), **settings.resolved_options()
        )
        w = bilevel_weights(scores[:, pad.shape[1] :], spans.reasoning[rows], 0.3, settings.beta, 0.15)
        want = torch.ones_like(res.weights)
        want[rows] = w
        assert torch.equal(res.weights, want), method
        assert res.scored.nonzero().flatten().tolist() == rows.tolist()


def test_the_viewer_and_the_testbed_gate_equal_the_written_out_path(pairs):
    tok, model, prompts, comps = pairs
    batch = oracle.oracle_batch(tok, prompts, comps)
    four = [batch[k] for k in ("input_ids", "attention_mask", "reasoning_mask", "answer_mask")]
    gate = {"tau": 0.35, "beta": 2.5, "floor": 0.05}
    got = score_methods(
        model, batch, ["perturbation", "gradient", "entropy"], probe="as_joint", seed=3, **gate
    )
    for method, r in got.items():
        opts = shared_options(method, probe="as_joint")
        scores = get_scorer(method)(model, *four, generator=torch.Generator().manual_seed(3), **opts).float()
        assert torch.equal(r.scores, scores), method
        assert torch.equal(r.weights, bilevel_weights(scores, batch["reasoning_mask"], **gate)), method
        settings = OARSettings(method=method, probe="as_joint", **gate)
        credit = score_and_gate(model, Layout(*four), settings, generator=torch.Generator().manual_seed(3))
        assert torch.equal(credit.weights, r.weights) and not credit.nonfinite.any()
    # the viewer's oracle tokens come from the same encoding as its layout (no second builder to disagree)
    att = attribute(model, tok, prompts, comps, ["random"], oracle=True)
    assert torch.equal(att.batch["oracle_mask"], batch["oracle_mask"])


def test_gate_scores_is_the_gate_on_finite_rows_and_uniform_elsewhere():
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(4, 9, generator=g)
    mask = torch.rand(4, 9, generator=g) > 0.3
    scores[2, mask[2].nonzero()[0]] = float("nan")
    w, bad = gate_scores(scores, mask, 0.3, 1.0, 0.2)
    assert bad.tolist() == [False, False, True, False]
    ok = ~bad
    assert torch.equal(w[ok], bilevel_weights(scores[ok], mask[ok], 0.3, 1.0, 0.2))
    assert (w[2] == 1).all()
