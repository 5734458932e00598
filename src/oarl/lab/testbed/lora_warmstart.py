"""LoRA SFT warm start of a real pretrained LM (SmolLM2-135M) on the word-problem task, and its held-out gate.

The flag task's warm start trains a tiny model from scratch (:mod:`oarl.lab.testbed.warmstart`); a 135M model
instead gets a LoRA adapter (a few MB) on SFT data whose operation follows the question only ``fidelity`` of
the time, so the warm policy writes the format and computes, but chooses the operation with entropy ~H(0.65):
the one thing RL must fix. The adapter is keyed, like the flag warm starts, by the task identity, the SFT
settings and a fingerprint of the SFT rows (:func:`adapter_name`); ``oarl warmstart --task wordop --ship``
trains it, measures :func:`oarl.lab.testbed.lora_gate.gate_metrics` on held-out problems and ships it
only when :data:`oarl.lab.testbed.lora_gate.GATE` passes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from oarl.lab.models.resolve import resolve_model
from oarl.lab.testbed.warmstart import SHIPPED_DIR, settings_key, sft_rows_sha1
from oarl.utils.autocast import autocast
from oarl.utils.threads import set_threads

#: Bump when :func:`train_adapter` changes what it trains.
LORA_FORMAT = 1


@dataclass(frozen=True)
class LoraSFTConfig:
    """SFT budget and adapter shape (measured: docs/real_model.md, "A LoRA warm start")."""

    model: str = "smollm2-135m"
    rank: int = 16
    alpha: int = 32
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    steps: int = 200
    batch_size: int = 16
    learning_rate: float = 1e-3
    bf16: bool = True  # bfloat16 autocast (this CPU has AVX512-BF16; see the measurement in the docs)
    seed: int = 0


def data_fingerprint(task) -> str:
    """sha1 of the first SFT rows the adapter trains on (what it depends on, not the code that makes them;
    the tokenizer is the base model's, named in the SFT settings)."""
    return sft_rows_sha1(task).hexdigest()


def adapter_name(task, cfg: LoraSFTConfig) -> str:
    """``<task>-lora-<12 hex>`` of (task identity, SFT settings, data fingerprint, :data:`LORA_FORMAT`)."""
    return f"{task.name}-lora-{settings_key(task, asdict(cfg), data_fingerprint(task), LORA_FORMAT)}"


def shipped_adapter(task, cfg: LoraSFTConfig) -> Path | None:
    """The shipped adapter folder for (task, cfg), else None."""
    path = SHIPPED_DIR / adapter_name(task, cfg)
    return path if (path / "adapter_model.safetensors").exists() else None


def lora_warm_start(task, cfg: LoraSFTConfig, cache_dir: str | Path, threads: int | None = 1) -> Path:
    """The adapter folder for (task, cfg): shipped, cached in ``cache_dir``, or trained now (no gate: the gate is
    ``oarl warmstart --task wordop --ship``'s). Written to a temporary folder and renamed when complete."""
    import shutil

    found = shipped_adapter(task, cfg)
    if found is not None:
        return found
    path = Path(cache_dir) / adapter_name(task, cfg)
    if (path / "adapter_model.safetensors").exists():
        return path
    tmp = path.with_name(path.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    before = set_threads(threads) if threads is not None else None
    try:
        train_adapter(task, cfg, tmp)
        (tmp / "oarl_warmstart.json").write_text(
            json.dumps({"task": task.identity(), "sft": asdict(cfg), "format": LORA_FORMAT}, indent=1)
        )
    finally:
        if before is not None:
            set_threads(before)
    tmp.rename(path)
    return path


def load_base(model: str):
    """The base model (float32) and its tokenizer, from a short name or a folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model(model)
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32), AutoTokenizer.from_pretrained(
        path
    )


def load_warm_policy(adapter_dir: str | Path, merge: bool = True):
    """Base model + the adapter (merged into the weights unless ``merge=False``), and the tokenizer."""
    from peft import PeftModel

    meta = json.loads((Path(adapter_dir) / "oarl_warmstart.json").read_text())
    base, tok = load_base(meta["sft"]["model"])
    model = PeftModel.from_pretrained(base, str(adapter_dir))
    if not merge:
        return model, tok
    # peft loads the base frozen (an inference adapter); merged, it is a plain model like any checkpoint's,
    # so every weight trains unless a caller wraps it in fresh LoRA
    return model.merge_and_unload().requires_grad_(True), tok


def sft_batch(tok, rows: Sequence[dict]) -> dict[str, torch.Tensor]:
    """Right-padded ids with labels on the completion and its end-of-sequence token only."""
    seqs, labels = [], []
    for r in rows:
        p = tok(r["prompt"], add_special_tokens=False)["input_ids"]
        c = tok(r["completion"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        seqs.append(p + c)
        labels.append([-100] * len(p) + c)
    L = max(map(len, seqs))
    ids = torch.full((len(seqs), L), tok.pad_token_id)
    lab = torch.full((len(seqs), L), -100)
    mask = torch.zeros((len(seqs), L), dtype=torch.long)
    for b, (s, y) in enumerate(zip(seqs, labels, strict=True)):
        ids[b, : len(s)], lab[b, : len(y)], mask[b, : len(s)] = torch.tensor(s), torch.tensor(y), 1
    return {"input_ids": ids, "attention_mask": mask, "labels": lab}


def time_step(model, batch: dict, bf16: bool, repeats: int = 2) -> float:
    """Seconds of one forward + backward (gradients discarded): the fp32-vs-bf16 measurement."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        with autocast(bf16):
            loss = model(**batch).loss
        loss.backward()
        times.append(time.perf_counter() - start)
        model.zero_grad(set_to_none=True)
    return min(times)


def train_adapter(
    task,
    cfg: LoraSFTConfig,
    out_dir: Path,
    log: Callable[[str], None] = print,
    eval_fn: Callable[[object, int], None] | None = None,
    eval_every: int = 0,
):
    """LoRA SFT for ``cfg.steps`` steps of ``cfg.batch_size`` rows (AdamW, a short warm-up then linear decay to lr/10);
    the adapter (peft's files) is saved in ``out_dir``. Returns the peft model and its tokenizer."""
    from peft import get_peft_model

    from oarl.integrations.trl.lora import peft_lora_config  # its package imports TRL: only when training

    torch.manual_seed(cfg.seed)
    base, tok = load_base(cfg.model)
    model = get_peft_model(base, peft_lora_config(cfg.rank, cfg.alpha, 0.0, list(cfg.target_modules)))
    rows = list(task.sft_dataset(cfg.steps * cfg.batch_size, seed=10_000))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.learning_rate)
    warmup = max(1, cfg.steps // 20)
    model.train()
    start = time.perf_counter()
    for step in range(cfg.steps):
        for g in opt.param_groups:
            # warm-up, then linear decay to a tenth: the operation's 65/35 mix settles instead of following
            # the last batches
            decay = 1.0 - 0.9 * max(0, step - warmup) / max(1, cfg.steps - warmup)
            g["lr"] = cfg.learning_rate * min(1.0, (step + 1) / warmup) * decay
        batch = sft_batch(tok, rows[step * cfg.batch_size : (step + 1) * cfg.batch_size])
        with autocast(cfg.bf16):
            loss = model(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if (step + 1) % 10 == 0 or step == 0:
            log(f"step {step + 1}/{cfg.steps} loss {loss.item():.4f} ({time.perf_counter() - start:.0f} s)")
        if eval_fn is not None and eval_every and (step + 1) % eval_every == 0 and step + 1 < cfg.steps:
            eval_fn(model, step + 1)
    model.save_pretrained(str(out_dir))
    return model, tok
