"""Many masked copies in one forward: token streams and key/value perturbations through transformers' attention.

:func:`kv_pass` routes a decoder's attention (any model that calls transformers' attention interface: Llama,
Qwen2/3, Mistral) through :func:`_attention` bound to a :class:`Streams` state, for the duration of the pass
(:func:`oarl.core.model.attention_hook`); it ignores the model's mask and reads the layout from the state. Per row: ``L`` clean positions, ``C`` masked copies at ``copy_pos[b, c]`` and ``K``
probe slots at ``probe_pos[b, k]`` (the first at ``p0``).

``"streams"`` mode, input ``[clean L | masked C | probe C*K]``:

* clean: ordinary causal attention.
* masked copy ``c``: clean keys ``j < t_c`` and its own key: exactly position ``t_c`` of the sequence with
  ``t_c`` masked (the rest of that copy is not computed).
* probe ``(c, k)``: clean keys ``j < p0`` except ``t_c``, copy ``c``'s masked key at ``t_c``, and copy ``c``'s
  probe keys ``k' <= k``: the probe positions of the copy masked at ``t_c`` with every other position clean,
  i.e. the direct paths ``t_c -> probe`` (at every layer) exact and the indirect ones dropped.

``"cross"`` mode, input ``[clean L]``: zero leaves ``eK_l, eV_l`` are added to the keys and values that the
queries flagged in ``reads_eps`` read of *other* positions (a query reads its own key unperturbed), so
``d out / d eK_{l,t}`` is the first-order effect of position ``t``'s layer-``l`` key through those queries.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial

import torch
from torch import Tensor, nn

from oarl.core.model import attention_hook

#: Probe-stream score entries ``H x copies x K x L`` computed at once (bounds the transient memory).
PROBE_CHUNK = 1 << 24


@dataclass
class Streams:
    """Layout of one pass (see the module docstring); filled per layer: ``deltas`` or ``eps``."""

    mode: str
    key_valid: Tensor  # [B, L] bool
    copy_pos: Tensor | None = None  # [B, C] long
    probe_pos: Tensor | None = None  # [B, K] long
    probe_valid: Tensor | None = None  # [B, K] bool
    p0: Tensor | None = None  # [B] long: first probe position (L for rows without one)
    with_probe: bool = True
    reads_eps: Tensor | None = None  # [B, L] bool (cross mode)
    deltas: dict[int, tuple[Tensor, Tensor]] = field(default_factory=dict)  # [B, Hkv, C, D] masked - clean
    eps: dict[int, tuple[Tensor, Tensor]] = field(default_factory=dict)  # [B, Hkv, L, D] zero leaves


def _rep(x: Tensor, n: int) -> Tensor:
    """``[B, Hkv, ...] -> [B, Hkv * n, ...]`` (grouped-query attention)."""
    return x if n == 1 else x.repeat_interleave(n, dim=1)


def _softmax_masked(s: Tensor, visible: Tensor) -> Tensor:
    return s.masked_fill(~visible, float("-inf")).softmax(-1)


def _clean_visible(key_valid: Tensor) -> Tensor:
    """``[B, 1, L, L]``: causal over valid keys; the diagonal always (padded queries stay finite)."""
    L = key_valid.shape[1]
    j = torch.arange(L, device=key_valid.device)
    return ((j[None, :] <= j[:, None]) & key_valid[:, None, None, :]) | torch.eye(
        L, dtype=torch.bool, device=j.device
    )


def _streams(st: Streams, q: Tensor, k: Tensor, v: Tensor, n: int, scale: float, layer: int) -> Tensor:
    B, L = st.key_valid.shape
    C = st.copy_pos.shape[1]
    K = st.probe_pos.shape[1] if st.with_probe else 0
    qc, qm, qp = q.split([L, C, C * K], 2)
    kc, km, kp = k.split([L, C, C * K], 2)
    vc, vm, vp = v.split([L, C, C * K], 2)
    at = st.copy_pos[:, None, :, None].expand(-1, k.shape[1], -1, k.shape[-1])
    st.deltas[layer] = (km - kc.gather(2, at), vm - vc.gather(2, at))
    kc, vc, km, vm, kp, vp = (_rep(x, n) for x in (kc, vc, km, vm, kp, vp))
    j = torch.arange(L, device=q.device)
    out_c = _softmax_masked(qc @ kc.transpose(-1, -2) * scale, _clean_visible(st.key_valid)) @ vc
    before = (j[None, None, :] < st.copy_pos[:, :, None]) & st.key_valid[:, None, :]  # [B, C, L]
    s = (qm @ kc.transpose(-1, -2) * scale).masked_fill(~before[:, None], float("-inf"))
    a = torch.cat([s, (qm * km).sum(-1, keepdim=True) * scale], -1).softmax(-1)
    out_m = a[..., :L] @ vc + a[..., L:] * vm
    if not K:
        return torch.cat([out_c, out_m], 2)
    H, D = q.shape[1], q.shape[-1]
    qp, kp, vp = (x.reshape(B, H, C, K, -1) for x in (qp, kp, vp))
    seen = (j[None, None, :] < st.p0[:, None, None]) & st.key_valid[:, None, :]
    seen = seen & (j[None, None, :] != st.copy_pos[:, :, None])  # [B, C, L]: clean keys, t_c swapped out
    swap = (st.copy_pos < st.p0[:, None])[:, None, :, None]  # [B, 1, C, 1]: t_c before the probe
    kk = torch.arange(K, device=q.device)
    own = ((kk[None, :] <= kk[:, None])[None] & st.probe_valid[:, None, :])[:, None, None]  # [B,1,1,K,K]
    out_p = torch.empty_like(qp)
    step = max(1, PROBE_CHUNK // max(1, H * K * L))
    for c0 in range(0, C, step):
        sl = slice(c0, c0 + step)
        s_c = torch.einsum("bhckd,bhjd->bhckj", qp[:, :, sl], kc) * scale
        s_c = s_c.masked_fill(~seen[:, None, sl, None], float("-inf"))
        s_t = (torch.einsum("bhckd,bhcd->bhck", qp[:, :, sl], km[:, :, sl]) * scale).masked_fill(
            ~swap[:, :, sl], float("-inf")
        )
        s_p = torch.einsum("bhckd,bhcmd->bhckm", qp[:, :, sl], kp[:, :, sl]) * scale
        a = torch.cat([s_c, s_t.unsqueeze(-1), s_p.masked_fill(~own, float("-inf"))], -1).softmax(-1)
        out_p[:, :, sl] = (
            torch.einsum("bhckj,bhjd->bhckd", a[..., :L], vc)
            + a[..., L : L + 1] * vm[:, :, sl, None]
            + torch.einsum("bhckm,bhcmd->bhckd", a[..., L + 1 :], vp[:, :, sl])
        )
    return torch.cat([out_c, out_m, out_p.reshape(B, H, C * K, D)], 2)


def _cross(st: Streams, q: Tensor, k: Tensor, v: Tensor, n: int, scale: float, layer: int) -> Tensor:
    if layer not in st.eps:
        st.eps[layer] = (torch.zeros_like(k, requires_grad=True), torch.zeros_like(v, requires_grad=True))
    ek, ev = (_rep(e, n) for e in st.eps[layer])
    k, v = _rep(k, n), _rep(v, n)
    reads = st.reads_eps[:, None, :, None].to(q.dtype)  # [B, 1, L, 1]
    # flagged queries read k_j + ek_j of every other j (the diagonal correction removes q_i . ek_i)
    s = q @ k.transpose(-1, -2) + reads * (q @ ek.transpose(-1, -2) - torch.diag_embed((q * ek).sum(-1)))
    a = _softmax_masked(s * scale, _clean_visible(st.key_valid))
    return a @ v + reads * (a @ ev - a.diagonal(dim1=-2, dim2=-1).unsqueeze(-1) * ev)


def _attention(module: nn.Module, query: Tensor, key: Tensor, value: Tensor, attention_mask, scaling: float,
               dropout: float = 0.0, *, st: Streams, **_: object) -> tuple[Tensor, None]:  # fmt: skip
    """The attention interface entry (``attention_mask`` is ignored: the layout is ``st``'s; the interface passes
    model-specific extras, e.g. ``sliding_window``, which full-attention decoders leave unused)."""
    fn = _streams if st.mode == "streams" else _cross
    out = fn(st, query, key, value, module.num_key_value_groups, scaling, module.layer_idx)
    return out.transpose(1, 2).contiguous(), None


@contextmanager
def kv_pass(model: nn.Module, state: Streams) -> Iterator[Streams]:
    """Route ``model``'s attention through this module with ``state``; checks every layer was reached."""
    cfg = model.config
    if getattr(cfg, "use_sliding_window", False) or any(
        t != "full_attention" for t in (getattr(cfg, "layer_types", None) or [])
    ):
        raise ValueError("perturbation_linear supports full-attention decoders only (no sliding window)")
    with attention_hook(model, partial(_attention, st=state)):
        yield state
    if len(state.deltas) + len(state.eps) != cfg.num_hidden_layers:
        raise TypeError(
            f"{type(model).__name__} does not route attention through transformers' attention interface; "
            "perturbation_linear supports Llama / Qwen2 / Qwen3 / Mistral-style decoders"
        )
