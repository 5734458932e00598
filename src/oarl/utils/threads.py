"""Torch's CPU thread count for oarl's long-running commands (demo, study, bench, warm start).

Measured on a 2-core machine (``docs/reliability.md``): the warm-start SFT with 2 torch threads ran 10x
slower beside one busy process (``yes > /dev/null``), because OpenMP threads spin-wait for a sibling the OS
has descheduled; with 1 thread the same neighbour cost nothing. oarl therefore runs 1 thread per process
and parallelises across processes (``--workers``), and asks OpenMP to sleep rather than spin when idle
(``OMP_WAIT_POLICY=PASSIVE``, set by the CLI before torch loads), which bounds the damage for users who
ask for more threads.
"""

from __future__ import annotations

import os

THREADS_HELP = (
    "torch threads per process (default 1: a busy neighbour process then slows oarl by at most its share "
    "of the CPU; more threads help only on a quiet machine). OMP_WAIT_POLICY=PASSIVE is the default."
)


def prefer_passive_openmp() -> None:
    """Idle OpenMP threads sleep instead of spinning; must run before torch is imported to take effect."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def set_threads(threads: int) -> int:
    """Set torch's intra-op thread count; ``threads`` must be >= 1. Returns the previous count."""
    import torch

    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    return before


def machine_description() -> str:
    """This machine as a benchmark's JSON records it: architecture, CPU cores, torch threads, the GPU if any."""
    import platform

    import torch

    text = f"{platform.machine()}, {os.cpu_count()} CPU cores, {torch.get_num_threads()} torch thread(s)"
    if torch.cuda.is_available():
        text += f", {torch.cuda.get_device_name()}"
    return text
