"""The scorer table, generated from the registry: ``oarl scorers`` prints it, ``--write docs/scorers.md`` writes it.

``tests/test_scorer_docs.py`` checks that the committed ``docs/scorers.md`` is what the registry generates, so a
new or changed scorer is documented by re-running ``oarl scorers --write docs/scorers.md``. Everything from the
line ``HAND_WRITTEN`` on is hand-written prose (per family: what it credits, what it costs, its authors' code,
what the studies found); ``--write`` keeps it as it is.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DOC = "docs/scorers.md"
#: The line after which ``docs/scorers.md`` is hand-written (kept by ``--write``).
HAND_WRITTEN = "<!-- Hand-written from here on: `oarl scorers --write` keeps it. -->"


def _options(spec) -> str:
    return ", ".join(f"`{k}={v!r}`" for k, v in spec.defaults().items()) or "–"


def render() -> str:
    """``docs/scorers.md``: every registered scorer with its family, status, cost class, needs and options."""
    from oarl.core.scorers import COSTS, NEEDS, OUTPUTS, SCORERS, STATUSES, upcast_scorers

    out = [
        "# Scorers",
        "",
        "<!-- Generated from the scorer registry by `oarl scorers --write docs/scorers.md` down to the hand-written",
        "part at the end; do not edit it by hand (tests/test_scorer_docs.py checks it). -->",
        "",
        "Every scorer is declared where it is defined (`@register_scorer(ScorerSpec(...))`, "
        "`src/oarl/core/scorers/`), so this table, the CLI's method lists, the display labels and the "
        "model-free list all come from one place. Choose one with `oar_method=<scorer>`; its options go in "
        "`oar_scorer_options` and are checked against it when the config is built (an unknown key fails, "
        "listing the valid ones). The named settings `oar_probe`, `oar_mask_token`, `oar_noise_std` and "
        "`oar_max_batch_tokens` apply to every scorer that has that option (unset: the scorer's default); "
        "setting one of them in `oar_scorer_options` as well is an error.",
        "",
        "| scorer | family | status | cost | needs | output | options (defaults) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in SCORERS.items():
        label = f" ({s.label})" if s.label else ""
        needs = ", ".join(n for n in NEEDS if n in s.needs) or "–"
        out.append(
            f"| `{name}`{label} | {s.family} | {s.status} | {s.cost} | {needs} | {s.output} | {_options(s)} |"
        )
    out += ["", "## What each one does", ""]
    out += [f"- `{name}`: {s.doc}" for name, s in SCORERS.items()]
    out += ["", "## Why the experimental ones are experimental", ""]
    out += [f"- `{name}`: {s.why}." for name, s in SCORERS.items() if s.status == "experimental"]
    out += ["", "## Legend", "", "Status:", ""]
    out += [f"- `{k}`: {v}" for k, v in STATUSES.items()]
    out += ["", "Cost class (one call, `T` reasoning tokens a row):", ""]
    out += [f"- `{k}`: {v}" for k, v in COSTS.items()]
    out += ["", "Needs (what the trainer must provide):", ""]
    out += [f"- `{k}`: {v}" for k, v in NEEDS.items()]
    out += ["", "Output:", ""]
    out += [f"- `{k}`: {v}" for k, v in OUTPUTS.items()]
    out += [
        "",
        f"`upcast` (score in float32 on bf16/fp16 weights): {', '.join(f'`{n}`' for n in upcast_scorers())}.",
    ]
    return "\n".join(out) + "\n"


def document(existing: str | None = None) -> str:
    """The whole ``docs/scorers.md``: :func:`render`'s table, then the hand-written part of ``existing`` (from
    the ``HAND_WRITTEN`` line on; nothing when it has none)."""
    tail = ""
    if existing and HAND_WRITTEN in existing:
        tail = "\n" + existing[existing.index(HAND_WRITTEN) :]
    return render() + tail


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="oarl scorers", description=__doc__.splitlines()[0])
    p.add_argument("--write", metavar="PATH", help=f"write the table to PATH (the docs: {DOC})")
    args = p.parse_args(argv)
    if args.write:
        path = Path(args.write)
        text = document(path.read_text(encoding="utf-8") if path.is_file() else None)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {args.write}")
    else:
        sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
