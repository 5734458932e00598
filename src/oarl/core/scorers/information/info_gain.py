"""Information gain along the prefix (IGPO arXiv 2510.14967, PACR 2510.22255, GRPO-VPS 2604.20659): how much
reading up to token t raises the teacher-forced probability of the completion's own answer.

Every prefix is scored in one forward per chunk of copies: the clean row, then for each cut ``c`` a copy of the
suffix (the tokens after the reasoning, up to the end of the answer) that sees the clean keys ``<= c`` and its
own earlier tokens, at the positions it would have right after ``c`` (a 4-D visibility mask through
:func:`oarl.core.model.attention_hook`, as the probe streams of ``perturbation_linear`` do).
"""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor, nn

from oarl.core.layout import Layout
from oarl.core.model import attention_hook, decoder_hidden, eval_mode, gather_positions, head_logits
from oarl.core.probes import ordered_positions
from oarl.core.scorers.registry import ScorerSpec, register_scorer

CREDITS = ("gain", "abs")


def _check(opts) -> None:
    if opts.credit not in CREDITS:
        raise ValueError(f"info_gain: credit must be one of {CREDITS}, got {opts.credit!r}")
    if not (isinstance(opts.max_copies, int) and opts.max_copies >= 1):
        raise ValueError(f"info_gain: max_copies must be an int >= 1, got {opts.max_copies!r}")
    if not all(isinstance(t, int) for t in opts.step_token_ids):
        raise ValueError(f"info_gain: step_token_ids must be token ids (ints), got {opts.step_token_ids!r}")


def _visible_attention(module: nn.Module, query: Tensor, key: Tensor, value: Tensor, attention_mask, scaling: float,
                       dropout: float = 0.0, *, visible: Tensor, **_: object) -> tuple[Tensor, None]:  # fmt: skip
    """Attention under ``visible[B, N, N]`` (query x key, bool) instead of the model's mask (SDPA: on GPUs a
    memory-efficient kernel, without the ``[B, H, N, N]`` scores)."""
    n = module.num_key_value_groups
    key, value = key.repeat_interleave(n, dim=1), value.repeat_interleave(n, dim=1)
    out = nn.functional.scaled_dot_product_attention(
        query, key, value, attn_mask=visible[:, None], scale=scaling
    )
    return out.transpose(1, 2).contiguous(), None


def cut_points(
    attn: Tensor, reasoning: Tensor, step_token_ids: tuple[int, ...], ids: Tensor
) -> tuple[Tensor, Tensor]:
    """For every column: the last column of the prefix that ends with its token (or its step), and the last
    column of the prefix before it (-1: the empty prefix). ``[B, L]`` long each (meaningful at reasoning).

    Per token: ``after = t``, ``before`` = the attended column before t. Per step (``step_token_ids`` given): a
    step is a run of reasoning tokens ending at a delimiter token or at the last reasoning token; every token
    of a step has the step's ``after`` (its last column) and ``before`` (the column before its first token).
    """
    B, L = attn.shape
    col = torch.arange(L, device=attn.device).expand(B, L)
    prev = torch.where(attn, col, -1).cummax(-1).values  # last attended column <= t
    before = torch.cat([torch.full((B, 1), -1, device=attn.device), prev[:, :-1]], 1)
    if not step_token_ids:
        return col.clone(), before
    delim = torch.isin(ids, torch.tensor(step_token_ids, device=ids.device)) & reasoning
    last = reasoning & ~torch.cat([reasoning[:, 1:], torch.zeros_like(reasoning[:, :1])], 1)
    ends = delim | last  # a delimiter, or the last token of a run of reasoning columns
    # after: the first step end at or after t; before: the column before the step's first token.
    big = torch.full_like(col, L)
    after = torch.where(ends, col, big).flip(-1).cummin(-1).values.flip(-1)
    after_end = torch.cat([torch.ones_like(reasoning[:, :1]), ends[:, :-1] | ~reasoning[:, :-1]], 1)
    start = reasoning & after_end  # a step's first token: after a step end or after a non-reasoning column
    step_before = torch.where(start, before, torch.full_like(before, -2)).cummax(-1).values
    return after.clamp(max=L - 1), step_before.clamp(min=-1)


def _suffix(attn: Tensor, reasoning: Tensor, answer: Tensor, rows: Tensor) -> Tensor:
    """``[B, L]`` bool: the attended columns after the last reasoning token up to the last answer token (the
    bridge, e.g. ``####``, and the answer), in the rows ``rows[B]``."""
    col = torch.arange(attn.shape[1], device=attn.device)
    last_r = torch.where(reasoning, col, -1).amax(-1, keepdim=True)
    last_a = torch.where(answer, col, -1).amax(-1, keepdim=True)
    suffix = attn & (col > last_r) & (col <= last_a) & rows[:, None]
    if (answer & rows[:, None] & ~suffix).any():
        raise ValueError("info_gain: an answer token comes before the last reasoning token")
    return suffix


def _cuts(after: Tensor, before: Tensor, reasoning: Tensor, L: int) -> tuple[Tensor, Tensor]:
    """Each row's distinct cut columns, sorted: ``cuts[B, C]`` (padded with ``L``) and ``valid[B, C]``."""
    rows = [torch.cat([after[b][reasoning[b]], before[b][reasoning[b]]]).unique() for b in range(len(after))]
    C = max(1, max(len(r) for r in rows))
    cuts = torch.full((len(rows), C), L, dtype=torch.long, device=after.device)
    for b, r in enumerate(rows):
        cuts[b, : len(r)] = r
    return cuts, cuts < L


def _visibility(attn: Tensor, cuts: Tensor, slot_valid: Tensor) -> Tensor:
    """``[B, N, N]`` bool, ``N = L + n S``: clean causal; copy ``(c, j)`` sees clean columns ``<= cuts[:, c]`` and
    its own slots ``<= j``; the diagonal always (invalid slots stay finite). ``slot_valid[B, n, S]``."""
    B, L = attn.shape
    _, n, S = slot_valid.shape
    col = torch.arange(L, device=attn.device)
    clean = (col[None, :] <= col[:, None]) & attn[:, None, :]  # [B, L, L]
    copy_clean = (col <= cuts[:, :, None]) & attn[:, None, :]  # [B, n, L]
    copy_clean = copy_clean[:, :, None, :].expand(B, n, S, L).reshape(B, n * S, L)
    j = torch.arange(S, device=attn.device)
    own = (j[None, :] <= j[:, None])[None, None] & slot_valid[:, :, None, :]  # [B, n, S, S]
    same = torch.eye(n, dtype=torch.bool, device=attn.device)[None, :, None, :, None]
    copy_copy = (same & own[:, :, :, None, :]).reshape(B, n * S, n * S)
    top = torch.cat([clean, torch.zeros(B, L, n * S, dtype=torch.bool, device=attn.device)], 2)
    vis = torch.cat([top, torch.cat([copy_clean, copy_copy], 2)], 1)
    return vis | torch.eye(L + n * S, dtype=torch.bool, device=attn.device)


def answer_logprobs(model: nn.Module, layout: Layout, cuts: Tensor, cut_valid: Tensor, suffix: Tensor,
                    max_copies: int) -> Tensor:  # fmt: skip
    """``F[B, C]`` float64: ``log p(answer | tokens at attended columns <= cuts[b, c], then the suffix)``, the
    answer tokens' teacher-forced log-probabilities summed (the bridge tokens of the suffix are read, not
    scored). Copies of the suffix, ``max_copies`` per forward (the first suffix token is predicted by the clean
    position at the cut; the last is never an input)."""
    ids, attn, answer = layout.input_ids, layout.attention_mask.bool(), layout.answer_mask.bool()
    B, L = ids.shape
    M = int(suffix.sum(-1).max())
    s_pos, s_valid = ordered_positions(suffix, M)
    s_ids, s_ans = ids.gather(1, s_pos), answer.gather(1, s_pos) & s_valid
    n_before = torch.cat([torch.zeros_like(attn[:, :1], dtype=torch.long), attn.long().cumsum(-1)], 1)
    pos_after_cut = n_before.gather(1, (cuts + 1).clamp(max=L))  # tokens in the prefix = next position
    S = M - 1
    F = torch.zeros(cuts.shape, dtype=torch.float64, device=ids.device)
    for c0 in range(0, cuts.shape[1], max_copies):
        sl = slice(c0, c0 + max_copies)
        cut, valid, start = cuts[:, sl], cut_valid[:, sl], pos_after_cut[:, sl]
        n = cut.shape[1]
        slot_valid = valid[:, :, None] & s_valid[:, None, 1:]  # slot j holds s_j and predicts s_{j+1}
        copy_ids = torch.where(slot_valid, s_ids[:, None, :S], 0).reshape(B, n * S)
        copy_pos = (start[:, :, None] + torch.arange(S, device=ids.device)).reshape(B, n * S)
        vis = _visibility(attn, cut.clamp(max=L - 1), slot_valid)
        inputs = torch.cat([ids, copy_ids], 1)
        positions = torch.cat([layout.position_ids, copy_pos], 1)
        with attention_hook(model, partial(_visible_attention, visible=vis)):
            hidden, _ = decoder_hidden(model, torch.ones_like(inputs), positions, input_ids=inputs)
        # Prediction k of copy c: k = 0 at the clean cut column, k >= 1 at slot k - 1 of the copy.
        at = torch.cat([cut.clamp(max=L - 1)[:, :, None], L + (torch.arange(n, device=ids.device) * S)[None, :, None]
                        + torch.arange(S, device=ids.device)[None, None, :].expand(B, n, S)], 2)  # fmt: skip
        scored = valid[:, :, None] & s_ans[:, None, :]  # [B, n, M]
        if not scored.any():
            continue
        h = gather_positions(hidden, at.reshape(B, n * M)).reshape(B, n, M, -1)[scored]
        logp = torch.log_softmax(head_logits(model, h).float(), dim=-1)
        target = s_ids[:, None, :].expand(B, n, M)[scored]
        picked = logp.gather(-1, target[:, None]).squeeze(-1).double()
        part = torch.zeros(B, n, M, dtype=torch.float64, device=ids.device)
        part[scored] = picked
        F[:, sl] = part.sum(-1)
    return F


@register_scorer(
    ScorerSpec(
        "info_gain",
        "information",
        frozenset({"model"}),
        "experimental",
        "linear",
        check=_check,
        why="the best credit on the flag task, yet not above GRPO: +0.029 [-0.006, +0.063] AUC (53% of the oracle's gain), +0.073 [+0.030, +0.116] over OAR-P, 5 seeds (docs/credit_study.md)",
        label="InfoGain",
    )  # fmt: skip
)
@torch.no_grad()
def info_gain_scores(
    model: nn.Module,
    layout: Layout,
    credit: str = "gain",
    step_token_ids: tuple[int, ...] = (),
    max_copies: int = 64,
) -> Tensor:
    """Information gain of each reasoning token about the completion's own answer (IGPO arXiv 2510.14967, PACR
    2510.22255, GRPO-VPS 2604.20659): ``gain_t = log p(answer | prefix <= t) - log p(answer | prefix < t)``,
    the answer teacher-forced right after the prefix (with the tokens between the reasoning and the answer).

    Per step when ``step_token_ids`` is given: a step ends at one of those tokens (or at the last reasoning
    token) and each of its tokens gets the step's gain. ``credit="gain"`` (default) scores the signed gain:
    the row's own answer is what its reward judged, so the tokens that made it likelier are the ones that
    decided it, in a correct row (``A > 0``: boosted toward it) as in a wrong one (boosted away); tokens that
    made it less likely are suppressed. ``credit="abs"``: ``|gain_t|``. Cost: ``C`` copies of the ``M``-token
    suffix for ``C`` cuts (``T + 1`` per token), ``max_copies`` per forward, each forward also rerunning the
    row. Returns ``[B, L]`` float32, 0 outside ``reasoning_mask`` and in rows without an answer.
    """
    ids, attn = layout.input_ids, layout.attention_mask.bool()
    reasoning, answer = layout.reasoning_mask.bool(), layout.answer_mask.bool()
    B, L = ids.shape
    scores = torch.zeros(ids.shape, dtype=torch.float32, device=ids.device)
    rows = reasoning.any(-1) & answer.any(-1)
    if not rows.any():
        return scores
    cfg = model.config
    if getattr(cfg, "use_sliding_window", False) or any(
        t != "full_attention" for t in (getattr(cfg, "layer_types", None) or [])
    ):
        raise ValueError("info_gain supports full-attention decoders only (no sliding window)")
    reasoning = reasoning & rows[:, None]
    suffix = _suffix(attn, reasoning, answer, rows)
    after, before = cut_points(attn, reasoning, tuple(step_token_ids), ids)
    if (before[reasoning] < 0).any():
        raise ValueError("info_gain: a row's first reasoning token has no token before it (no prompt)")
    cuts, cut_valid = _cuts(after, before, reasoning, L)
    with eval_mode(model):
        F = answer_logprobs(model, layout, cuts, cut_valid, suffix, max_copies)
    gain = F.gather(1, torch.searchsorted(cuts, after).clamp(max=cuts.shape[1] - 1)) - F.gather(
        1, torch.searchsorted(cuts, before).clamp(max=cuts.shape[1] - 1)
    )
    gain = gain.abs() if credit == "abs" else gain
    return torch.where(reasoning, gain, torch.zeros_like(gain)).float()
