"""Figures of a study: learning curves with 95% CI bands per condition, per-role entropy over training, and
the tau x beta heat maps of a gate sweep."""

from __future__ import annotations

import math
from pathlib import Path

from oarl.lab.testbed.stats import t_interval
from oarl.lab.viz.plots import plt

#: One colour per arm, the same in every figure.
ARM_COLORS = {
    "grpo": "#222222",
    "oar_g": "#1b9e77",
    "oar_p": "#d95f02",
    "entropy": "#7570b3",
    "trl_entropy": "#e7298a",
    "random": "#999999",
    "oracle": "#66a61e",
    "tree": "#1f78b4",
    "info_gain": "#e6ab02",
    "ktae": "#a6761d",
    "resample": "#6a3d9a",
    "gtpo": "#b15928",
    "high_entropy": "#fb9a99",
    "stare": "#cab2d6",
    "prime": "#e31a1c",
    "anchor": "#17becf",
    "hicra": "#b2df8a",
    "cdpo": "#fdbf6f",
}


def _save(fig, path: str | Path) -> Path:
    """Lay out, write and close one figure; its path."""
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return Path(path)


def _band(ax, curve: dict, key: str, label: str, color: str | None, style: str = "-") -> None:
    steps = curve["step"]
    rows = curve.get(key)
    if not rows:
        return
    mean = [r["mean"] for r in rows]
    ax.plot(steps, mean, style, color=color, label=label, lw=1.6)
    lo = [r["lo"] if math.isfinite(r["lo"]) else r["mean"] for r in rows]
    hi = [r["hi"] if math.isfinite(r["hi"]) else r["mean"] for r in rows]
    ax.fill_between(steps, lo, hi, color=color, alpha=0.15, lw=0)


def learning_curves(results: dict, path: str | Path, key: str = "sampled_accuracy", ylabel: str = "") -> Path:
    """One panel per condition: ``key`` vs step for every arm, mean over seeds with its 95% t-band."""
    conds = list(results["conditions"])
    fig, axes = plt.subplots(1, len(conds), figsize=(4.6 * len(conds), 3.6), squeeze=False, sharey=True)
    for ax, cond in zip(axes[0], conds, strict=True):
        c = results["conditions"][cond]
        for arm, curve in c["curves"].items():
            n = len(c["arms"][arm]["seeds"])
            _band(ax, curve, key, f"{c['arms'][arm]['label']} (n={n})", ARM_COLORS.get(arm))
        ax.set_title(cond.replace(",", ", "), fontsize=8, wrap=True)  # a swept cell's name is long
        ax.set_xlabel("RL step")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(ylabel or key)
    axes[0][-1].legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def role_entropy_curves(
    results: dict, path: str | Path, roles: tuple[str, ...] = ("causal", "chatter")
) -> Path:
    """Rows = token roles, columns = conditions: mean policy entropy at tokens of that role vs step, per arm."""
    conds = list(results["conditions"])
    fig, axes = plt.subplots(
        len(roles), len(conds), figsize=(4.6 * len(conds), 3.0 * len(roles)), squeeze=False
    )
    for j, cond in enumerate(conds):
        c = results["conditions"][cond]
        for i, role in enumerate(roles):
            ax = axes[i][j]
            for arm, curve in c["curves"].items():
                _band(ax, curve, f"entropy/{role}", c["arms"][arm]["label"], ARM_COLORS.get(arm))
            ax.set_title(f"{cond}: entropy at {role} tokens", fontsize=9)
            ax.grid(alpha=0.3)
            ax.set_xlabel("RL step")
    if axes[0][-1].get_legend_handles_labels()[0]:  # a task without these roles draws no curve
        axes[0][-1].legend(fontsize=7)
    return _save(fig, path)


def sweep_heatmaps(results: dict, path: str | Path, taus: list[float], betas: list[float],
                   panels: tuple[tuple[str, str], ...]) -> Path:  # fmt: skip
    """Heat maps over (tau, beta); ``panels`` = (quantity in the arm's results, title). Condition names hold
    ``tau=<t>`` and ``beta=<b>`` among their comma-separated fields (as ``oarl study --sweep`` names them); the
    first arm of each condition is drawn."""

    def fields(name: str) -> dict[str, str]:
        return dict(kv.split("=", 1) for kv in name.split(",") if "=" in kv)

    by_cell = {}
    for name, cond in results["conditions"].items():
        f = fields(name)
        if "tau" in f and "beta" in f:
            by_cell[(float(f["tau"]), float(f["beta"]))] = cond

    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, (qty, title) in zip(axes[0], panels, strict=True):
        grid = [[math.nan] * len(taus) for _ in betas]
        for i, b in enumerate(betas):
            for j, t in enumerate(taus):
                cond = by_cell.get((float(t), float(b)))
                if cond:
                    arm = next(iter(cond["arms"].values()))
                    grid[i][j] = arm.get(qty, {}).get("mean", math.nan)
        im = ax.imshow(grid, origin="lower", cmap="viridis", aspect="auto")
        for i in range(len(betas)):
            for j in range(len(taus)):
                if math.isfinite(grid[i][j]):
                    ax.text(j, i, f"{grid[i][j]:.2f}", ha="center", va="center", color="w", fontsize=8)
        ax.set_xticks(range(len(taus)), [f"{t:g}" for t in taus])
        ax.set_yticks(range(len(betas)), [f"{b:g}" for b in betas])
        ax.set_xlabel("tau (gate quantile)")
        ax.set_ylabel("beta (boost)")
        ax.set_title(title, fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.8)
    return _save(fig, path)


def gap_plot(results: dict, path: str | Path, quantity: str = "auc_sampled") -> Path:
    """Paired difference vs the baseline arm (mean and 95% CI over seeds) per condition, one marker per arm:
    how each arm's gap to GRPO moves across conditions (e.g. chatter levels)."""
    conds = list(results["conditions"])
    order = list(ARM_COLORS)
    arms = sorted({a for c in results["conditions"].values() for a in c["paired"]},
                  key=lambda a: (order.index(a) if a in order else len(order), a))  # fmt: skip
    fig, ax = plt.subplots(figsize=(max(4.5, 1.6 + 1.9 * len(conds)), 3.6))
    width = 0.8 / max(len(arms), 1)
    for k, arm in enumerate(arms):
        xs, ys, lo, hi, label = [], [], [], [], arm
        for i, cond in enumerate(conds):
            c = results["conditions"][cond]
            pr = c["paired"].get(arm, {}).get(quantity)
            if not pr or pr["n"] < 1:
                continue
            d = pr["diff"]
            label = c["arms"][arm]["label"]
            xs.append(i - 0.4 + width * (k + 0.5))
            ys.append(d["mean"])
            lo.append(d["mean"] - d["lo"] if math.isfinite(d["lo"]) else 0.0)
            hi.append(d["hi"] - d["mean"] if math.isfinite(d["hi"]) else 0.0)
        ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o", color=ARM_COLORS.get(arm), label=label, capsize=3, ms=5)
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set_xticks(range(len(conds)), [c.replace(",", ",\n") for c in conds], fontsize=7)  # long cell names
    ax.set_ylabel(f"{quantity}: arm − GRPO (paired, 95% CI)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7, loc="best")
    return _save(fig, path)


def paired_seeds_plot(
    values: dict[str, dict[int, float]], path: str | Path, reference: str = "grpo", labels: dict | None = None
) -> Path:
    """One row per arm: its paired difference to ``reference`` on every seed (a dot each, one colour per seed)
    and their mean with the 95% t interval, so a single seed that carries a mean is visible.

    ``values``: ``{arm: {seed: metric}}`` of one condition (:func:`oarl.lab.testbed.contrasts.per_seed`)."""
    ref = values[reference]
    arms = [a for a in values if a != reference]
    cmap = plt.get_cmap("tab10")
    colour = {s: cmap(i % 10) for i, s in enumerate(sorted(ref))}
    fig, ax = plt.subplots(figsize=(6.0, 0.9 + 0.38 * len(arms)))
    for row, arm in enumerate(arms):
        paired = [s for s in colour if s in values[arm] and math.isfinite(values[arm][s])]
        diffs = [values[arm][s] - ref[s] for s in paired]
        for s, d in zip(paired, diffs, strict=True):
            ax.plot(d, row + 0.12, "o", ms=4, color=colour[s],
                    label=f"seed {s}" if row == 0 else None)  # fmt: skip
        if len(diffs) > 1:
            ci = t_interval(diffs)
            ax.errorbar(ci.mean, row - 0.12, xerr=[[ci.mean - ci.lo], [ci.hi - ci.mean]], fmt="s", ms=5,
                        color=ARM_COLORS.get(arm, "k"), capsize=3)  # fmt: skip
    ax.axvline(0.0, color="k", lw=0.8)
    ax.set_yticks(range(len(arms)), [(labels or {}).get(a, a) for a in arms])
    ax.invert_yaxis()
    ax.set_xlabel(f"difference to {reference} (paired by seed; square: mean, 95% CI)")
    ax.grid(alpha=0.3, axis="x")
    ax.legend(fontsize=7, loc="best")
    return _save(fig, path)
