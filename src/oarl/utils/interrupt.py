"""Ctrl-C (SIGINT) and SIGTERM stop a long command the same way: the first asks for a clean stop, the second
exits at once.

:class:`StopSignals` is the one handler: the first signal sets :attr:`StopSignals.signum` and prints what will
happen; the code polls :attr:`StopSignals.requested` at a safe point (the trainer at the end of a step, see
:class:`oarl.integrations.trl.resume.GracefulStop`), saves what it needs and exits with :func:`exit_code` (130
after Ctrl-C, 143 after SIGTERM, the shell's 128 + signal). A second signal exits at once, with no traceback.
Commands without a safe point let Ctrl-C raise ``KeyboardInterrupt``, which ``oarl`` turns into a one-line
message and exit code 130 (:func:`interrupted_message`).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType

#: The signals a long command stops cleanly on.
STOP_SIGNALS: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)


def exit_code(signum: int) -> int:
    """The exit code of a command stopped by ``signum``: 128 + its number (130 for SIGINT, 143 for SIGTERM)."""
    return 128 + int(signum)


def signal_name(signum: int) -> str:
    """``"Ctrl-C (SIGINT)"`` or the signal's name."""
    name = signal.Signals(signum).name
    return "Ctrl-C (SIGINT)" if signum == signal.SIGINT else name


class StopSignals:
    """Install with :meth:`install` (main thread only; elsewhere a no-op), undo with :meth:`restore`.

    ``what`` ends the first signal's message (``"stopping after this step with a checkpoint"``).
    """

    def __init__(self, what: str = "stopping cleanly", signals: tuple[int, ...] = STOP_SIGNALS) -> None:
        self.what = what
        self.signals = signals
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:  # the second signal: give up at once
            print(f"\n{signal_name(signum)} again: exiting now", file=sys.stderr, flush=True)
            os._exit(exit_code(self.signum))
        self.signum = signum
        print(
            f"\n{signal_name(signum)}: {self.what} (press Ctrl-C again to exit at once)",
            file=sys.stderr,
            flush=True,
        )

    def install(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


def interrupted_message(argv: list[str], resume_hint: str | None) -> str:
    """The one line ``oarl COMMAND ...`` (``argv``) prints when Ctrl-C interrupted it outside a clean stop
    point; ``{command}`` in ``resume_hint`` (a command module's ``RESUME_HINT``) becomes the command line."""
    import shlex

    command = shlex.join(["oarl", *argv])
    hint = f"; {resume_hint.format(command=command)}" if resume_hint else ""
    return f"oarl {argv[0]}: interrupted (Ctrl-C){hint}"
