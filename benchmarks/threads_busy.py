"""How much one busy neighbour process slows oarl's warm-start SFT, by torch thread count and OpenMP wait policy.

Each case runs the flag warm start for ``--steps`` SFT steps in a fresh process (the thread count and
``OMP_WAIT_POLICY`` must be set before torch starts), first on the machine as it is, then beside one
``yes > /dev/null``; cases alternate so that other load on the machine hits both alike. Writes one JSON
with seconds per case and the slowdown ratios.

    python benchmarks/threads_busy.py --out benchmarks/results/threads_busy.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

CHILD = """
import sys, tempfile, time, torch
from dataclasses import replace
torch.set_num_threads(int(sys.argv[1]))
from oarl.lab.testbed.tasks import get_task_recipe
from oarl.lab.testbed.warmstart import warm_start
r = get_task_recipe("flag")
ws = replace(r.warm_start, max_steps=int(sys.argv[2]), train_problems=4000)
t = time.perf_counter()
warm_start(r.make(r.config), ws, tempfile.mkdtemp(), progress=False, threads=None)
print(time.perf_counter() - t)
"""


def one(threads: int, policy: str, steps: int, busy: bool) -> float:
    env = {**os.environ, "OMP_WAIT_POLICY": policy, "TRANSFORMERS_VERBOSITY": "error"}
    hog = subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) if busy else None
    try:
        out = subprocess.run([sys.executable, "-c", CHILD, str(threads), str(steps)], env=env,
                             capture_output=True, text=True, check=True)  # fmt: skip
    finally:
        if hog:
            hog.kill()
            hog.wait()
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--cases", default="1:PASSIVE,2:PASSIVE,2:ACTIVE", help="THREADS:POLICY,...")
    ap.add_argument("--out", default="benchmarks/results/threads_busy.json")
    a = ap.parse_args()
    rows = []
    for case in a.cases.split(","):
        threads, policy = case.split(":")
        quiet = one(int(threads), policy, a.steps, busy=False)
        busy = one(int(threads), policy, a.steps, busy=True)
        row = {"threads": int(threads), "omp_wait_policy": policy, "steps": a.steps, "seconds_quiet": round(quiet, 1),
               "seconds_beside_busy": round(busy, 1), "slowdown": round(busy / quiet, 2)}  # fmt: skip
        print(json.dumps(row), flush=True)
        rows.append(row)
    report = {"machine": f"{os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d %H:%M"), "rows": rows,
              "note": "seconds include ~5 s of process start and data set-up; 'quiet' is the machine as it was"}  # fmt: skip
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
