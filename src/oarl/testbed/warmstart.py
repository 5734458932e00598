"""Warm start for the embedded task: supervised fine-tuning (TRL's SFTTrainer) of a tiny model, cached on disk.

RL needs a policy that already writes the format and is right some of the time; SFT on generated gold
solutions gets there in about a minute on a CPU. The result is keyed by the task and SFT settings and
reused by later runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from oarl.testbed.tasks import arith
from oarl.testbed.tasks.arith_task import ArithTask
from oarl.testbed.tasks.base import TestbedTask


@dataclass(frozen=True)
class WarmStartConfig:
    """Model size and SFT budget of the warm start."""

    train_problems: int = 16000
    epochs: float = 2.0
    learning_rate: float = 2e-3
    batch_size: int = 64
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 384
    seed: int = 0
    max_steps: int = -1  # > 0: stop after this many SFT steps (overrides epochs)


def as_task(task) -> TestbedTask:
    """A :class:`TestbedTask`; an ``ArithConfig`` is wrapped as the arithmetic task."""
    return ArithTask(task) if isinstance(task, arith.ArithConfig) else task


def cache_key(task, ws: WarmStartConfig) -> str:
    """Settings plus the source of the task and of this module: a code change retrains rather than reuses."""
    task = as_task(task)
    sources = [Path(f).read_bytes() for f in task.source_files()] + [Path(__file__).read_bytes()]
    code = hashlib.sha1(b"".join(sources)).hexdigest()
    blob = json.dumps({"task": task.identity(), "sft": asdict(ws), "code": code}, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def warm_start(task, ws: WarmStartConfig, cache_dir: str | Path, progress: bool = True) -> Path:
    """Path of a supervised checkpoint (model + tokenizer) for ``task``; trains and caches it if missing.

    The checkpoint is written to a temporary folder and renamed when complete, so an interrupted run never
    leaves a half-written cache entry.
    """
    from trl import SFTConfig, SFTTrainer

    task = as_task(task)
    path = Path(cache_dir) / f"{task.name}-sft-{cache_key(task, ws)}"
    if (path / "config.json").exists() and (path / "tokenizer.json").exists():
        return path
    tmp = path.with_name(path.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tok = arith.build_tokenizer()
    model = arith.build_tiny_model(
        tok, ws.hidden_size, ws.num_layers, ws.num_heads, ws.intermediate_size, seed=ws.seed
    )
    data = task.sft_dataset(ws.train_problems, seed=10_000)
    args = SFTConfig(
        output_dir=str(tmp / "trainer"),
        use_cpu=True,
        bf16=False,
        report_to="none",
        save_strategy="no",
        per_device_train_batch_size=ws.batch_size,
        num_train_epochs=ws.epochs,
        max_steps=ws.max_steps,
        learning_rate=ws.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=0.05,
        weight_decay=0.0,
        logging_steps=10,
        max_length=tok.model_max_length,
        gradient_checkpointing=False,
        seed=ws.seed,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    from transformers import PrinterCallback

    from oarl.testbed.experiment import StepProgress

    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tok)
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(StepProgress("warm start (SFT)", progress))
    trainer.train()
    shutil.rmtree(tmp / "trainer", ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    (tmp / "oarl_warmstart.json").write_text(
        json.dumps({"task": task.identity(), "sft": asdict(ws)}, default=str)
    )
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)
    return path
