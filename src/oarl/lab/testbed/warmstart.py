"""Warm start for the embedded task: supervised fine-tuning (TRL's SFTTrainer) of a tiny model, cached on disk.

RL needs a policy that already writes the format and is right some of the time; SFT on generated gold
solutions gets there in a few minutes on a CPU. The result is keyed by what it is trained on (task identity,
SFT settings and a fingerprint of the SFT data itself), so moving or reformatting task code reuses it while a
change to the data retrains it. The default demo and study warm starts ship with the repository
(``checkpoints/``, written by ``oarl warmstart --ship``; not in the wheel), so a fresh clone trains none of them:
SFT on this task sits on a knife-edge (see ``docs/reliability.md``), and a shipped checkpoint tells the same
story on every machine.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import PrinterCallback

from oarl.lab.testbed import tiny_model
from oarl.lab.testbed.progress import StepProgress
from oarl.utils.threads import set_threads

#: Bump when the SFT procedure in :func:`warm_start` changes what it trains (not for moves or comments).
WARMSTART_FORMAT = 2
#: The repository this module runs from when it is a source checkout (src/oarl/lab/testbed/ is 4 levels down).
REPO = Path(__file__).resolve().parents[4]
#: The shipped warm starts: the repository's ``checkpoints/``, looked up before the cache (read-only). They are
#: not in the wheel (docs/architecture.md, "Where the warm starts live"): an installed package finds none
#: here and trains its warm starts into the cache.
SHIPPED_DIR = REPO / "checkpoints"
FINGERPRINT_ROWS = 512


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


def sft_rows_sha1(task):
    """A sha1 object fed with the first :data:`FINGERPRINT_ROWS` SFT rows a warm start trains on."""
    h = hashlib.sha1()
    for row in task.sft_dataset(FINGERPRINT_ROWS, seed=10_000):
        h.update(json.dumps(row, sort_keys=True, default=str).encode())
    return h


def data_fingerprint(task) -> str:
    """sha1 of the first SFT rows the warm start trains on and of the tokenizer's vocabulary: what the
    checkpoint depends on, rather than the source text of the modules that make it."""
    h = sft_rows_sha1(task)
    h.update(json.dumps(sorted(tiny_model.build_tokenizer().get_vocab().items())).encode())
    return h.hexdigest()


def settings_key(task, sft: dict, data: str, fmt: int) -> str:
    """12 hex digits of (task identity, SFT settings, data fingerprint, format version): a warm start's key."""
    blob = json.dumps(
        {"task": task.identity(), "sft": sft, "data": data, "format": fmt},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def cache_key(task, ws: WarmStartConfig) -> str:
    """12 hex digits of (task identity, SFT settings, data fingerprint, :data:`WARMSTART_FORMAT`)."""
    return settings_key(task, asdict(ws), data_fingerprint(task), WARMSTART_FORMAT)


def checkpoint_name(task, ws: WarmStartConfig) -> str:
    """``<task>-sft-<12 hex>``: the folder name of ``task``'s warm start with settings ``ws``."""
    return f"{task.name}-sft-{cache_key(task, ws)}"


def _complete(path: Path) -> bool:
    return (path / "config.json").exists() and (path / "tokenizer.json").exists()


def shipping_dir() -> Path:
    """:data:`SHIPPED_DIR`, where ``oarl warmstart --ship`` writes; FileNotFoundError outside a source checkout."""
    if not ((REPO / "pyproject.toml").is_file() and (REPO / "src" / "oarl").is_dir()):
        raise FileNotFoundError(
            f"--ship writes into a source checkout's checkpoints/, and this oarl runs from {REPO} (an installed "
            "package): clone the repository and install it with `make setup` (pip install -e)"
        )
    return SHIPPED_DIR


def find_warm_start(task, ws: WarmStartConfig, cache_dir: str | Path) -> Path | None:
    """The shipped checkpoint for (task, ws), else the cached one, else ``None``."""
    return _find(checkpoint_name(task, ws), cache_dir)


def _find(name: str, cache_dir: str | Path) -> Path | None:
    for root in (SHIPPED_DIR, Path(cache_dir)):
        if _complete(root / name):
            return root / name
    return None


def warm_start(
    task, ws: WarmStartConfig, cache_dir: str | Path, progress: bool = True, threads: int | None = 1
) -> Path:
    """Path of a supervised checkpoint (model + tokenizer) for ``task``: shipped, cached, or trained now.

    Training uses ``threads`` torch threads (restored afterwards; ``None`` leaves the setting alone). One
    thread is the default: float reductions then do not depend on the machine's core count, and a busy
    neighbour process costs at most its share of the CPU (two threads beside one busy process ran 10x
    slower here). The checkpoint is written to a temporary folder and renamed when complete, so an
    interrupted run never leaves a half-written cache entry.
    """
    from trl import (  # here: the tasks' recipes (and examples/grpo_oar.py) load without TRL
        SFTConfig,
        SFTTrainer,
    )

    name = checkpoint_name(task, ws)  # the data fingerprint behind it is computed once
    found = _find(name, cache_dir)
    if found is not None:
        return found
    path = Path(cache_dir) / name
    tmp = path.with_name(path.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    before = set_threads(threads) if threads is not None else torch.get_num_threads()
    try:
        tok = tiny_model.build_tokenizer()
        model = tiny_model.build_tiny_model(
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
        trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tok)
        trainer.remove_callback(PrinterCallback)
        trainer.add_callback(StepProgress("warm start (SFT)", progress))
        trainer.train()
    finally:
        torch.set_num_threads(before)
    shutil.rmtree(tmp / "trainer", ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    meta = {"task": task.identity(), "sft": asdict(ws), "threads": threads, "torch": torch.__version__}
    (tmp / "oarl_warmstart.json").write_text(json.dumps(meta, default=str))
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)
    return path
