"""Answer spans: where the final answer sits inside a completion, in characters and then in tokens.

The probe reads the answer-span tokens; the reasoning tokens (everything in the completion before the answer's
marker, e.g. before ``ANSWER`` or ``\\boxed{``) are the ones OAR reweights. The marker itself is neither: its
last token sits at a probe position, so masking it would measure the probe's own input rather than the
reasoning (on the demo task it took the top weight in most rows), and it keeps weight 1. Recognised final-answer forms, the last one in the text wins:
``\\boxed{...}`` (balanced braces), ``#### x`` (GSM8K), ``The answer is x`` and the demo task's
``ANSWER x``. A finder may also be the user's own regular expression, ``"re:PATTERN"`` with exactly one
group, the answer (``"re:Final: (\\S+)"``): the match's start is its marker, the group its value.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

Span = tuple[int, int]
Found = tuple[int, int, int]  # (marker start, answer start, answer end) in characters


_BOXED_OPEN = re.compile(r"\\(?:boxed|fbox)\s*\{")


def _boxed_spans(text: str) -> list[Found]:
    """Contents of every ``\\boxed{...}`` / ``\\fbox{...}`` with balanced braces, in one linear pass.

    A stack of open braces (rather than one scan per ``\\boxed{``) keeps degenerate text such as thousands of
    unclosed ``\\boxed{`` linear instead of quadratic.
    """
    opens = {m.end() - 1: m.start() for m in _BOXED_OPEN.finditer(text)}  # box's "{" -> its "\\boxed"
    stack: list[int] = []  # content start of a box, or -1 for any other "{"
    spans = []
    for i, ch in enumerate(text):
        if ch == "{":
            stack.append(i + 1 if i in opens else -1)
        elif ch == "}" and stack:
            start = stack.pop()
            if start >= 0 and i > start:
                spans.append((opens[start - 1], start, i))
    return sorted(spans)


def _regex_spans(pattern: str) -> Callable[[str], list[Found]]:
    rx = re.compile(pattern)

    def find(text: str) -> list[Found]:
        out = []
        for m in rx.finditer(text):
            s, e = m.span(1)
            value = text[s:e].rstrip().rstrip(".").rstrip()
            if value:
                out.append((m.start(), s, s + len(value)))
        return out

    return find


SPAN_FINDERS: dict[str, Callable[[str], list[Found]]] = {
    "boxed": _boxed_spans,
    "hashes": _regex_spans(r"####[ \t]*([^\n]+)"),
    "answer_is": _regex_spans(
        r"(?i:the\s+(?:final\s+)?answer\s+is)[:\s]*\$*([^\n$]+?)\$*\s*(?:\n|$|\.(?:\s|$))"
    ),
    "task_marker": _regex_spans(r"ANSWER[ \t]*(-?\d[\d,]*(?:\.\d+)?|\S+)"),
}


#: The prefix of a user-supplied finder: ``"re:PATTERN"``, a regular expression with one group (the answer).
REGEX_PREFIX = "re:"


@functools.lru_cache(maxsize=64)
def _custom_finder(name: str) -> Callable[[str], list[Found]]:
    pattern = name[len(REGEX_PREFIX) :]
    try:
        groups = re.compile(pattern).groups
    except re.error as e:
        raise ValueError(f"span finder {name!r}: not a valid regular expression ({e})") from None
    if groups != 1:
        raise ValueError(
            f"span finder {name!r} has {groups} groups; it needs exactly one, around the answer "
            '(e.g. "re:Final: (\\S+)")'
        )
    return _regex_spans(pattern)


def get_finder(name: str) -> Callable[[str], list[Found]]:
    """The finder called ``name``: a key of :data:`SPAN_FINDERS` or ``"re:PATTERN"`` (one group, the answer).

    ValueError naming the finder when it is neither (or its pattern does not compile or has not one group).
    """
    if not isinstance(name, str):
        raise ValueError(f"a span finder is a name or 're:PATTERN' string, got {name!r}")
    if name.startswith(REGEX_PREFIX):
        return _custom_finder(name)
    if name not in SPAN_FINDERS:
        raise ValueError(
            f"unknown span finder {name!r}; expected some of {sorted(SPAN_FINDERS)} or your own pattern "
            '"re:PATTERN" with one group around the answer (e.g. "re:Final: (\\S+)")'
        )
    return SPAN_FINDERS[name]


def check_finders(finders: Sequence[str] | None) -> None:
    """Refuse, at config time, anything but a list of finders :func:`get_finder` accepts (None: all built-in)."""
    if finders is None:
        return
    if isinstance(finders, str) or not isinstance(finders, Sequence):
        raise ValueError(
            f"span_finders must be a list of finder names or 're:PATTERN' strings, got {finders!r}"
        )
    for name in finders:
        try:
            get_finder(name)
        except ValueError as e:
            raise ValueError(f"span_finders: {e}") from None


def describe_finders(finders: Sequence[str] | None = None) -> str:
    """The answer forms ``finders`` look for, for a message (``\\boxed{x}, #### x, ...``)."""
    shown = {
        "boxed": "\\boxed{x}",
        "hashes": "#### x",
        "answer_is": "The answer is x",
        "task_marker": "ANSWER x",
    }
    names = list(SPAN_FINDERS) if finders is None else list(finders)
    return ", ".join(shown.get(n, n) for n in names)


def find_answer(text: str, finders: Sequence[str] | None = None) -> Found | None:
    """``(marker_start, start, end)`` of the final answer in ``text`` (characters), or None.

    Every finder in ``finders`` (default: all of :data:`SPAN_FINDERS`; ``"re:PATTERN"``: the user's own, see
    :func:`get_finder`) proposes answers; the one whose value
    starts last is the final answer. ``marker_start`` is where its marker (``\\boxed{``, ``####``,
    ``The answer is``, ``ANSWER``) begins.
    """
    names = list(SPAN_FINDERS) if finders is None else list(finders)
    found = [f for n in names for f in get_finder(n)(text)]
    return max(found, key=lambda f: (f[1], -f[2], f[0])) if found else None


def find_answer_span(text: str, finders: Sequence[str] | None = None) -> Span | None:
    """Character span ``(start, end)`` of the final answer's value in ``text``, or None (see :func:`find_answer`)."""
    found = find_answer(text, finders)
    return None if found is None else (found[1], found[2])


def token_char_offsets(tokenizer, ids: Sequence[int]) -> tuple[str, list[Span]]:
    """Decode ``ids`` and give each token its ``(start, end)`` characters in the decoded text.

    Uses the fast tokenizer's offsets when re-encoding the text reproduces ``ids``; otherwise decodes every
    prefix (always consistent with the decoded text, ``O(T^2)`` characters).
    """
    ids = list(ids)
    text = tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    try:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        if list(enc["input_ids"]) == ids:
            return text, [tuple(o) for o in enc["offset_mapping"]]
    except (NotImplementedError, TypeError, ValueError):
        pass  # slow tokenizers have no offsets
    prefixes = tokenizer.batch_decode(
        [ids[: k + 1] for k in range(len(ids))], skip_special_tokens=False, clean_up_tokenization_spaces=False
    )
    offsets, prev = [], 0
    for p in prefixes:
        end = max(prev, min(len(p), len(text)))
        offsets.append((prev, end))
        prev = end
    return text, offsets


@dataclass
class SpanMasks:
    """Completion-level masks: ``reasoning[B, T]``, ``answer[B, T]`` (bool) and ``found[B]``."""

    reasoning: Tensor
    answer: Tensor
    found: Tensor


def completion_span_masks(
    tokenizer, completion_ids: Tensor, completion_mask: Tensor, finders: Sequence[str] | None = None
) -> SpanMasks:
    """Locate the answer span of each completion in token positions.

    Args:
        tokenizer: the policy's (fast) tokenizer.
        completion_ids, completion_mask: ``[B, T]``, right padded.
        finders: names in :data:`SPAN_FINDERS` or ``"re:PATTERN"`` strings (default: all built-in).

    Returns:
        :class:`SpanMasks`. Answer tokens overlap the answer's characters; reasoning tokens end at or before
        the first character of its marker (the marker's tokens are in neither mask). A completion without a
        span has both masks empty and ``found = False``.
    """
    B, T = completion_ids.shape
    reasoning = torch.zeros(B, T, dtype=torch.bool)
    answer = torch.zeros(B, T, dtype=torch.bool)
    found = torch.zeros(B, dtype=torch.bool)
    for b in range(B):
        n = int(completion_mask[b].sum())
        text, offsets = token_char_offsets(tokenizer, completion_ids[b, :n].tolist())
        hit = find_answer(text, finders)
        if hit is None:
            continue
        m, s, e = hit
        for t, (a, z) in enumerate(offsets):
            if z <= m:
                reasoning[b, t] = True
            elif a < e and z > max(a, s):
                answer[b, t] = True
        found[b] = bool(answer[b].any())
        if not found[b]:
            reasoning[b] = False
    device = completion_ids.device
    return SpanMasks(reasoning.to(device), answer.to(device), found.to(device))


def trained_spans(spans: SpanMasks, trained: Tensor) -> SpanMasks:
    """``spans`` restricted to the tokens the trainer trains on (TRL: ``completion_mask * tool_mask``).

    Tool and environment tokens (``tool_mask`` 0) are never reasoning, so they are never scored and keep weight
    1 (the loss masks them anyway), and the reasoning weights keep their mass over the trained tokens. A row
    whose final answer touches such a token has no span (``found`` False): the answer is not the policy's.
    """
    trained = trained.to(spans.reasoning.device).bool()
    found = spans.found & ~(spans.answer & ~trained).any(-1)
    return SpanMasks(spans.reasoning & trained & found[:, None], spans.answer & found[:, None], found)
