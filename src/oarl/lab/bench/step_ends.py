"""Step delimiters from a tokenizer: the token ids that end a reasoning step, for the per-step scorers.

``info_gain`` and ``resample`` take ``step_token_ids``: a step is a run of reasoning tokens ending at one of
them. On a BPE vocabulary a newline comes in many tokens (``\\n``, ``\\n\\n``, ``.\\n``, ...), so the ids are
found by decoding every token of the vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence

SENTENCE_ENDS = (".", "!", "?")


def step_token_ids(tokenizer, newline: bool = True, sentence_ends: Sequence[str] = ()) -> tuple[int, ...]:
    """Sorted ids of the non-special vocabulary tokens that end a step: with ``newline``, those whose text
    contains ``\\n``; and those whose text, trailing whitespace removed, ends with one of ``sentence_ends``
    (e.g. :data:`SENTENCE_ENDS`; a token ``.`` inside a decimal number counts too)."""
    special = set(getattr(tokenizer, "all_special_ids", ()) or ())
    ends = tuple(sentence_ends)
    out = []
    for i in range(len(tokenizer)):
        if i in special:
            continue
        text = tokenizer.decode([i])
        if (newline and "\n" in text) or (ends and text.rstrip().endswith(ends) and text.strip()):
            out.append(i)
    return tuple(out)
