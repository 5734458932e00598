"""The one adapter between the scorers and a Hugging Face causal LM: decoder / LM head, KV-cache slicing, the
attention hook, eval mode and precision. Every transformers-internal call of ``oarl.core`` is in this file, so
the transformers range CI tests at both ends (requirements/lock.txt, low.txt) rests on one file.

The scorers never ask the model for ``[B, L, V]`` logits: they run the decoder for hidden states and apply
the LM head at the few positions a probe reads.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS


def position_ids_from_mask(attention_mask: Tensor) -> Tensor:
    """``[B, L]`` position ids counting only attended tokens, so left and right padding give equal results."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def decoder_and_head(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    """Split a ``*ForCausalLM`` into its decoder (returns hidden states) and its LM head."""
    get_head = getattr(model, "get_output_embeddings", None)
    get_decoder = getattr(model, "get_decoder", None)
    head = get_head() if get_head else None
    decoder = get_decoder() if get_decoder else None
    if head is None or decoder is None or decoder is model:
        raise TypeError(
            f"{type(model).__name__} is not a causal LM with a separate decoder and LM head "
            "(expected a transformers *ForCausalLM model)"
        )
    return decoder, head


def decoder_hidden(
    model: nn.Module,
    attention_mask: Tensor,
    position_ids: Tensor,
    input_ids: Tensor | None = None,
    inputs_embeds: Tensor | None = None,
    past_key_values: Any = None,
    use_cache: bool = False,
) -> tuple[Tensor, Any]:
    """Run the decoder only. Returns final hidden states ``[B, L_new, D]`` and the KV cache (or None)."""
    decoder, _ = decoder_and_head(model)
    out = decoder(
        input_ids=input_ids,
        inputs_embeds=inputs_embeds,
        attention_mask=attention_mask,
        position_ids=position_ids,
        past_key_values=past_key_values,
        use_cache=use_cache,
    )
    return out.last_hidden_state, (out.past_key_values if use_cache else None)


#: Vocabulary rows per float32 matmul in :func:`head_logits` (bounds the transient float32 weight copy).
HEAD_CHUNK_ROWS = 32768


def head_logits(model: nn.Module, hidden: Tensor) -> Tensor:
    """Apply the LM head (and final-logit soft-capping where the config has it) to ``hidden[..., D]``.

    Returns ``[..., V]`` logits. A plain ``nn.Linear`` head in bf16/fp16 is applied in float32 (weights upcast
    ``HEAD_CHUNK_ROWS`` vocabulary rows at a time): the probes compare logits of two forwards, and bf16 logits
    (about 3 significant digits) would round the difference away. Other heads run as they are.
    """
    _, head = decoder_and_head(model)
    if type(head) is nn.Linear and head.weight.dtype in (torch.bfloat16, torch.float16):
        h = hidden.float()
        logits = torch.cat(
            [
                nn.functional.linear(
                    h,
                    head.weight[i : i + HEAD_CHUNK_ROWS].float(),
                    None if head.bias is None else head.bias[i : i + HEAD_CHUNK_ROWS].float(),
                )
                for i in range(0, head.weight.shape[0], HEAD_CHUNK_ROWS)
            ],
            dim=-1,
        )
    else:
        logits = head(hidden)
    cap = getattr(getattr(model, "config", None), "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


def gather_positions(hidden: Tensor, positions: Tensor) -> Tensor:
    """``hidden[B, L, D]`` at ``positions[B, K]`` -> ``[B, K, D]``."""
    return hidden.gather(1, positions.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))


def full_logits(model: nn.Module, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
    """Plain full forward ``[B, L, V]`` with mask-derived position ids (the reference path)."""
    return model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids_from_mask(attention_mask),
        use_cache=False,
    ).logits


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule in eval mode (no dropout) and restore each one's own mode afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training


@contextlib.contextmanager
def float32_weights(model: nn.Module, enabled: bool = True) -> Iterator[nn.Module]:
    """Run ``model`` in float32: every bf16/fp16 parameter and buffer is upcast in place and cast back on exit.

    The round trip is exact (bf16 and fp16 values are float32 values), every tensor keeps its identity (an
    optimizer's references stay valid) and its own dtype (LoRA adapters kept in float32 stay float32). Costs
    4 bytes per low-precision parameter while active. A no-op when ``enabled`` is False.
    """
    saved: list[tuple[Tensor, torch.dtype]] = []
    if enabled:
        seen: set[int] = set()
        for t in [*model.parameters(), *model.buffers()]:
            if id(t) not in seen and t.dtype in (torch.bfloat16, torch.float16):
                seen.add(id(t))
                saved.append((t, t.dtype))
                t.data = t.data.float()
    try:
        yield model
    finally:
        for t, dtype in saved:
            t.data = t.data.to(dtype)


def default_mask_token_id(model: nn.Module, mask_token_id: int | None) -> int:
    """The replacement token for OAR-P: the given id, else the model's pad token."""
    if mask_token_id is not None:
        return int(mask_token_id)
    pad = getattr(getattr(model, "config", None), "pad_token_id", None)
    if pad is None:
        raise ValueError("mask_token_id not given and model.config.pad_token_id is None; pass mask_token_id")
    return int(pad)


def check_layout(
    input_ids: Tensor, attention_mask: Tensor, reasoning_mask: Tensor, answer_mask: Tensor
) -> None:
    """Raise a clear ValueError when the four ``[B, L]`` tensors do not line up."""
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must be [B, L], got shape {tuple(input_ids.shape)}")
    for name, t in (
        ("attention_mask", attention_mask),
        ("reasoning_mask", reasoning_mask),
        ("answer_mask", answer_mask),
    ):
        if t.shape != input_ids.shape:
            raise ValueError(
                f"{name} has shape {tuple(t.shape)}, expected {tuple(input_ids.shape)} like input_ids"
            )
    if (reasoning_mask.bool() & answer_mask.bool()).any():
        raise ValueError("reasoning_mask and answer_mask overlap; a token is either reasoning or answer")
    if (reasoning_mask.bool() & ~attention_mask.bool()).any() or (
        answer_mask.bool() & ~attention_mask.bool()
    ).any():
        raise ValueError("reasoning_mask/answer_mask mark padded positions (attention_mask == 0)")


def reusable_cache(cache: Any) -> bool:
    """Whether ``cache`` can be cut to a prefix (sliding-window or other exotic layers keep a truncated history)."""
    return isinstance(cache, DynamicCache) and all(type(layer) is DynamicLayer for layer in cache.layers)


def prefix_cache(
    cache: DynamicCache | None, row: int, length: int, copies: int, config
) -> DynamicCache | None:
    """The clean cache of ``row`` cut to its first ``length`` positions, repeated ``copies`` times."""
    if cache is None or length == 0:
        return None
    data = [
        (
            layer.keys[row : row + 1, :, :length].expand(copies, -1, -1, -1),
            layer.values[row : row + 1, :, :length].expand(copies, -1, -1, -1),
        )
        for layer in cache.layers
    ]
    return DynamicCache(ddp_cache_data=data, config=config)


def mixed_cache(
    new: DynamicCache, clean: DynamicCache, row: int, start: int, stop: int, config
) -> DynamicCache:
    """``new`` (copies x [0, start)) followed by the clean keys/values of ``row`` at ``[start, stop)``."""
    data = []
    for ln, lc in zip(new.layers, clean.layers, strict=True):
        copies = ln.keys.shape[0]
        k = lc.keys[row : row + 1, :, start:stop].expand(copies, -1, -1, -1)
        v = lc.values[row : row + 1, :, start:stop].expand(copies, -1, -1, -1)
        data.append((torch.cat([ln.keys, k], 2), torch.cat([ln.values, v], 2)))
    return DynamicCache(ddp_cache_data=data, config=config)


#: The attention-implementation name :func:`attention_hook` registers while it is active.
HOOK = "oarl_hook"


@contextlib.contextmanager
def attention_hook(model: nn.Module, fn: Callable[..., tuple[Tensor, None]]) -> Iterator[None]:
    """Route ``model``'s attention through ``fn`` for the duration (models that call transformers' attention
    interface: Llama, Qwen2/3, Mistral). ``fn(module, query, key, value, attention_mask, scaling, dropout, **kw)``
    gets ``[B, H, L, D]`` tensors and returns ``([B, L, H, D], None)``; the model's 4-D mask is not built (None).

    Registered only while active (and any outer hook restored after), so nothing is left behind at import.
    """
    cfg = model.config
    outer = ALL_ATTENTION_FUNCTIONS.get(HOOK)
    old = cfg._attn_implementation
    ALL_ATTENTION_FUNCTIONS[HOOK] = fn
    cfg._attn_implementation = HOOK
    try:
        yield
    finally:
        cfg._attn_implementation = old
        if outer is None:
            del ALL_ATTENTION_FUNCTIONS[HOOK]
        else:
            ALL_ATTENTION_FUNCTIONS[HOOK] = outer


@contextlib.contextmanager
def attention_probabilities(
    model: nn.Module, attention_mask: Tensor, reduce: Callable[[Tensor], Tensor]
) -> Iterator[list[Tensor]]:
    """Run ``model``'s attention eagerly under the causal and padding mask of ``attention_mask[B, L]`` and yield
    a list that each layer's forward appends ``reduce(probs)`` to, ``probs[B, H, L, L]`` (query x key, float32:
    the softmax the layer applied). ``reduce`` keeps what is needed (the full ``[B, H, L, L]`` of every layer
    would not fit on a real model). Each query also sees itself, so a padded query has a finite row."""
    keep = attention_mask.bool()
    L = keep.shape[-1]
    causal = torch.ones(L, L, dtype=torch.bool, device=keep.device).tril()
    visible = (causal & keep[:, None, :]) | torch.eye(L, dtype=torch.bool, device=keep.device)
    found: list[Tensor] = []

    def eager(module, query, key, value, mask, scaling, dropout=0.0, **_):  # noqa: ANN001
        n = query.shape[1] // key.shape[1]
        key, value = key.repeat_interleave(n, dim=1), value.repeat_interleave(n, dim=1)
        logits = (query.float() @ key.float().transpose(-1, -2)) * scaling
        probs = torch.softmax(logits.masked_fill(~visible[:, None], float("-inf")), dim=-1)
        found.append(reduce(probs))
        return (probs.to(value.dtype) @ value).transpose(1, 2).contiguous(), None

    with attention_hook(model, eager):
        yield found
