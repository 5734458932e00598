"""Multi-process training through ``accelerate launch``: 2 CPU processes (gloo) run OAR-G steps and end
with identical weights (DDP averages the gradients of different local batches)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

WORKER = Path(__file__).with_name("mp_worker.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_cpu_processes_agree_after_oar_g_steps(tiny_math_model, tmp_path):
    # `--multi_gpu` selects accelerate's torchrun launcher (2 local processes); `use_cpu` in the training
    # arguments makes them CPU processes joined by gloo. (`--cpu` alone would start a single process.)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(free_port()), str(WORKER), str(tiny_math_model), str(tmp_path)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    ranks = [json.loads((tmp_path / f"rank{i}.json").read_text()) for i in range(2)]
    assert [r["rank"] for r in ranks] == [0, 1]
    assert all(r["world_size"] == 2 and r["backend"] == "gloo" and r["steps"] == 3 for r in ranks)
    assert ranks[0]["before"] == ranks[1]["before"]  # same start
    assert ranks[0]["completions"] != ranks[1]["completions"]  # each rank generated its own rollouts
    assert any(f > 0 for f in ranks[0]["scored_frac"])  # OAR-G actually reshaped some advantages
    assert ranks[0]["after"] != ranks[0]["before"]  # training moved the weights
    # Bit-exact by construction: DDP all-reduces the gradients, so both ranks apply the very same update.
    assert ranks[0]["after"] == ranks[1]["after"]  # ... identically on both ranks
