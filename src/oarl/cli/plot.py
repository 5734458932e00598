"""Training curves of several runs on one figure: accuracy, reward, entropy, ESS-ratio, top-10% share vs step.

Each RUN_DIR is an ``oarl train`` folder (its ``metrics.jsonl``), an ``oarl demo`` / ``oarl study`` folder (its
``runs/*.jsonl``, one file per arm and seed: seeds of one arm pool into one line, mean with a min..max band,
and a study's conditions stay apart as ``<condition>/<arm>``), or one ``.jsonl`` file. Lines are labelled by
run and method (``<run>/<method>``) when several folders are given, so equal method names of different runs
stay apart; ``--merge`` pools them instead (mean over runs, band = min..max, e.g. for seeds in separate folders).
Drawn by :func:`oarl.lab.viz.plots.curves`, the code behind the demo's ``curves.png``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="oarl plot", description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders (or metrics.jsonl files)")
    p.add_argument(
        "--out",
        default="curves.png",
        help="figure file (.png, .pdf, .svg; default curves.png in the current folder)",
    )
    p.add_argument("--title", default="", help="figure title")
    p.add_argument("--merge", action="store_true", help="pool equal labels across runs (mean, min..max band)")
    return p


def run_name(path: Path) -> str:
    """A short name of a run folder (a ``metrics.jsonl`` path names its folder)."""
    return (path.parent if path.suffix == ".jsonl" else path).name


def metric_files(path: Path) -> list[Path]:
    """The JSONL files of one run argument: a file itself, a folder's ``metrics.jsonl`` (``oarl train``), or
    its ``runs/*.jsonl`` (``oarl demo`` / ``oarl study``; also a ``runs/`` folder given directly)."""
    if path.is_file():
        return [path]
    if (path / "metrics.jsonl").is_file():
        return [path / "metrics.jsonl"]
    for folder in (path / "runs", path):
        if folder.is_dir() and (files := sorted(folder.glob("*.jsonl"))):
            return files
    return []


def _study_label(record: dict, conditions: set[str]) -> str:
    label = record.get("label", record.get("method", "run"))
    return f"{record['condition']}/{label}" if len(conditions) > 1 and "condition" in record else label


def load_runs(paths: Sequence[str | Path], merge: bool = False) -> list[dict]:
    """Records of every run (:func:`metric_files`); labels get a ``<run>/`` prefix unless ``merge`` or a single
    run is given."""
    from oarl.lab.viz.plots import read_metrics

    paths = [Path(p) for p in paths]
    files = {p: metric_files(p) for p in paths}
    missing = [str(p) for p, f in files.items() if not f]
    if missing:
        raise FileNotFoundError(
            f"no metrics.jsonl or runs/*.jsonl in {', '.join(missing)} (give an oarl train, demo or study folder)"
        )
    prefix = len(paths) > 1 and not merge
    names = [run_name(p.resolve()) for p in paths]
    if prefix and len(set(names)) < len(names):  # equal folder names: fall back to the whole given path
        names = [str(p) for p in paths]
    records = []
    for path, name in zip(paths, names, strict=True):
        run = read_metrics(files[path])
        conditions = {r["condition"] for r in run if "condition" in r}
        for r in run:
            label = _study_label(r, conditions)
            records.append({**r, "label": f"{name}/{label}" if prefix else label})
    return records


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from oarl.lab.viz.plots import curves

    out = Path(args.out)
    try:
        records = [r for r in load_runs(args.runs, args.merge) if "step" in r]
        out.parent.mkdir(parents=True, exist_ok=True)
        curves(records, out, args.title)
    except (FileNotFoundError, ValueError) as e:
        print(f"oarl plot: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({len({r['label'] for r in records})} lines from {len(args.runs)} run(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
