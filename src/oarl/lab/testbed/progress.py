"""The progress bar of a training run (RL arm, ``oarl train``, the tiny model's SFT warm start)."""

from __future__ import annotations

from typing import Any

from tqdm.auto import tqdm
from transformers import TrainerCallback


class StepProgress(TrainerCallback):
    """One tqdm bar per run with the numbers worth watching (replaces the Trainer's raw log dicts).

    ``accuracy``: a callback with ``last_accuracy`` (:class:`oarl.lab.testbed.experiment.HeldOutAccuracy`),
    shown beside them once it has evaluated."""

    KEYS = {
        "loss": "loss",
        "mean_token_accuracy": "tok_acc",
        "reward": "reward",
        "oar/ess_ratio": "ess",
        "entropy": "H",
    }

    def __init__(self, desc: str, enabled: bool = True, accuracy: Any = None) -> None:
        self.desc, self.enabled, self.accuracy, self.bar = desc, enabled, accuracy, None

    def on_train_begin(self, args, state, control, **kwargs):
        self.bar = tqdm(total=state.max_steps, desc=self.desc, disable=not self.enabled, dynamic_ncols=True)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.bar is None or not logs or "loss" not in logs:
            return
        post = {
            short: f"{logs[k]:.3f}" for k, short in self.KEYS.items() if isinstance(logs.get(k), (int, float))
        }
        if self.accuracy is not None and self.accuracy.last_accuracy is not None:
            post["acc"] = f"{self.accuracy.last_accuracy:.3f}"
        self.bar.set_postfix(post, refresh=False)

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
