"""A seeded study: every arm x seed x condition from the same warm start, run in parallel, resumable.

A *condition* is a task variant (e.g. a chatter level, with its own warm start) plus overrides of the RL
settings (e.g. a gate's tau and beta in a sweep). Every run writes its own ``runs/<key>.jsonl`` (evaluation
and training lines) and, when it finishes, one summary line to ``summaries.jsonl`` that also carries the
run's evaluation curve (so the summaries alone give every run's AUC); a study that is interrupted and started
again skips the finished runs and redoes the rest from scratch.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from itertools import product
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from oarl.lab.testbed.experiment import JsonlWriter, get_arm, run_arm
from oarl.lab.testbed.settings import RLSettings, with_overrides
from oarl.utils.atomic import append_line


@dataclass(frozen=True)
class Condition:
    """One cell of a study: a name, the task (its warm start is keyed by it) and RL-setting overrides."""

    name: str
    task: Any
    rl_overrides: tuple[tuple[str, Any], ...] = ()


def condition_name(values: dict[str, Any]) -> str:
    """``"chatter=heavy,tau=0.2"``: a condition's name from its task and RL values (numbers as ``:g``)."""
    return ",".join(f"{k}={v:g}" if isinstance(v, float | int) else f"{k}={v}" for k, v in values.items())


def condition_grid(
    vary: list[tuple[str, list]], sweep: list[tuple[str, list]], default_name: str
) -> list[tuple[dict[str, Any], list[Condition]]]:
    """The study's cells: per task variant (the product of ``vary``'s values; one warm start each), its task
    fields and one :class:`Condition` per RL variant (the product of ``sweep``'s values), named by
    :func:`condition_name` (``default_name`` when nothing varies). The conditions' ``task`` is left None for
    the caller to set from the task fields."""
    task_variants = [
        dict(zip([k for k, _ in vary], vals, strict=True)) for vals in product(*[v for _, v in vary])
    ]
    rl_variants = [
        dict(zip([k for k, _ in sweep], vals, strict=True)) for vals in product(*[v for _, v in sweep])
    ]
    return [
        (
            tv,
            [
                Condition(condition_name({**tv, **rv}) or default_name, None, tuple(rv.items()))
                for rv in rl_variants
            ],
        )
        for tv in task_variants
    ]


@dataclass(frozen=True)
class RunSpec:
    condition: str
    arm: str
    seed: int

    @property
    def key(self) -> str:
        return f"{self.condition}__{self.arm}__seed{self.seed}"


@dataclass
class StudyPlan:
    conditions: list[Condition]
    arms: list[str]
    seeds: list[int]
    rl: RLSettings
    eval_problems: int = 128
    checkpoints: dict[str, str] = field(default_factory=dict)  # condition -> warm-start path

    def runs(self) -> list[RunSpec]:
        # Seed-major order: an interrupted study has whole seeds of every arm (paired data) rather than
        # all seeds of the first arms.
        return [RunSpec(c.name, a, s) for s in self.seeds for c in self.conditions for a in self.arms]

    def finished_in(self, out_dir: Path) -> dict[str, dict]:
        """The finished runs of this plan in ``out_dir`` (a folder can also hold runs of an earlier plan)."""
        planned = {r.key for r in self.runs()}
        return {k: v for k, v in finished(out_dir).items() if k in planned}


def finished(out_dir: Path) -> dict[str, dict]:
    """Summaries of the runs that completed, by run key."""
    path = out_dir / "summaries.jsonl"
    if not path.exists():
        return {}
    out = {}
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:  # a torn last line of a killed study
            continue
        out[rec["key"]] = rec
    return out


def _run_one(
    spec: RunSpec,
    condition: Condition,
    checkpoint: str,
    rl: RLSettings,
    n_eval: int,
    out_dir: str,
    threads: int | None,
) -> dict:
    """One run. In a worker process ``threads`` pins torch's threads (parallel runs must not oversubscribe);
    in the caller's process (``None``) its setting is left alone."""
    if threads is not None:  # a worker process of its own: quiet, pinned threads
        import warnings

        import datasets
        import torch
        from transformers.utils import logging as hf_logging

        torch.set_num_threads(threads)
        warnings.filterwarnings("ignore")
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        datasets.disable_progress_bars()
    rl = with_overrides(rl, dict(condition.rl_overrides))
    out = Path(out_dir)
    metrics = run_log(out, spec.key)
    metrics.unlink(missing_ok=True)  # a run that did not finish is redone from the start
    held_out = condition.task.problems(n_eval, seed=30_000)
    summary = run_arm(
        get_arm(spec.arm),
        checkpoint,
        condition.task,
        rl,
        held_out,
        out / "trainer",
        JsonlWriter(metrics),
        seed=spec.seed,
        progress=False,
        tag={"condition": spec.condition, "key": spec.key},
        evaluate_start=True,
    )
    # The summary carries its evaluation curve, so a study folder's summaries.jsonl alone gives every run's AUC.
    return {**summary, "rl": asdict(rl), "curve": evaluation_lines(metrics)}


def run_study(
    plan: StudyPlan,
    out_dir: Path,
    workers: int = 1,
    threads_per_worker: int = 1,
    on_result: Callable[[dict], None] | None = None,
) -> dict[str, dict]:
    """Run every :class:`RunSpec` of ``plan`` not yet in ``out_dir/summaries.jsonl``; returns all summaries."""
    out_dir.mkdir(parents=True, exist_ok=True)
    done = finished(out_dir)
    todo = [s for s in plan.runs() if s.key not in done]
    conditions = {c.name: c for c in plan.conditions}
    bar = tqdm(
        total=len(plan.runs()), initial=len(plan.runs()) - len(todo), desc="study runs", dynamic_ncols=True
    )

    def record(summary: dict) -> None:
        append_line(out_dir / "summaries.jsonl", json.dumps(summary))
        done[summary["key"]] = summary
        bar.update(1)
        bar.set_postfix_str(f"{summary['key']} {summary.get('final/sampled_accuracy', float('nan')):.3f}")
        if on_result:
            on_result(summary)

    args = [
        (
            s,
            conditions[s.condition],
            plan.checkpoints[s.condition],
            plan.rl,
            plan.eval_problems,
            str(out_dir),
            threads_per_worker,
        )
        for s in todo
    ]
    start = time.perf_counter()
    if workers <= 1:
        for a in args:
            record(_run_one(*a[:-1], None))
    else:
        # spawn: a fresh interpreter per worker (fork after torch has started threads can deadlock). Workers
        # ignore Ctrl-C: the main process gets it, stops them and leaves the unfinished runs to be redone.
        pool = ProcessPoolExecutor(
            workers,
            mp_context=get_context("spawn"),
            initializer=signal.signal,
            initargs=(signal.SIGINT, signal.SIG_IGN),
        )
        try:
            futures = [pool.submit(_run_one, *a) for a in args]
            for f in as_completed(futures):
                record(f.result())
        except BaseException:
            for proc in list((getattr(pool, "_processes", None) or {}).values()):
                proc.terminate()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
    bar.close()
    if todo:
        append_line(
            out_dir / "timing.jsonl",
            json.dumps(
                {
                    "runs": len(todo),
                    "seconds": time.perf_counter() - start,
                    "workers": workers,
                    "cpus": os.cpu_count(),
                    "time": time.strftime("%Y-%m-%d %H:%M:%S"),
                }
            ),
        )
    return done


def read_curves(out_dir: Path, summaries: dict[str, dict]) -> dict[str, list[dict]]:
    """The evaluation lines (those with ``accuracy``) of each finished run, by run key, in step order: from the
    run's log ``runs/<key>.jsonl``, or, where that log is not kept, from the ``curve`` its summary carries."""
    curves = {}
    for key, summary in summaries.items():
        path = run_log(out_dir, key)
        recs = evaluation_lines(path) if path.exists() else summary.get("curve", [])
        curves[key] = sorted((r for r in recs if "accuracy" in r), key=lambda r: r["step"])
    return curves


def run_log(out_dir: Path, key: str) -> Path:
    """Where one run's log lives: ``runs/<key>.jsonl`` in the study folder."""
    return out_dir / "runs" / f"{key}.jsonl"


def log_lines(path: Path) -> list[dict]:
    """Every line of a run's log ``runs/<key>.jsonl``, parsed."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def evaluation_lines(log: Path) -> list[dict]:
    """The held-out evaluation lines of a run's log (what :func:`read_curves` reads), for its summary."""
    return [r for r in log_lines(log) if "accuracy" in r] if log.exists() else []


def read_training(out_dir: Path, key: str) -> list[dict]:
    """The per-step training log lines of one run (reward, entropy, ``oar/*``); none where its log is not kept."""
    log = run_log(out_dir, key)
    return [r for r in log_lines(log) if "loss" in r] if log.exists() else []
