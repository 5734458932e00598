"""One colour scale for token weights, shared by the HTML report and the PNG heatmap.

Weight 1 (unchanged advantage) is white; boosted weights go toward red up to the largest weight ``hi``,
suppressed ones toward blue down to the least weight ``lo`` (ColorBrewer RdBu ends).
"""

from __future__ import annotations

BOOST = (202, 0, 32)
SUPPRESS = (5, 113, 176)


def weight_strength(w: float, lo: float, hi: float) -> float:
    """How far ``w`` is from 1 toward its end of the scale, in [0, 1] (0 = white)."""
    if w >= 1.0:
        t = (w - 1.0) / max(hi - 1.0, 1e-9)
    else:
        t = (1.0 - w) / max(1.0 - lo, 1e-9)
    return min(max(t, 0.0), 1.0)


def weight_rgb(w: float, lo: float, hi: float) -> tuple[int, int, int]:
    """The colour of weight ``w`` on the scale ``[lo, hi]`` as 0-255 RGB."""
    t, end = weight_strength(w, lo, hi), BOOST if w >= 1.0 else SUPPRESS
    r, g, b = (round(255 + t * (c - 255)) for c in end)
    return r, g, b


def dark(w: float, lo: float, hi: float) -> bool:
    """Whether text on the colour of ``w`` should be white (the colour is strong)."""
    return weight_strength(w, lo, hi) > 0.6
