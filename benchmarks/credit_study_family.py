"""The credit study's pre-registered family of tests (docs/credit_study.md): the new scorers against GRPO (and
OAR-P where it ran) in every condition of one or more study folders, Holm-adjusted over all of them at once.

    python benchmarks/credit_study_family.py runs/study/credit_b runs/study/credit --out docs/credit_study
"""

from __future__ import annotations

import argparse
from pathlib import Path

from oarl.lab.testbed.contrasts import per_seed, write_contrasts
from oarl.lab.testbed.experiment import get_arm
from oarl.lab.testbed.study import finished


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", help="oarl study output folders (their conditions must differ)")
    ap.add_argument("--tested", default="tree,info_gain,ktae")
    ap.add_argument("--refs", default="grpo,oar_p")
    ap.add_argument("--out", default="docs/credit_study")
    a = ap.parse_args()
    values: dict = {}
    for folder in a.folders:
        for cond, arms in per_seed(Path(folder), finished(Path(folder))).items():
            if cond in values:
                raise ValueError(f"condition {cond!r} is in more than one folder")
            values[cond] = arms
    tested = a.tested.split(",")
    labels = {t: get_arm(t).label for t in tested}
    print(write_contrasts(a.out, values, tested, a.refs.split(","), labels, {"folders": a.folders}))


if __name__ == "__main__":
    main()
