"""Trainer-step time at a realistic shape: a ~30M-parameter policy (vocab 32k) and 256-token completions.

GRPO, OAR-G, exact OAR-P and approximate OAR-P run full ``OARGRPOTrainer`` steps (generation, reward, scoring,
loss, optimizer) in round-robin rounds in one process. The policy is randomly initialised (the bench's
``qwen2-30m`` shape), so two things are arranged for the step to be the one a trained model would take:
generation always runs ``max_completion_length`` tokens (EOS is suppressed) and its last four tokens are
overwritten with ``ANSWER d`` so every completion has an answer span; sampled ids are folded into the
character tokenizer's range (``1 + id mod (n - 1)``) after sampling, so decoding sees text. The reward is a
fixed hash of the completion text in [0, 1) (groups have non-zero advantages, so every completion is scored).
"""

from __future__ import annotations

import statistics
import zlib
from pathlib import Path

import torch

from oarl.integrations.trl.trainer import OARConfig, OARGRPOTrainer
from oarl.lab.bench.step import StepTimer
from oarl.lab.testbed.tasks import flag
from oarl.utils.checkpoint import load_tokenizer

METHODS: dict[str, tuple[str, dict]] = {
    "GRPO": ("none", {}),
    "OAR-G": ("gradient", {}),
    "OAR-P exact": ("perturbation", {}),
    "OAR-P horizon": ("perturbation_horizon", {"horizon": 0, "copies_per_chunk": 8, "window": 64}),
    "OAR-P linear": ("perturbation_linear", {"fisher_rank": 8}),
}


def hash_reward(prompts: list, completions: list, **_: object) -> list[float]:
    """A CRC of the completion text in [0, 1): fixed, and (almost surely) varied within a group."""
    return [(zlib.crc32(str(c).encode()) % 1000) / 1000 for c in completions]


def build_policy(out_dir: Path, tokenizer_path: str | Path) -> Path:
    """Save a random-init ~30M Qwen2-style policy (vocab 32k) with the flag task's character tokenizer."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tok = load_tokenizer(tokenizer_path)
    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=32000, hidden_size=512, num_hidden_layers=4, num_attention_heads=8,
                      num_key_value_heads=2, intermediate_size=1536, max_position_embeddings=1024,
                      tie_word_embeddings=True, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                      bos_token_id=tok.bos_token_id)  # fmt: skip
    model = Qwen2ForCausalLM(cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return out_dir


def _patch_generate(model, tok) -> None:
    """Fold sampled ids into the tokenizer's range and end every completion with ``ANSWER d``."""
    orig = model.generate
    n = len(tok)
    tail = torch.tensor(tok("ANSWER 7", add_special_tokens=False).input_ids)

    def generate(*args, **kwargs):
        out = orig(*args, **kwargs)
        P = kwargs["input_ids"].shape[1]
        comp = out[:, P:]
        comp = 1 + comp % (n - 1)
        comp[comp == tok.eos_token_id] = tok.convert_tokens_to_ids("x")
        comp[:, -len(tail) :] = tail
        out[:, P:] = comp
        return out

    model.generate = generate


def realistic_step_times(
    policy: str | Path,
    methods: dict[str, tuple[str, dict]] | None = None,
    steps: int = 3,
    rounds: int = 1,
    prompts_per_step: int = 2,
    num_generations: int = 4,
    max_completion_length: int = 256,
    seed: int = 0,
) -> dict:
    """Median step seconds (first step of each run dropped), scorer seconds and ratio vs GRPO per method."""
    from transformers import AutoModelForCausalLM, PrinterCallback

    methods = methods or METHODS
    tok = load_tokenizer(policy)
    data = flag.make_dataset(steps * prompts_per_step * rounds + 8, flag.FlagConfig(seed=4242))
    per = {m: {"steps": [], "scorer": [], "gen": []} for m in methods}
    for r in range(rounds):
        for label, (method, options) in methods.items():
            args = OARConfig(
                output_dir=f"/tmp/oarl-bench-realistic/{method}-{r}", oar_method=method, oar_scorer_options=options,
                use_cpu=True, bf16=False, report_to="none", max_steps=steps,
                per_device_train_batch_size=prompts_per_step * num_generations, num_generations=num_generations,
                max_completion_length=max_completion_length, learning_rate=1e-5, logging_steps=1,
                gradient_checkpointing=False, save_strategy="no", seed=seed, disable_tqdm=True,
                oar_probe_warmup_steps=0, generation_kwargs={"suppress_tokens": [tok.eos_token_id]},
            )  # fmt: skip
            model = AutoModelForCausalLM.from_pretrained(policy)
            _patch_generate(model, tok)
            timer = StepTimer()
            trainer = OARGRPOTrainer(model=model, reward_funcs=hash_reward, args=args, train_dataset=data,
                                     processing_class=tok, callbacks=[timer])  # fmt: skip
            trainer.remove_callback(PrinterCallback)
            trainer.train()
            logs = [h for h in trainer.state.log_history if "loss" in h]
            per[label]["steps"] += timer.times[1:]
            per[label]["scorer"] += [h.get("oar/scorer_seconds") or 0.0 for h in logs[1:]]
            per[label]["scored"] = [h.get("oar/scored_frac") for h in logs]
            print(label, r, [round(t, 2) for t in timer.times], flush=True)
    out = {}
    for label, v in per.items():
        out[label] = {
            "method": methods[label][0], "options": methods[label][1],
            "step_seconds": statistics.median(v["steps"]), "scorer_seconds": statistics.median(v["scorer"] or [0.0]),
            "n_steps": len(v["steps"]), "scored_frac": v.get("scored"),
        }  # fmt: skip
    base = out.get("GRPO", {}).get("step_seconds")
    for label in out:
        out[label]["ratio_vs_grpo"] = out[label]["step_seconds"] / base if base else float("nan")
    return out


# OMP_NUM_THREADS=1 python -m oarl.lab.bench.step_realistic OUT.json [steps] [rounds] [labels]
if __name__ == "__main__":
    import json
    import sys

    from oarl.utils.atomic import atomic_write_json

    torch.set_num_threads(1)
    path = build_policy(Path("runs/bench/policy-30m"), "runs/cache/flag-sft-latest")
    only = sys.argv[4].split(",") if len(sys.argv) > 4 else list(METHODS)  # e.g. "GRPO,OAR-G,OAR-P linear"
    res = realistic_step_times(path, {k: METHODS[k] for k in only}, steps=int(sys.argv[2]) if len(sys.argv) > 2 else 3,
                               rounds=int(sys.argv[3]) if len(sys.argv) > 3 else 1)  # fmt: skip
    atomic_write_json(Path(sys.argv[1]), res, indent=1)
    print(json.dumps(res, indent=1))
