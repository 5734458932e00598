"""Gradient-class OAR-G variants against finite differences, their definitions and integrated-gradient
completeness."""

import copy

import pytest
import torch
from conftest import PAD, layout, tiny_lm

from oarl.core.layout import Layout
from oarl.core.model import decoder_hidden, gather_positions, head_logits, position_ids_from_mask
from oarl.core.probes import probe_divergence, probe_from_logits, probe_index, probe_logits, probe_targets
from oarl.core.scorers import SCORERS, gradient_scores, shared_options
from oarl.core.scorers.gradient.linearized import coarse_logits, fisher_quadratic, linearized_scores
from oarl.core.scorers.gradient.path import path_attributions
from oarl.core.scorers.gradient.variants import gradient_avg_scores, gradient_rms_scores, reasoning_rms

ROWS = [(3, 7, 2), (2, 5, 3)]
NEW = ("gradient_rms", "gradient_avg", "linearized", "path")


def probe_raw(model, e, ids, am, an, probe):
    """Probe logits [B, V] (distribution probes) or the AS-Joint value [B] at embeddings e, written out."""
    pos, valid = probe_index(an, probe)
    h, _ = decoder_hidden(model, am, position_ids_from_mask(am), inputs_embeds=e)
    logits = head_logits(model, gather_positions(h, pos))
    if probe == "as_joint":
        return probe_from_logits(logits, valid, probe_targets(ids, pos), probe)
    return probe_logits(logits, valid, probe)


@pytest.mark.parametrize("probe", ["lt_logits", "as_mean", "as_joint"])
def test_linearized_matches_finite_differences_of_the_replacement(probe):
    model = tiny_lm("llama").double()
    ids, am, rm, an = layout(ROWS)
    scores = linearized_scores(model, Layout(ids, am, rm, an), probe=probe, fisher_classes=3)
    E = model.get_input_embeddings()
    with torch.no_grad():
        e = E(ids)
        z0 = probe_raw(model, e, ids, am, an, probe)
        step = 1e-2  # well above the float32 round-off inside RMSNorm; central differences err O(step^2)
        for b, t in [(0, 3), (0, 9), (1, 2), (1, 6)]:
            d = torch.zeros_like(e)
            d[b, t] = E.weight[PAD] - e[b, t]
            dz = (
                probe_raw(model, e + step * d, ids, am, an, probe)
                - probe_raw(model, e - step * d, ids, am, an, probe)
            ) / (2 * step)
            if probe == "as_joint":
                expected = -dz[b]
            else:
                p = z0[b].softmax(-1)
                top = p.topk(3).indices
                rest = torch.ones_like(p, dtype=torch.bool)
                rest[top] = False
                # the rest bucket's logit is logsumexp over the rest: its change is the p-weighted mean change
                d_rest = (dz[b][rest] * p[rest]).sum() / p[rest].sum()
                coarse_p = torch.cat([p[top], p[rest].sum().view(1)])
                deltas = torch.cat([dz[b, top], d_rest.view(1)])
                expected = fisher_quadratic(deltas.view(1, 1, 4), coarse_p.view(1, 4))[0, 0]
            assert scores[b, t].item() == pytest.approx(expected.item(), rel=2e-3, abs=1e-10)


def test_coarse_logits_keep_the_probabilities():
    z = torch.tensor([[2.0, -1.0, 0.5, 0.0, 3.0]])
    coarse = coarse_logits(z, 2)
    p = z.softmax(-1)[0]
    want = torch.stack([p[4], p[0], p[1] + p[2] + p[3]])
    torch.testing.assert_close(coarse.softmax(-1)[0], want)
    assert coarse_logits(z, 10).shape == (1, 5)  # at most V - 1 kept apart, so the rest is never empty


def test_fisher_quadratic_is_half_the_variance():
    deltas = torch.tensor([[[1.0, 3.0]]])
    probs = torch.tensor([[0.5, 0.5]])
    assert fisher_quadratic(deltas, probs).item() == pytest.approx(0.5 * 1.0)  # Var = 1


def test_path_attributions_are_complete():
    model = tiny_lm("llama").double()
    ids, am, rm, an = layout(ROWS)
    attr = path_attributions(
        model, Layout(ids, am, rm, an), path_steps=128
    )  # row 1 bends sharply near a = 0: the midpoint rule needs many steps
    E = model.get_input_embeddings()
    pos, valid = probe_index(an, "as_mean")
    targets = probe_targets(ids, pos)
    with torch.no_grad():
        e = E(ids)
        masked = torch.where(rm.bool().unsqueeze(-1), E.weight[PAD].expand_as(e), e)

        def probe(x):
            h, _ = decoder_hidden(model, am, position_ids_from_mask(am), inputs_embeds=x)
            return probe_from_logits(head_logits(model, gather_positions(h, pos)), valid, targets, "as_mean")

        f0 = probe_divergence(probe(e), probe(masked), "as_mean")
    assert attr.sum(-1).tolist() == pytest.approx((-f0).tolist(), rel=5e-3)


def test_gradient_rms_is_gradient_with_the_noise_scaled_per_row():
    model = tiny_lm("llama")
    ids, am, rm, an = layout(ROWS)
    rms = reasoning_rms(model, ids, rm)
    e = model.get_input_embeddings()(ids).detach()
    want_rms = [e[b][rm[b].bool()].pow(2).mean().sqrt().item() for b in range(len(ROWS))]
    assert rms.tolist() == pytest.approx(want_rms, rel=1e-5)
    got = gradient_rms_scores(model, Layout(ids, am, rm, an), generator=torch.Generator().manual_seed(1))
    # the same noise draw, scaled per row: row b matches a call whose only nonzero std is row b's
    for b in range(len(ROWS)):
        std = torch.zeros(len(ROWS))
        std[b] = 0.5 * rms[b]
        want = gradient_scores(
            model, Layout(ids, am, rm, an), noise_std=std, generator=torch.Generator().manual_seed(1)
        )
        torch.testing.assert_close(got[b], want[b], rtol=1e-4, atol=1e-9)


def test_gradient_avg_is_the_mean_of_successive_draws():
    model = tiny_lm("llama")
    ids, am, rm, an = layout(ROWS)
    got = gradient_avg_scores(
        model,
        Layout(ids, am, rm, an),
        noise_std=0.1,
        noise_samples=3,
        generator=torch.Generator().manual_seed(2),
    )
    gen = torch.Generator().manual_seed(2)
    want = (
        sum(gradient_scores(model, Layout(ids, am, rm, an), noise_std=0.1, generator=gen) for _ in range(3))
        / 3
    )
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("name", NEW)
def test_variants_are_registered_finite_and_zero_outside_reasoning(name):
    model = tiny_lm("llama")
    ids, am, rm, an = layout(ROWS)
    opts = shared_options(name, noise_std=0.1)  # the absolute-noise variants take it
    scores = SCORERS[name](model, ids, am, rm, an, generator=torch.Generator().manual_seed(0), **opts)
    assert scores.shape == ids.shape and torch.isfinite(scores).all()
    assert (scores[~rm.bool()] == 0).all()  # exact: multiplied by the mask
    assert (scores[rm.bool()] != 0).any()


@pytest.mark.parametrize(
    ("name", "kw", "message"),
    [
        ("linearized", {"fisher_classes": 0}, "fisher_classes"),
        ("path", {"path_steps": 0}, "path_steps"),
        ("gradient_avg", {"noise_samples": 0}, "noise_samples"),
        ("gradient_rms", {"relative_noise": -1.0}, "relative_noise"),
    ],
)
def test_bad_options_are_clear_errors(name, kw, message):
    model = tiny_lm("llama")
    ids, am, rm, an = layout(ROWS)
    with pytest.raises(ValueError, match=message):
        SCORERS[name](model, ids, am, rm, an, **kw)


def test_linearized_leaves_parameter_grads_alone():
    model = tiny_lm("llama")
    ids, am, rm, an = layout(ROWS)
    linearized_scores(model, Layout(ids, am, rm, an))
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("name", ["gradient_rms", "gradient_avg", "linearized", "path"])
def test_upcast_scores_a_bf16_model_as_its_float32_copy(name):
    """``upcast`` reaches every gradient-class scorer: a bf16 model scored with it equals its float32 copy."""
    low = tiny_lm("llama").to(torch.bfloat16)
    ref = copy.deepcopy(low).float()
    ids, am, rm, an = layout(ROWS)
    got = SCORERS[name](low, ids, am, rm, an, upcast=True, generator=torch.Generator().manual_seed(0))
    want = SCORERS[name](ref, ids, am, rm, an, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-7)
    assert all(p.dtype == torch.bfloat16 for p in low.parameters())
