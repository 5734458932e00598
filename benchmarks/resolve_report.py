"""Does ``pip install oarl`` resolve beside the engines its users train with? pip's resolver, dry run.

For each combination (oarl plus vllm / verl / torch / deepspeed / liger-kernel, and docs/gpu.md's own install
commands) this runs, in a throwaway venv with pip's plain configuration (no config files, no local wheel
folders or extra indexes, nothing installed: ``--dry-run --ignore-installed``)::

    pip install --dry-run --ignore-installed --report R.json -e . vllm==0.31.0

and records whether it resolved, the versions it picked for the packages that decide compatibility, or the
conflict pip names. Nothing is installed (vllm needs CUDA); pip reads the packages' metadata from the index.

Run (~25 s a combination; writes docs/resolve_report.json and the table in docs/gpu.md between its markers):
    python3 benchmarks/resolve_report.py --write-docs
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# (what follows `pip install --dry-run ...`, a note): the table, torch's next releases, the GPU recipes.
COMBOS: list[tuple[list[str], str]] = [
    (["-e", ".", "vllm==0.31.0"], "the newest vllm TRL 1.16 supports"),
    (["-e", ".", "vllm==0.33.0"], ""),
    (["-e", ".", "vllm==0.34.0"], ""),
    (["vllm==0.34.0"], "control: vllm 0.34.0 by itself, without oarl"),
    (["-e", ".", "verl==0.9.1"], ""),
    (["-e", ".", "vllm==0.31.0", "verl==0.9.1"], "both engines: the low stack (requirements/low.txt)"),
    (["-e", ".", "torch==2.14.0"], ""),
    (["-e", ".", "torch==2.15.0"], ""),
    (["-e", ".", "deepspeed==0.19.8"], ""),
    (["-e", ".", "liger-kernel==0.8.5"], ""),
    (["-e", ".[vllm,peft,tensorboard]"], "docs/gpu.md's command"),
    (["-e", ".[vllm,peft,tensorboard]", "deepspeed==0.19.8"], "docs/gpu.md's command with DeepSpeed"),
    (["-e", ".[vllm]", "vllm==0.33.0"], "outside TRL 1.16's vllm range: the extra refuses it"),
]
# the versions shown per combination
SHOWN = ["torch", "transformers", "tokenizers", "numpy", "trl", "vllm", "verl", "deepspeed", "liger-kernel"]


def plain_env() -> dict[str, str]:
    """The environment with pip's configuration made plain: no config files, no PIP_* but the certificate."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PIP_") or k in ("PIP_CERT", "PIP_DEFAULT_TIMEOUT")
    }
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def make_venv(folder: Path, env: dict[str, str]) -> Path:
    """A fresh venv with the newest pip (the resolver a user gets); returns its python."""
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, env=env)
    py = folder / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True, env=env)
    return py


def conflict(stderr: str) -> str:
    """pip's own explanation: the lines after 'The conflict is caused by:', else its last error line."""
    lines = stderr.splitlines()
    for i, line in enumerate(lines):
        if "The conflict is caused by" in line:
            out = []
            for nxt in lines[i + 1 :]:
                if not nxt.strip() or nxt.startswith("To fix"):
                    break
                out.append(nxt.strip())
            return "; ".join(out)
    errors = [line.strip() for line in lines if line.startswith("ERROR")]
    return errors[-1] if errors else (lines[-1].strip() if lines else "")


def resolve(py: Path, args: list[str], env: dict[str, str], report: Path) -> dict:
    cmd = [str(py), "-m", "pip", "install", "--dry-run", "--ignore-installed", "--report", str(report), *args]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    out: dict = {"resolves": proc.returncode == 0, "seconds": round(time.perf_counter() - t0, 1)}
    if proc.returncode == 0:
        picked = {
            re.sub(r"[-_.]+", "-", item["metadata"]["name"].lower()): item["metadata"]["version"]
            for item in json.loads(report.read_text())["install"]
        }
        out["versions"] = {name: picked[name] for name in SHOWN if name in picked}
    else:
        out["conflict"] = conflict(proc.stdout + "\n" + proc.stderr)
    return out


def markdown(results: list[dict], pip_version: str, date: str) -> str:
    head = (
        f"pip {pip_version}'s resolver, dry run, plain pip configuration, fresh venv, {date} "
        "(`python3 benchmarks/resolve_report.py --write-docs`; JSON: [resolve_report.json](resolve_report.json)):\n\n"
        "| `pip install --dry-run` | resolves? | picked (or the conflict) | note |\n|---|---|---|---|\n"
    )
    rows = []
    for r in results:
        if r["resolves"]:
            what = ", ".join(f"{k} {v}" for k, v in r["versions"].items())
        else:
            what = r["conflict"].replace("|", "\\|")
        rows.append(f"| `{r['label']}` | {'yes' if r['resolves'] else '**no**'} | {what} | {r['note']} |")
    return head + "\n".join(rows) + "\n"


def write_docs(table: str, gpu_md: Path) -> None:
    """Replace the text between the report's markers in docs/gpu.md."""
    start, end = "<!-- resolve_report: start -->", "<!-- resolve_report: end -->"
    text = gpu_md.read_text()
    if start not in text or end not in text:
        raise SystemExit(f"{gpu_md} has no {start} ... {end} markers to write the table between")
    before, rest = text.split(start, 1)
    after = rest.split(end, 1)[1]
    gpu_md.write_text(f"{before}{start}\n{table}{end}{after}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="comma list of combinations to run, as in the table (default: all)")
    ap.add_argument("--json", type=Path, default=ROOT / "docs" / "resolve_report.json")
    ap.add_argument("--write-docs", action="store_true", help="also write the table into docs/gpu.md")
    a = ap.parse_args()
    combos = COMBOS
    if a.only:
        wanted = {s.strip() for s in a.only.split(",")}
        known = [" ".join(args) for args, _ in COMBOS]
        if wanted - set(known):
            raise SystemExit(f"unknown combinations {sorted(wanted - set(known))}; known: {known}")
        combos = [c for c in COMBOS if " ".join(c[0]) in wanted]
    env = plain_env()
    with tempfile.TemporaryDirectory(prefix="oarl-resolve-") as tmp:
        py = make_venv(Path(tmp) / "venv", env)
        pip_version = subprocess.run(
            [str(py), "-m", "pip", "--version"], env=env, capture_output=True, text=True, check=True
        ).stdout.split()[1]
        results = []
        for args, note in combos:
            label = " ".join(args)
            r = {"label": label, "note": note, **resolve(py, args, env, Path(tmp) / "report.json")}
            print(
                f"{label}: {'yes' if r['resolves'] else 'NO'} {r.get('versions') or r.get('conflict')}",
                flush=True,
            )
            results.append(r)
    date = time.strftime("%Y-%m-%d", time.gmtime())
    a.json.write_text(json.dumps({"pip": pip_version, "date": date, "results": results}, indent=1) + "\n")
    table = markdown(results, pip_version, date)
    if a.write_docs:
        write_docs(table, ROOT / "docs" / "gpu.md")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
