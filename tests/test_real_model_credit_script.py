"""benchmarks/real_model_credit.py parses its arguments (the run itself needs the real model and ~30 min)."""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "real_model_credit.py"


def test_help():
    out = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "--max-rows" in out.stdout and "--steps" in out.stdout
