"""Input checks where the data enters the trainer: refuse what would otherwise fail deep inside a step.

An empty or whitespace-only prompt tokenises to nothing and raised ``IndexError: index -1 is out of bounds``
from inside ``generate`` at step 1; :func:`check_prompts` names the row at construction instead.
"""

from __future__ import annotations

from typing import Any

#: Rows checked at construction (a dataset bigger than this is checked on its first rows only: the scan is
#: meant to be instant, and a generated or streamed dataset is not read ahead).
MAX_ROWS_CHECKED = 100_000


def _prompt_text(prompt: Any) -> str | None:
    """The text of a prompt: a string, or the joined contents of a conversation's messages; None if neither."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and all(isinstance(m, dict) for m in prompt):
        parts = []
        for m in prompt:
            content = m.get("content")
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list):  # multimodal: [{"type": "text", "text": ...}, {"type": "image"}]
                for c in content:
                    if isinstance(c, dict) and (c.get("type") != "text" or str(c.get("text", "")).strip()):
                        parts.append(str(c.get("text", "")) if c.get("type") == "text" else "<non-text>")
        return "".join(parts)
    return None


def check_prompts(dataset: Any, column: str = "prompt") -> None:
    """ValueError naming the first row (0-based) whose ``column`` is empty or whitespace only.

    A dataset without ``len`` or without the column (an iterable dataset, a custom collator's) is not checked.
    """
    if dataset is None or not hasattr(dataset, "__len__"):
        return
    names = getattr(dataset, "column_names", None)
    if names is not None and column not in names:
        return
    n = min(len(dataset), MAX_ROWS_CHECKED)
    prompts = dataset[:n][column] if names is not None else [row.get(column) for row in list(dataset)[:n]]
    for i, prompt in enumerate(prompts):
        text = _prompt_text(prompt)
        if text is not None and not text.strip():
            raise ValueError(
                f"train_dataset row {i}: the {column!r} is empty or whitespace only; remove the row or give it "
                "text (an empty prompt leaves the model nothing to continue)"
            )
