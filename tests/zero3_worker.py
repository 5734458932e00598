"""One rank of ``test_zero3.py``'s DeepSpeed run: ``accelerate launch --use_deepspeed ... zero3_worker.py MODEL OUT``.

Trains 3 OAR steps (``argv[3]``, default OAR-G) on 8 GSM8K rows under ZeRO-3 (each rank scores its own rows:
a different number of forwards per rank), then scores a fixed batch with the trainer's scoring model and with
a plain copy of the gathered weights, and writes ``OUT/rank<i>.json``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import torch


def main(model_path: str, out_dir: str, method: str = "gradient") -> int:
    import deepspeed

    from oarl.cli.train import TaskArguments, build_trainer
    from oarl.core.scorers import get_scorer
    from oarl.integrations.trl.trainer import OARConfig

    torch.set_num_threads(1)
    out = Path(out_dir)
    task = TaskArguments(task="gsm8k", model_path=model_path, split="train", max_rows=8,
                         format_reward_weight=0.5)  # fmt: skip
    config = OARConfig(
        output_dir=str(out / "run"), oar_method=method, oar_noise_std=0.1, use_cpu=True, bf16=False,
        report_to="none", max_steps=3, per_device_train_batch_size=8, num_generations=4,
        max_completion_length=24, temperature=1.0, learning_rate=1e-3, logging_steps=1, save_strategy="no",
        seed=0, disable_tqdm=True, gradient_checkpointing=False,
    )  # fmt: skip
    trainer, _ = build_trainer(task, config)
    trainer.train()
    acc = trainer.accelerator
    engine = trainer.model_wrapped
    unwrapped = acc.unwrap_model(trainer.model)
    params = list(unwrapped.parameters())
    with deepspeed.zero.GatheredParameters(params):
        digest = hashlib.sha256(b"".join(p.detach().float().numpy().tobytes() for p in params)).hexdigest()
        state = {k: v.detach().clone() for k, v in unwrapped.state_dict().items()}
    plain = type(unwrapped)(unwrapped.config).eval()  # the full weights, no DeepSpeed hooks or partitions
    plain.load_state_dict(state)
    # Different rows per rank: rank r scores r + 1 rows, so the ranks run different numbers of forwards.
    g = torch.Generator().manual_seed(0)
    n = acc.process_index + 1
    ids = torch.randint(3, 100, (n, 20), generator=g)
    am = torch.ones_like(ids)
    rm = torch.zeros_like(ids, dtype=torch.bool)
    rm[:, 4:16] = True
    ans = torch.zeros_like(rm)
    ans[:, 17:19] = True
    with trainer._oar_scoring_model(method) as model:
        sharded = get_scorer(method)(
            model, ids, am, rm, ans, noise_std=0.1, generator=torch.Generator().manual_seed(1)
        )
    reference = get_scorer(method)(
        plain, ids, am, rm, ans, noise_std=0.1, generator=torch.Generator().manual_seed(1)
    )
    record = {
        "rank": acc.process_index, "world_size": acc.num_processes, "steps": trainer.state.global_step,
        "zero_stage": acc.state.deepspeed_plugin.zero_stage, "partitioned": all(p.numel() == 0 for p in params),
        "scored_frac": [h["oar/scored_frac"] for h in trainer.state.log_history if "oar/scored_frac" in h],
        "weights": digest, "max_diff": float((sharded - reference).abs().max()),
        "max_score": float(reference.abs().max()), "engine": type(engine).__name__,
    }  # fmt: skip
    (out / f"rank{acc.process_index}.json").write_text(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
