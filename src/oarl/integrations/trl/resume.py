"""Surviving interruption: find the last complete checkpoint, and stop on Ctrl-C or SIGTERM with a checkpoint saved.

Resuming itself is transformers' ``Trainer.train(resume_from_checkpoint=...)`` (model, optimizer, scheduler,
RNG states; :class:`oarl.integrations.trl.trainer.OARGRPOTrainer` adds its own generator's state). ``oarl train --resume``
picks the checkpoint with :func:`last_checkpoint` and trims ``metrics.jsonl`` back to that step.
"""

from __future__ import annotations

import re
import signal
from pathlib import Path

import torch
from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from oarl.utils.interrupt import STOP_SIGNALS, StopSignals, exit_code

#: transformers writes this last when saving a checkpoint: its presence marks a complete checkpoint.
COMPLETE_MARKER = "trainer_state.json"
_CHECKPOINT = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")
#: ``oarl train`` exits with this code (128 + SIGTERM) when SIGTERM stopped it (130 after Ctrl-C).
INTERRUPTED_EXIT_CODE = 143


def checkpoint_step(path: str | Path) -> int:
    """The global step of a ``checkpoint-N`` folder."""
    m = _CHECKPOINT.match(Path(path).name)
    if m is None:
        raise ValueError(f"{path} is not a {PREFIX_CHECKPOINT_DIR}-N folder")
    return int(m.group(1))


def last_checkpoint(output_dir: str | Path) -> str | None:
    """The complete ``checkpoint-N`` folder with the highest N in ``output_dir``, or None.

    Unlike ``transformers.trainer_utils.get_last_checkpoint`` it skips a folder a hard kill left half-written
    (no ``trainer_state.json``, which the Trainer writes after the weights, optimizer and RNG states).
    """
    folder = Path(output_dir)
    if not folder.is_dir():
        return None
    done = [p for p in folder.iterdir() if _CHECKPOINT.match(p.name) and (p / COMPLETE_MARKER).is_file()]
    return str(max(done, key=checkpoint_step)) if done else None


class GracefulStop(TrainerCallback):
    """On Ctrl-C (SIGINT) or SIGTERM, finish the current step, save a checkpoint (whatever ``save_strategy``
    says) and stop training; a second signal exits at once (:class:`oarl.utils.interrupt.StopSignals`).

    Handlers are installed at train begin (main thread only) and restored at train end. Under several
    processes the request is all-reduced every step, so all ranks stop (and save) at the same step.
    ``stopped_at`` is the global step it stopped at, None if it did not; ``exit_code`` 130 after Ctrl-C,
    143 after SIGTERM.
    """

    def __init__(self, signals: tuple[int, ...] = STOP_SIGNALS) -> None:
        self.stop = StopSignals("stopping after this step with a checkpoint", signals)
        self.stopped_at: int | None = None

    @property
    def requested(self) -> bool:
        return self.stop.requested

    @property
    def exit_code(self) -> int:
        return exit_code(self.stop.signum or signal.SIGTERM)

    def on_train_begin(self, args, state, control, **kwargs):
        self.stop.install()

    def on_step_end(self, args, state, control, **kwargs):
        if self._any_rank_requested(args):
            control.should_save = True
            control.should_training_stop = True
            self.stopped_at = state.global_step

    def on_train_end(self, args, state, control, **kwargs):
        self.stop.restore()

    def _any_rank_requested(self, args) -> bool:
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return self.requested
        flag = torch.tensor([float(self.requested)], device=args.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return bool(flag.item())
