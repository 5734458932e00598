"""Which kinds of tokens each scorer credits: numbers, operators, words, formatting, answer.

For real reasoning (BPE tokens, prose) a picture per row is not enough to compare scorers; this sorts every
completion token up to the answer's end into one class and reports, per scorer and class, summed over rows:

- ``tokens``: the class's share of the tokens (what a scorer giving every token the same weight would show),
- ``weight``: its share of the OAR weight mass (answer tokens keep weight 1 by construction),
- ``top10``: its share of each row's top-10% reasoning tokens by score (what the scorer ranks first),
- ``mean_weight``: the mean OAR weight of its tokens (1 = plain GRPO's weight).
"""

from __future__ import annotations

import math
import re

CLASSES = ("numbers", "operators", "words", "formatting", "answer")
_OPERATORS = set("+-*/=×÷^<>%")


def token_class(text: str, role: str) -> str:
    """The class of one token piece (``role`` from :class:`oarl.lab.viz.attribution.TokenView`)."""
    if role == "answer":
        return "answer"
    s = text.strip()
    if any(c.isdigit() for c in s):
        return "numbers"
    if s and all(c in _OPERATORS for c in s):
        return "operators"
    if re.search(r"[A-Za-z]", s):
        return "words"
    return "formatting"  # whitespace, newlines, punctuation, markdown, LaTeX braces


def class_shares(att) -> dict[str, dict[str, dict[str, float]]]:
    """``{method: {class: {tokens, weight, top10, mean_weight}}}`` over the rows of an Attribution."""
    out = {}
    for method, r in att.methods.items():
        count = dict.fromkeys(CLASSES, 0)
        mass = dict.fromkeys(CLASSES, 0.0)
        top = dict.fromkeys(CLASSES, 0)
        for b, row in enumerate(att.rows):
            if not row.found:
                continue
            toks = [t for t in row.completion if t.role in ("reasoning", "answer")]
            for t in toks:
                c = token_class(t.text, t.role)
                count[c] += 1
                mass[c] += float(r.weights[b, t.column])
            reasoning = [t for t in toks if t.role == "reasoning"]
            k = max(1, math.ceil(0.1 * len(reasoning)))
            ranked = sorted(reasoning, key=lambda t: -float(r.scores[b, t.column]))[:k]
            for t in ranked:
                top[token_class(t.text, t.role)] += 1
        n, w, k = sum(count.values()), sum(mass.values()), sum(top.values())
        out[method] = {
            c: {
                "tokens": count[c] / n if n else math.nan,
                "weight": mass[c] / w if w else math.nan,
                "top10": top[c] / k if k else math.nan,
                "mean_weight": mass[c] / count[c] if count[c] else math.nan,
            }
            for c in CLASSES
        }
    return out


def markdown(shares: dict, labels: dict[str, str] | None = None) -> str:
    """One row per scorer: each class's top-10% share and mean weight (``top10 / mean weight``)."""
    labels = labels or {}
    first = next(iter(shares.values()))
    lines = ["| scorer | " + " | ".join(CLASSES) + " |", "|---" * (len(CLASSES) + 1) + "|"]
    lines.append("| token share | " + " | ".join(f"{first[c]['tokens']:.2f}" for c in CLASSES) + " |")
    for m, cls in shares.items():
        cells = [f"{cls[c]['top10']:.2f} / {cls[c]['mean_weight']:.2f}" for c in CLASSES]
        lines.append(f"| {labels.get(m, m)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
