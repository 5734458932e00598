"""Figures: training curves of several runs on one figure, and a token-attribution strip."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers
import matplotlib.pyplot as plt  # noqa: E402

from oarl.lab.viz.palette import dark, weight_rgb  # noqa: E402

PANELS = [
    ("accuracy", "held-out accuracy (greedy)"),
    ("sampled_accuracy", "held-out accuracy (sampled)"),
    ("reward", "reward"),
    ("entropy", "policy entropy"),
    ("oar/ess_ratio", "ESS-ratio of weights"),
    ("oar/top10_adv_share", "top-10% |A| share"),
]


def read_metrics(paths: Iterable[str | Path]) -> list[dict]:
    """All records of ``metrics.jsonl`` files (or run folders holding one)."""
    records = []
    for p in paths:
        p = Path(p)
        p = p / "metrics.jsonl" if p.is_dir() else p
        with p.open() as f:
            records.extend(json.loads(line) for line in f if line.strip())
    return records


#: Per-step training metrics are noisy (a few prompts per step): drawn as a trailing rolling mean.
SMOOTH = {"reward", "entropy", "oar/ess_ratio", "oar/top10_adv_share"}


def _rolling(values: list[float], window: int) -> list[float]:
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v - (values[i - window] if i >= window else 0.0)
        out.append(acc / min(i + 1, window))
    return out


def curves(records: Sequence[dict], path: str | Path, title: str = "", smooth: int = 5) -> Path:
    """Plot every panel vs step, one line per run label (mean over seeds, band = min..max).

    Panels of per-step training metrics (reward, entropy, ESS, top-10% share) show a trailing rolling mean
    over ``smooth`` steps; held-out accuracies are drawn as measured.
    """
    series: dict[str, dict[str, dict[int, list[float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    for r in records:
        label = r.get("label", r.get("method", "run"))
        for key, _ in PANELS:
            v = r.get(key)
            if isinstance(v, (int, float)) and math.isfinite(v):
                series[key][label][int(r["step"])].append(float(v))
    panels = [(k, t) for k, t in PANELS if series[k]]
    if not panels:
        raise ValueError(f"nothing to plot: no records with a step and any of {[k for k, _ in PANELS]}")
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.4 * ncols, 3.3 * nrows), squeeze=False)
    colors: dict[str, str] = {}
    for ax, (key, name) in zip(axes.flat, panels, strict=False):
        window = smooth if key in SMOOTH and smooth > 1 else 1
        for label, by_step in sorted(series[key].items()):
            steps = sorted(by_step)
            stats = [
                _rolling([f(by_step[s]) for s in steps], window)
                for f in (lambda v: sum(v) / len(v), min, max)
            ]
            line = ax.plot(steps, stats[0], label=label, color=colors.get(label))[0]
            colors[label] = line.get_color()
            if any(len(by_step[s]) > 1 for s in steps):
                ax.fill_between(steps, stats[1], stats[2], color=line.get_color(), alpha=0.15)
        ax.set_title(name + (f" (rolling mean {window})" if window > 1 else ""), fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    axes[0][0].legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def weight_cmap(lo: float, hi: float):
    """A matplotlib colormap over ``[lo, hi]`` equal to :func:`oarl.lab.viz.palette.weight_rgb` (white at 1)."""
    from matplotlib.colors import LinearSegmentedColormap

    lo, hi = min(lo, 1.0), max(hi, 1.0)
    mid = (1.0 - lo) / (hi - lo) if hi > lo else 0.5
    rgb = [tuple(c / 255 for c in weight_rgb(w, lo, hi)) for w in (lo, 1.0, hi)]
    return LinearSegmentedColormap.from_list("oar_weight", list(zip([0.0, mid, 1.0], rgb, strict=True)))


def token_label(text: str) -> str:
    """How a token is written in a cell: newlines as ⏎, blanks as ␣, ``$`` literal (no mathtext)."""
    if text and not text.strip(" "):
        return "␣" * len(text)
    return text.replace("\n", "⏎").replace("$", r"\$") or "·"


def attribution_strip(
    tokens: Sequence[str],
    weights: dict[str, Sequence[float]],
    path: str | Path,
    oracle: Sequence[bool] | None = None,
    answer: Sequence[bool] | None = None,
    title: str = "",
    wrap: int | None = None,
    vrange: tuple[float, float] | None = None,
    caption: str = "",
) -> Path:
    """One row per method; each token a cell shaded by its weight, on the HTML report's colour scale.

    White = weight 1, red = boosted, blue = suppressed (:mod:`oarl.lab.viz.palette`; ``vrange = (lo, hi)`` fixes the
    scale's ends, e.g. to the HTML page's, default: the least and greatest weight here). Oracle causal tokens
    are underlined in green, answer-span tokens boxed in black; a colour bar is drawn below. ``wrap`` breaks
    long texts into blocks of at most ``wrap`` tokens (each block shows every method); ``caption`` (e.g. the
    prompt) is printed under the title. Token text is drawn literally.
    """
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    n = len(tokens)
    labels = [token_label(t) for t in tokens]
    cell = [max(1.0, 0.26 * len(t) + 0.45) for t in labels]  # multi-character tokens get wider cells
    per_block = max(1, n if not wrap else min(wrap, n))
    blocks = [range(s, min(s + per_block, n)) for s in range(0, max(n, 1), per_block)]
    width = max([sum(cell[i] for i in cols) for cols in blocks] + [1.0])
    rows_per_block = len(weights) + (0.4 if len(blocks) > 1 else 0.0)
    height = rows_per_block * len(blocks)
    every = [float(x) for w in weights.values() for x in w]
    lo, hi = vrange if vrange is not None else (min(every + [1.0]), max(every + [1.0]))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.32 * width + 2.0), 0.6 * height + 1.6))
    for blk, cols in enumerate(blocks):
        top = height - blk * rows_per_block
        for row, (name, w) in enumerate(weights.items()):
            y, x = top - 1 - row, 0.0
            for i in cols:
                wi, dx = float(w[i]), cell[i]
                rgb = tuple(c / 255 for c in weight_rgb(wi, lo, hi))
                ax.add_patch(plt.Rectangle((x, y), dx, 0.9, color=rgb))
                ax.text(x + dx / 2, y + 0.45, labels[i], ha="center", va="center", fontsize=9,
                        family="monospace", color="white" if dark(wi, lo, hi) else "#1f2328")  # fmt: skip
                if answer is not None and answer[i]:
                    ax.add_patch(plt.Rectangle((x, y), dx, 0.9, fill=False, edgecolor="black", lw=1.2))
                if oracle is not None and oracle[i]:
                    ax.plot([x + 0.1, x + dx - 0.1], [y + 0.06, y + 0.06], color="#1a7f37", lw=2.2)
                x += dx
            ax.text(-0.3, y + 0.45, name, ha="right", va="center", fontsize=9)
    ax.set_xlim(-0.1, width)
    ax.set_ylim(0, height)
    ax.axis("off")
    heading = (title or "token weights") + (f"\n{caption.strip()}" if caption.strip() else "")
    ax.set_title(heading.replace("$", r"\$"), fontsize=10)
    bar = fig.colorbar(ScalarMappable(Normalize(lo, hi), weight_cmap(lo, hi)), ax=ax, orientation="horizontal",
                       fraction=0.06, pad=0.04, aspect=45, shrink=0.6)  # fmt: skip
    bar.set_label(
        "weight $w_t$ (1 = unchanged, red = boosted, blue = suppressed); "
        "green underline = oracle causal, box = answer",
        fontsize=8,
    )
    bar.ax.tick_params(labelsize=8)
    path = Path(path)
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return path
