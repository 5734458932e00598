"""OAR-P past T^2: every masked copy's own position and direct paths to the probe exact, the rest first order.

Masking token ``t`` changes the probe through (i) position ``t``'s own stream (a different token enters every
layer: large, non-linear), (ii) the probe positions' attention to ``t``'s keys and values at every layer (the
direct paths; in trained models attention is sharp, so also non-linear), and (iii) everything that goes
through the positions in between (many small, diluted changes). This scorer computes (i) and (ii) exactly for
all copies in one forward and (iii) to first order (:mod:`.streams`):

1. **Streams forward** (no grad, ``L + C + C K`` tokens for ``C`` reasoning tokens and ``K`` probe slots):
   the clean sequence, position ``t`` of every masked copy, and every copy's probe positions reading the
   clean keys with ``t``'s swapped for the masked ones. Gives ``h_dir(t)``, the probe's input (the mean final
   hidden state over the probe positions) with the direct effect, and every layer's key/value change
   ``dK_{l,t}, dV_{l,t}``.
2. **Cross gradients** (one forward and ``fisher_rank`` backwards): the clean forward with zero perturbations
   on the keys/values that *non-probe* queries read, so ``sum_l <dh/deK_l,t, dK_l,t> + <dh/deV_l,t, dV_l,t>``
   is the indirect change of the probe's input, to first order. Only its components along the best
   rank-``fisher_rank`` directions of the KL's Fisher form are taken (:func:`fisher_directions`; one
   backward each, not one per outcome).
3. ``score_t = 1/2 Var_p(dz_t)``, ``dz_t = head(h_dir(t) + dh_ind(t)) - z``: the KL's Fisher form over the whole
   vocabulary (``divergence="exact"``: the KL itself; the Fisher form ranked better where the first-order
   part overshoots: random-init T = 1024, Spearman 0.89 vs 0.79; equal on the trained model). AS-Joint: the
   answer's mean log-prob at the direct-path logits plus the first-order indirect change (one backward);
   importance = drop.

``direct=False`` drops step 1's probe streams (every path first order, from position ``t``'s exact change).
Reasoning tokens at probe positions (the token right before the answer) are scored with exact OAR-P. With
``divergence="exact"`` it is exact OAR-P for 1-layer models (no indirect paths); it is always exact to first
order in the replacement distance.
Cost ``~(2 + K) T`` token-passes of the streams (rows are grouped by answer length ``K``), an ``L``-token
forward and ``fisher_rank`` backwards a row: linear in ``T`` (exact OAR-P: ``~T^2 / 2``), plus the probe
streams' attention over the prefix (``T K L`` scores).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from oarl.core.layout import Layout
from oarl.core.model import (
    decoder_and_head,
    decoder_hidden,
    default_mask_token_id,
    eval_mode,
    gather_positions,
    head_logits,
    position_ids_from_mask,
)
from oarl.core.probes import EmbeddingProbe, check_probe, ordered_positions, probe_from_logits, probe_logits
from oarl.core.scorers.masking.kernel import group_divergences
from oarl.core.scorers.masking.streams import Streams, kv_pass
from oarl.core.scorers.registry import ScorerSpec, register_scorer


def fisher_directions(weight: Tensor, z: Tensor, rank: int, top_n: int) -> tuple[Tensor, Tensor]:
    """The top-``rank`` eigen-directions of the probe's Fisher form pulled back to the head's input.

    With logits ``z = W h + b``, ``KL(p || softmax(z + W dh)) ~ 1/2 dh^T G dh``, ``G = W^T (diag p - p p^T) W``,
    over the ``top_n`` likeliest outcomes (renormalised). ``G = A^T A`` with ``A = sqrt(p_v) (w_v - w_bar)``; the
    SVD of ``A`` gives ``G``'s best rank-``rank`` approximation. ``weight[V, D]``, ``z[B, V]`` ->
    ``dirs[B, r, D]`` (orthonormal), ``eig[B, r]``.
    """
    dt = torch.promote_types(z.dtype, torch.float32)
    p = z.detach().to(dt).softmax(-1)
    pv, idx = p.topk(min(top_n, p.shape[-1]), -1)
    pv = pv / pv.sum(-1, keepdim=True)
    wv = weight.detach().to(dt)[idx]  # [B, N, D]
    wbar = (pv.unsqueeze(-1) * wv).sum(1, keepdim=True)
    _, S, Vh = torch.linalg.svd(pv.sqrt().unsqueeze(-1) * (wv - wbar), full_matrices=False)
    r = min(rank, S.shape[-1])
    return Vh[:, :r], S[:, :r].pow(2)


def _joint(model: nn.Module, hidden: Tensor, valid: Tensor, targets: Tensor) -> Tensor:
    """AS-Joint (:func:`probe_from_logits`) from probe-slot hidden states: ``hidden[..., K, D]`` -> ``[...]``;
    ``valid`` / ``targets`` broadcast to ``[..., K]``."""
    lead, K = hidden.shape[:-2], hidden.shape[-2]
    logits = head_logits(model, hidden.reshape(-1, K, hidden.shape[-1]))
    flat = (x.expand(*lead, K).reshape(-1, K) for x in (valid, targets))
    return probe_from_logits(logits, *flat, "as_joint").view(lead)


@register_scorer(
    ScorerSpec("perturbation_linear", "masking", frozenset({"model", "gradients"}), "recommended", "linear")
)
def linear_perturbation_scores(
    model: nn.Module,
    layout: Layout,
    probe: str = "as_mean",
    mask_token_id: int | None = None,
    fisher_rank: int = 8,
    fisher_top: int = 512,
    direct: bool = True,
    indirect: bool = True,
    divergence: str = "fisher",
) -> Tensor:
    """OAR-P's ``KL(p_clean || p_{t <- mask})``, the masked position and its direct paths exact, the rest linear.

    Args:
        model, layout: as :func:`perturbation_scores`.
        probe: ``"lt_logits"``, ``"as_mean"`` or ``"as_joint"``.
        mask_token_id: OAR-P's replacement (default: the model's pad token).
        fisher_rank: directions of the Fisher form the indirect change is kept along (one backward each).
        fisher_top: likeliest outcomes the Fisher form is built from (renormalised).
        direct: compute the direct paths to the probe exactly (False: first order too; the ablation).
        indirect: add the first-order indirect change (False: direct paths only, no backward at all).
        divergence: ``"fisher"`` (the KL's second-order form at the estimated logit change) or ``"exact"``
            (the KL itself; exact OAR-P for 1-layer models).

    Returns:
        ``[B, L]`` float32 scores, 0 outside ``reasoning_mask`` and in rows without an answer span.
    """
    check_probe(probe)
    input_ids, attention_mask, reasoning_mask, answer_mask = layout.tensors
    if fisher_rank < 1 or fisher_top < 2 or divergence not in ("fisher", "exact"):
        raise ValueError(
            f"need fisher_rank >= 1, fisher_top >= 2 and divergence in ('fisher', 'exact'), "
            f"got {fisher_rank}, {fisher_top}, {divergence!r}"
        )
    mask_id = default_mask_token_id(model, mask_token_id)
    probe_of = EmbeddingProbe(model, input_ids, attention_mask, answer_mask, probe)
    counts = probe_of.valid.sum(-1)
    # The probe streams cost C x K a row, K the batch's longest answer: score rows of equal answer length together.
    if direct and len(counts.unique()) > 1:
        opts = dict(probe=probe, mask_token_id=mask_id, fisher_rank=fisher_rank, fisher_top=fisher_top,
                    direct=direct, indirect=indirect, divergence=divergence)  # fmt: skip
        out = torch.zeros(input_ids.shape, dtype=torch.float32, device=input_ids.device)
        for k in counts.unique():
            rows = (counts == k).nonzero().flatten()
            out[rows] = linear_perturbation_scores(model, layout.rows(rows), **opts)
        return out
    P, Pv = probe_of.positions, probe_of.valid
    B, L = input_ids.shape
    K = P.shape[1]
    valid = attention_mask.bool()
    pos = position_ids_from_mask(attention_mask)
    copy_pos, copy_valid = ordered_positions(reasoning_mask, max(int(reasoning_mask.sum(-1).max()), 1))
    C = copy_pos.shape[1]
    p0 = torch.where(probe_of.row_valid, P[:, 0], torch.full_like(P[:, 0], L))
    embed = model.get_input_embeddings()
    probe_at = torch.zeros_like(valid)
    probe_at[torch.arange(B, device=P.device)[:, None].expand_as(P)[Pv], P[Pv]] = True
    with eval_mode(model), torch.no_grad():
        e = embed(input_ids)
        parts = [e, embed.weight[mask_id].expand(B, C, -1)]
        ids = [pos, pos.gather(1, copy_pos)]
        if direct:
            parts.append(gather_positions(e, P).unsqueeze(1).expand(B, C, K, -1).reshape(B, C * K, -1))
            ids.append(pos.gather(1, P).unsqueeze(1).expand(B, C, K).reshape(B, C * K))
        st = Streams("streams", valid, copy_pos, P, Pv, p0, with_probe=direct)
        with kv_pass(model, st):
            hs, _ = decoder_hidden(model, torch.ones(B, sum(p.shape[1] for p in parts), dtype=torch.long, device=e.device),
                                   torch.cat(ids, 1), inputs_embeds=torch.cat(parts, 1))  # fmt: skip
        h_probe = gather_positions(hs[:, :L], P)  # [B, K, D] clean
        h_copy = hs[:, L + C :].reshape(B, C, K, -1) if direct else h_probe.unsqueeze(1)  # [B, C | 1, K, D]
    deltas = [d for layer in sorted(st.deltas) for d in st.deltas[layer]]
    cross = Streams("cross", valid, reads_eps=~probe_at if direct else torch.ones_like(valid))

    def changes(outputs) -> Tensor:  # [B, C, n]: first-order indirect change of each output, copy by copy
        return _indirect(model, e, attention_mask, pos, cross, copy_pos, deltas, outputs)

    if probe == "as_joint":
        J = _joint(model, h_probe, Pv, probe_of.targets)
        scores_c = J.unsqueeze(1) - _joint(model, h_copy, Pv[:, None], probe_of.targets[:, None])
        if indirect:

            def joint(hid: Tensor) -> list[Tensor]:
                return [
                    (_joint(model, gather_positions(hid, P), Pv, probe_of.targets) * probe_of.row_valid).sum()
                ]

            scores_c = scores_c - changes(joint)[..., 0]
    else:
        z = head_logits(model, probe_logits(h_probe, Pv, probe))
        z = z.to(torch.promote_types(z.dtype, torch.float32))
        h_new = probe_logits(h_copy.flatten(0, 1), Pv.repeat_interleave(h_copy.shape[1], 0), probe)
        h_new = h_new.view(B, -1, h_new.shape[-1])
        if indirect:
            _, head = decoder_and_head(model)
            dirs, _ = fisher_directions(head.weight, z, fisher_rank, fisher_top)  # [B, r, D]

            def along(hid: Tensor) -> list[Tensor]:  # the probe's input along each Fisher direction
                return [(d * probe_logits(gather_positions(hid, P), Pv, probe)).sum() for d in dirs.unbind(1)]

            dh = changes(along)
            h_new = h_new + torch.einsum("bcr,brd->bcd", dh, dirs.to(dh.dtype)).to(h_new.dtype)
        scores_c = _divergence(model, z, h_new, divergence)
    scores = torch.zeros(B, L, dtype=torch.float32, device=input_ids.device)
    scores.scatter_add_(1, copy_pos, scores_c.detach().float() * copy_valid)  # copies are distinct positions
    _exact_at_probe(
        model,
        input_ids,
        attention_mask,
        answer_mask,
        probe,
        mask_id,
        probe_at & reasoning_mask.bool(),
        scores,
    )
    return scores * probe_of.scored(reasoning_mask)


def _indirect(model, embeds, attention_mask, pos, cross: Streams, copy_pos, deltas, outputs) -> Tensor:
    """``[B, C, n]``: ``sum_l <d out_i / d eps_l, delta_l>`` at every copy's position, for the ``n`` scalars
    ``outputs(hidden)`` returns (rows summed: rows are independent), from one cross-mode forward."""
    with eval_mode(model), torch.enable_grad(), kv_pass(model, cross):
        hidden, _ = decoder_hidden(model, attention_mask, pos, inputs_embeds=embeds)
        outs = outputs(hidden)
        leaves = [t for layer in sorted(cross.eps) for t in cross.eps[layer]]
        at = copy_pos[:, None, :, None]
        cols = []
        for i, out in enumerate(outs):
            grads = torch.autograd.grad(out, leaves, retain_graph=i < len(outs) - 1, allow_unused=True)
            cols.append(sum(
                (g.gather(2, at.expand(-1, g.shape[1], -1, g.shape[-1])) * d)
                .to(torch.promote_types(g.dtype, torch.float32)).sum((1, 3))
                for g, d in zip(grads, deltas, strict=True) if g is not None
            ))  # fmt: skip
    return torch.stack(cols, -1).detach()


def _divergence(model: nn.Module, z: Tensor, h: Tensor, kind: str, chunk: int = 1 << 24) -> Tensor:
    """``D(softmax(z_b), softmax(head(h_bc)))``: ``z[B, V]``, ``h[B, C, D]`` -> ``[B, C]`` (chunked over C).

    ``"exact"``: the KL. ``"fisher"``: its second-order form ``1/2 Var_p(dz)``, ``dz = head(h) - z``, over the
    whole vocabulary; it ranks better when a first-order change overshoots (docs/performance.md, "Past T²").
    """
    lp = z.log_softmax(-1).unsqueeze(1)
    p = lp.exp()
    step = max(1, chunk // (h.shape[0] * z.shape[-1]))
    out = []
    for c0 in range(0, h.shape[1], step):
        zc = head_logits(model, h[:, c0 : c0 + step].detach()).to(z.dtype)
        if kind == "exact":
            out.append((p * (lp - zc.log_softmax(-1))).sum(-1))
        else:
            dz = zc - z.unsqueeze(1)
            out.append(0.5 * ((p * dz.pow(2)).sum(-1) - (p * dz).sum(-1).pow(2)))
    return torch.cat(out, 1)


def _exact_at_probe(
    model, input_ids, attention_mask, answer_mask, probe, mask_id, at: Tensor, scores
) -> None:
    """Reasoning tokens at probe positions (``at[B, L]``) change the probe directly: exact OAR-P, in place."""
    if not at.any():
        return
    groups = [[[int(t)] for t in row.nonzero().flatten()] for row in at]
    div = group_divergences(model, input_ids, attention_mask, answer_mask, groups, probe, mask_id, 1 << 14)
    for b, row in enumerate(groups):
        for g, (t,) in enumerate(row):
            scores[b, t] = div[b][g]
