"""Local-exact, propagation-linear OAR-P: the masked token's own stream exactly, its reach to the probe to first order.

Masking token ``t`` changes (i) the residual stream at position ``t`` itself, through every layer's MLP and
attention, and (ii) everything after ``t``, only through the keys and values position ``t`` offers to later
queries. Part (i) is where the change is large and non-linear (a different token enters every layer); part (ii)
is a diluted change of attention inputs. This scorer computes (i) exactly for every ``t`` at once and (ii) to
first order:

1. **Two-stream forward** (no grad, ``2L`` tokens): the clean stream, plus a masked stream in which the query
   at ``t`` reads the clean keys/values of ``j < t`` and its own masked ones, i.e. exactly position ``t`` of
   the copy masked at ``t``. Every layer's key/value change ``dK_{l,t}, dV_{l,t}`` comes out of one pass.
2. **Cross gradients** (one forward, ``fisher_rank`` backwards): the clean forward with zero perturbations ``eK_l,
   eV_l`` added to the keys/values that *other* queries read (a query still reads its own unperturbed key), so
   ``dz/deK_{l,t}`` is the total first-order effect of position ``t``'s layer-``l`` key on the probe logits
   ``z`` through every later position and layer, without double-counting position ``t``'s own stream.
3. ``dz_t = sum_l <dz/deK_l,t, dK_l,t> + <dz/deV_l,t, dV_l,t>`` and the KL's Fisher form
   ``KL ~ 1/2 dz^T (diag p - p p^T) dz``. The logits are linear in the head's input ``h`` (``z = W h + b``),
   so the form is ``1/2 dh^T G dh`` with ``G = W^T (diag p - p p^T) W``; its best rank-``fisher_rank``
   approximation (:func:`fisher_directions`) needs one backward per direction, not one per outcome.
   AS-Joint: ``score_t = -dJ_t`` (signed first-order drop, one backward).

Reasoning tokens that are themselves probe positions (the token right before the answer) change the probe
directly; they are scored with exact OAR-P. Cost: ``~3L`` forward token-passes plus ``fisher_rank`` backwards a row,
linear in ``T`` (exact OAR-P: ``~T^2 / 2``). Models: decoders that call transformers' attention interface
(Llama, Qwen2/3, Mistral; no sliding window).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn
from transformers import AttentionInterface

from oarl.core.model import (
    check_layout,
    decoder_and_head,
    decoder_hidden,
    default_mask_token_id,
    eval_mode,
    gather_positions,
    head_logits,
    position_ids_from_mask,
)
from oarl.core.probes import check_probe, probe_from_logits
from oarl.core.scorers.gradient import EmbeddingProbe
from oarl.core.scorers.linearized import probe_logits

_IMPL = "oarl_kv_linear"


class _State:
    """What the attention function needs for one pass: mode, key validity, per-layer deltas or perturbations."""

    def __init__(self, mode: str, key_valid: Tensor, length: int):
        self.mode, self.key_valid, self.length = mode, key_valid, length
        self.deltas: dict[int, tuple[Tensor, Tensor]] = {}
        self.eps: dict[int, tuple[Tensor, Tensor]] = {}


_STATE: list[_State] = []


def _repeat(x: Tensor, n: int) -> Tensor:
    """``[B, Hkv, L, D] -> [B, Hkv * n, L, D]`` (grouped-query attention)."""
    return x if n == 1 else x.repeat_interleave(n, dim=1)


def _causal(L: int, key_valid: Tensor, strict: bool) -> Tensor:
    """``[B, 1, L, L]`` bool: key j visible to query i (``j < i`` or ``j <= i``, valid keys; the diagonal always)."""
    i = torch.arange(L, device=key_valid.device)
    tri = (i[None, :] < i[:, None]) if strict else (i[None, :] <= i[:, None])
    vis = tri & key_valid[:, None, None, :]
    return vis if strict else vis | torch.eye(L, dtype=torch.bool, device=key_valid.device)


def _attention(module: nn.Module, query: Tensor, key: Tensor, value: Tensor, attention_mask, scaling: float,
               dropout: float = 0.0, **_: object) -> tuple[Tensor, None]:  # fmt: skip
    """Attention for the two passes (``attention_mask`` is ignored: the layout is the state's)."""
    st, n, layer = _STATE[-1], module.num_key_value_groups, module.layer_idx
    if st.mode == "two_stream":
        L = st.length
        kc, km, vc, vm = key[:, :, :L], key[:, :, L:], value[:, :, :L], value[:, :, L:]
        st.deltas[layer] = (km - kc, vm - vc)
        kc, vc = _repeat(kc, n), _repeat(vc, n)
        s = (query @ kc.transpose(-1, -2)) * scaling  # [B, H, 2L, L]
        s[:, :, :L] = s[:, :, :L].masked_fill(~_causal(L, st.key_valid, strict=False), float("-inf"))
        s[:, :, L:] = s[:, :, L:].masked_fill(~_causal(L, st.key_valid, strict=True), float("-inf"))
        own = (query[:, :, L:] * _repeat(km, n)).sum(-1, keepdim=True) * scaling  # masked query, own key
        a = torch.cat([s[:, :, L:], own], -1).softmax(-1)
        out_m = a[..., :L] @ vc + a[..., L:] * _repeat(vm, n)
        out = torch.cat([s[:, :, :L].softmax(-1) @ vc, out_m], 2)
    else:
        if layer not in st.eps:
            st.eps[layer] = (
                torch.zeros_like(key, requires_grad=True),
                torch.zeros_like(value, requires_grad=True),
            )
        ek, ev = (_repeat(e, n) for e in st.eps[layer])
        k, v = _repeat(key, n), _repeat(value, n)
        # other queries read k + ek; query i reads its own k_i (the diagonal correction removes q_i . ek_i)
        s = (query @ (k + ek).transpose(-1, -2) - torch.diag_embed((query * ek).sum(-1))) * scaling
        a = s.masked_fill(~_causal(st.length, st.key_valid, strict=False), float("-inf")).softmax(-1)
        out = a @ (v + ev) - a.diagonal(dim1=-2, dim2=-1).unsqueeze(-1) * ev
    return out.transpose(1, 2).contiguous(), None


AttentionInterface.register(_IMPL, _attention)


@contextmanager
def _kv_pass(model: nn.Module, state: _State) -> Iterator[_State]:
    """Route the model's attention through :func:`_attention` with ``state`` (restored after)."""
    cfg = model.config
    if (
        getattr(cfg, "use_sliding_window", False)
        or getattr(cfg, "layer_types", None)
        and any(t != "full_attention" for t in cfg.layer_types)
    ):
        raise ValueError("perturbation_linear supports full-attention decoders only (no sliding window)")
    old = cfg._attn_implementation
    cfg._attn_implementation = _IMPL
    _STATE.append(state)
    try:
        yield state
    finally:
        _STATE.pop()
        cfg._attn_implementation = old


def _check_interface(model: nn.Module, state: _State, layers: int) -> None:
    if len(state.deltas) + len(state.eps) == 0 or max(len(state.deltas), len(state.eps)) != layers:
        raise TypeError(
            f"{type(model).__name__} does not route attention through transformers' attention interface; "
            "perturbation_linear supports Llama / Qwen2 / Qwen3 / Mistral-style decoders"
        )


def fisher_directions(weight: Tensor, z: Tensor, rank: int, top_n: int) -> tuple[Tensor, Tensor]:
    """The top-``rank`` eigen-directions of the probe's Fisher form pulled back to the head's input.

    With logits ``z = W h + b``, ``KL(p || softmax(z + W dh)) ~ 1/2 dh^T G dh``, ``G = W^T (diag p - p p^T) W``,
    over the ``top_n`` likeliest outcomes (renormalised). ``G = A^T A`` with ``A = sqrt(p_v) (w_v - w_bar)``; the
    SVD of ``A`` gives ``G``'s best rank-``rank`` approximation. ``weight[V, D]``, ``z[B, V]`` ->
    ``dirs[B, r, D]`` (orthonormal), ``eig[B, r]``.
    """
    p = z.detach().float().softmax(-1)
    pv, idx = p.topk(min(top_n, p.shape[-1]), -1)
    pv = pv / pv.sum(-1, keepdim=True)
    wv = weight.detach().float()[idx]  # [B, N, D]
    wbar = (pv.unsqueeze(-1) * wv).sum(1, keepdim=True)
    _, S, Vh = torch.linalg.svd(pv.sqrt().unsqueeze(-1) * (wv - wbar), full_matrices=False)
    r = min(rank, S.shape[-1])
    return Vh[:, :r], S[:, :r].pow(2)


def linear_perturbation_scores(
    model: nn.Module,
    input_ids: Tensor,
    attention_mask: Tensor,
    reasoning_mask: Tensor,
    answer_mask: Tensor,
    probe: str = "as_mean",
    mask_token_id: int | None = None,
    fisher_rank: int = 8,
    fisher_top: int = 512,
    **_: object,
) -> Tensor:
    """OAR-P's ``KL(p_clean || p_{t <- mask})`` with the masked position exact and its propagation linear.

    Args:
        model, input_ids, attention_mask, reasoning_mask, answer_mask: as :func:`perturbation_scores`.
        probe: ``"lt_logits"``, ``"as_mean"`` or ``"as_joint"``.
        mask_token_id: OAR-P's replacement (default: the model's pad token).
        fisher_rank: directions of the Fisher form kept (:func:`fisher_directions`; one backward each).
        fisher_top: likeliest outcomes the Fisher form is built from (renormalised).

    Returns:
        ``[B, L]`` float32 scores, 0 outside ``reasoning_mask`` and in rows without an answer span.
    """
    check_probe(probe)
    check_layout(input_ids, attention_mask, reasoning_mask, answer_mask)
    if fisher_rank < 1 or fisher_top < 2:
        raise ValueError(f"need fisher_rank >= 1 and fisher_top >= 2, got {fisher_rank}, {fisher_top}")
    mask_id = default_mask_token_id(model, mask_token_id)
    probe_of = EmbeddingProbe(model, input_ids, attention_mask, answer_mask, probe)
    B, L = input_ids.shape
    valid = attention_mask.bool()
    pos = position_ids_from_mask(attention_mask)
    embed = model.get_input_embeddings()
    n_layers = model.config.num_hidden_layers
    with eval_mode(model):
        with torch.no_grad(), _kv_pass(model, _State("two_stream", valid, L)) as two:
            e = embed(input_ids)
            e2 = torch.cat([e, embed.weight[mask_id].expand_as(e)], 1)
            decoder_hidden(model, valid.repeat(1, 2).long(), pos.repeat(1, 2), inputs_embeds=e2)
        _check_interface(model, two, n_layers)
        with torch.enable_grad(), _kv_pass(model, _State("cross", valid, L)) as cross:
            hidden, _ = decoder_hidden(model, attention_mask, pos, inputs_embeds=e.detach())
            logits = head_logits(model, gather_positions(hidden, probe_of.positions))
            leaves = [t for layer in sorted(cross.eps) for t in cross.eps[layer]]
            deltas = [t for layer in sorted(cross.eps) for t in two.deltas[layer]]

            def change(
                out: Tensor, retain: bool
            ) -> Tensor:  # [B, L]: <d out / d eps, delta> summed over layers
                grads = torch.autograd.grad(out, leaves, retain_graph=retain, allow_unused=True)
                return sum(
                    (g * d).float().sum((1, 3)) for g, d in zip(grads, deltas, strict=True) if g is not None
                )

            if probe == "as_joint":
                J = probe_from_logits(logits, probe_of.valid, probe_of.targets, probe)
                scores = -change((J * probe_of.row_valid).sum(), False)
            else:
                hbar = probe_logits(gather_positions(hidden, probe_of.positions), probe_of.valid, probe)
                _, head = decoder_and_head(model)
                dirs, eig = fisher_directions(head.weight, head_logits(model, hbar), fisher_rank, fisher_top)
                dh = torch.stack([change((dirs[:, i] * hbar).sum(), i < dirs.shape[1] - 1)
                                  for i in range(dirs.shape[1])], -1)  # fmt: skip
                scores = 0.5 * (dh.pow(2) * eig.unsqueeze(1)).sum(-1)
        _check_interface(model, cross, n_layers)
    scores = scores.detach().float()
    _exact_at_probe(
        model, input_ids, attention_mask, reasoning_mask, answer_mask, probe, mask_id, probe_of, scores
    )
    return scores * probe_of.scored(reasoning_mask)


def _exact_at_probe(
    model, input_ids, attention_mask, reasoning_mask, answer_mask, probe, mask_id, probe_of, scores
):
    """Reasoning tokens at probe positions change the probe directly: score them with exact OAR-P (in place)."""
    from oarl.core.scorers.approximate import group_divergences

    at = torch.zeros_like(reasoning_mask, dtype=torch.bool)
    rows = torch.arange(len(at), device=at.device).unsqueeze(-1).expand_as(probe_of.positions)
    at[rows[probe_of.valid], probe_of.positions[probe_of.valid]] = True
    at &= reasoning_mask.bool()
    if not at.any():
        return
    groups = [[[int(t)] for t in row.nonzero().flatten()] for row in at]
    div = group_divergences(model, input_ids, attention_mask, answer_mask, groups, probe, mask_id, 1 << 14)
    for b, row in enumerate(groups):
        for g, (t,) in enumerate(row):
            scores[b, t] = div[b][g]
