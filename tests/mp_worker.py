"""One rank of ``test_multiprocess.py``: ``accelerate launch ... tests/mp_worker.py MODEL OUT_DIR``.

Builds the trainer exactly as ``oarl train`` does (GSM8K task, OAR-G), trains a few steps, and writes
``OUT_DIR/rank<i>.json``: a hash of this rank's parameters before and after training, a hash of the
completions this rank generated, and the world size.
"""

from __future__ import annotations

import faulthandler
import hashlib
import json
import os
import sys
from pathlib import Path

import torch


def params_hash(model: torch.nn.Module) -> str:
    """SHA-256 over every parameter's name and exact float32 bytes."""
    h = hashlib.sha256()
    for name, p in model.named_parameters():
        h.update(name.encode())
        h.update(p.detach().to(torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


def main(model_path: str, out_dir: str) -> None:
    """Train 3 OAR-G steps on 8 GSM8K rows and write this rank's hashes."""
    from oarl.cli.train import TaskArguments, build_trainer
    from oarl.integrations.trl.trainer import OARConfig

    torch.set_num_threads(1)  # two ranks share the CI machine's cores
    # A hang (a collective one rank never reaches) prints every thread's stack and ends the rank before
    # the test's 240 s timeout, so the failure says where it stuck.
    faulthandler.dump_traceback_later(180, exit=True)
    out = Path(out_dir)
    task = TaskArguments(task="gsm8k", model_path=model_path, split="train", max_rows=8,
                         format_reward_weight=0.5)  # fmt: skip
    config = OARConfig(
        output_dir=str(out / "run"), oar_method="gradient", use_cpu=True, bf16=False, report_to="none",
        max_steps=3, per_device_train_batch_size=8, num_generations=4, max_completion_length=24,
        temperature=1.0, learning_rate=1e-3, logging_steps=1, save_strategy="no", seed=0,
        disable_tqdm=True, gradient_checkpointing=False,
    )  # fmt: skip
    trainer, _ = build_trainer(task, config)
    seen = hashlib.sha256()
    reward = trainer.reward_funcs[0]

    def recording_reward(prompts=None, completions=None, **kwargs):
        seen.update(json.dumps(completions).encode())
        return reward(prompts=prompts, completions=completions, **kwargs)

    recording_reward.__name__ = reward.__name__
    trainer.reward_funcs[0] = recording_reward
    before = params_hash(trainer.model)
    trainer.train()
    acc = trainer.accelerator
    scored = [h["oar/scored_frac"] for h in trainer.state.log_history if "oar/scored_frac" in h]
    record = {
        "rank": acc.process_index, "world_size": acc.num_processes, "backend": str(acc.state.backend),
        "before": before, "after": params_hash(trainer.model), "completions": seen.hexdigest(),
        "steps": trainer.state.global_step, "scored_frac": scored,
    }  # fmt: skip
    (out / f"rank{acc.process_index}.json").write_text(json.dumps(record))
    # Leave without tearing gloo down. destroy_process_group() can deadlock here: the main thread joins
    # gloo's run-loop thread while holding the GIL, and that thread is freeing a finished all-gather whose
    # tensors are Python objects, which needs the GIL (seen about 1 run in 10 on torch 2.13). Interpreter
    # teardown of a live group can abort a rank instead. So: wait until every rank has written its record,
    # flush, and end the process at once.
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main(*sys.argv[1:3])
