"""Figures of the OAR-G fidelity study: agreement with exact OAR-P vs the noise std, and fidelity vs cost."""

from __future__ import annotations

from pathlib import Path

from oarl.lab.viz.plots import plt

DTYPE_STYLE = {"float32": "-o", "float64": "--s"}


def noise_curves(sweeps: dict[str, dict], path: str | Path) -> Path:
    """Two panels per setting (Spearman vs OAR-P, top-10% overlap) against the noise std relative to the
    embedding RMS (log x); one line per dtype, the paper's absolute 1e-3 marked."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, sweep in sweeps.items():
        rms = sweep["embedding_rms"]
        for dtype, style in DTYPE_STYLE.items():
            rows = [r for r in sweep["rows"] if r["dtype"] == dtype]
            if not rows:
                continue
            x = [r["relative_noise"] for r in rows]
            for ax, key in zip(axes, ("spearman", "top_overlap"), strict=True):
                ax.plot(x, [r[key]["mean"] for r in rows], style, ms=4, lw=1.4, label=f"{name} ({dtype})")
        for ax in axes:
            ax.axvline(1e-3 / rms, color="grey", lw=0.8, ls=":")
    for ax, title in zip(
        axes, ("Spearman with exact OAR-P", "top-10% overlap with exact OAR-P"), strict=True
    ):
        ax.set_xscale("log")
        ax.set_xlabel("noise std / embedding RMS  (dotted: the paper's 1e-3)")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def fidelity_vs_cost(results: dict[str, dict], path: str | Path, probe: str = "as_mean") -> Path:
    """One panel per setting: each scorer's mean Spearman with exact OAR-P against its cost relative to OAR-G
    (seconds, log x)."""
    names = list(results)
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.8), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        rows = results[name][probe]
        for method, r in rows.items():
            ratio = r.get("cost_ratio", {}).get("seconds")
            if ratio is None:
                continue
            ax.scatter([ratio], [r["spearman"]["mean"]], s=25)
            ax.annotate(
                method, (ratio, r["spearman"]["mean"]), fontsize=7, xytext=(3, 3), textcoords="offset points"
            )
        ax.axvline(2.0, color="grey", lw=0.8, ls=":")
        ax.axhline(0.7, color="grey", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_xlabel("cost / OAR-G cost (seconds; dotted: the 2x budget)")
        ax.set_ylabel(f"Spearman with exact OAR-P ({probe})")
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path
