"""OAR is never silently off: warn (or stop) when too many rows have no answer span.

A row without an answer span keeps weight 1 (plain GRPO) while the scorer's cost is still paid, and the only
trace is ``oar/no_span_frac``. :class:`SpanWatch` keeps the last ``window`` steps' shares and, the first time
their mean is above ``warn_frac``, warns once with the share, the forms the finders look for and how to add
one (``oar_span_finders: ["re:PATTERN"]``); with ``error=True`` it raises :class:`NoAnswerSpanError` instead.
:class:`oarl.batch.step.OARStep` feeds it every step, so every trainer built on the step gets it.
"""

from __future__ import annotations

import warnings
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from oarl.batch.spans import describe_finders


class NoAnswerSpanWarning(UserWarning):
    """Most rows had no answer span: OAR changed nothing for them."""


class NoAnswerSpanError(RuntimeError):
    """Raised instead of :class:`NoAnswerSpanWarning` when the settings ask for a hard stop."""


def check_watch_settings(warn_frac: float, window: int) -> None:
    """Config-time check of the watch's settings (``OARSettings.__post_init__`` calls it)."""
    if not (isinstance(warn_frac, int | float) and 0.0 <= warn_frac <= 1.0):
        raise ValueError(f"no_span_warn_frac must be in [0, 1] (1 turns the check off), got {warn_frac!r}")
    if not (isinstance(window, int) and window >= 1):
        raise ValueError(f"no_span_window must be a whole number of steps >= 1, got {window!r}")


def no_span_message(frac: float, steps: int, finders: Sequence[str] | None) -> str:
    """What the warning (or error) says: the share, the forms looked for, how to add one, how to stop."""
    return (
        f"OAR is off for {frac:.0%} of rows over the last {steps} step(s): no answer span was found in their "
        "completions, so they keep weight 1 (plain GRPO) while the scorer's cost is still paid "
        f"(metric oar/no_span_frac). The span finders look for: {describe_finders(finders)}. Make the "
        "completions end with one of these (e.g. through the prompt's instruction), or add your own pattern "
        "with one group around the answer: oar_span_finders: [boxed, 're:Final: (\\S+)'] "
        "(OARSettings(span_finders=...)). oar_no_span_error: true stops the run instead; "
        "oar_no_span_warn_frac / oar_no_span_window tune this check"
    )


@dataclass
class SpanWatch:
    """The last ``window`` steps' ``no_span`` shares; warns once (or raises) above ``warn_frac``.

    The share is checked from the first step on, over the steps seen so far (at most ``window``).
    ``warn_frac=1.0`` never fires (a share is never above 1).
    """

    warn_frac: float = 0.5
    window: int = 10
    error: bool = False
    finders: Sequence[str] | None = None
    fired: bool = field(default=False, init=False)
    _shares: deque = field(default_factory=deque, init=False, repr=False)

    def __post_init__(self) -> None:
        check_watch_settings(self.warn_frac, self.window)
        self._shares = deque(maxlen=self.window)

    def update(self, no_span_frac: float) -> float:
        """Record one step's share of rows without a span; the mean over the window (NaN shares skipped)."""
        if no_span_frac == no_span_frac:  # not NaN
            self._shares.append(float(no_span_frac))
        mean = sum(self._shares) / len(self._shares) if self._shares else 0.0
        if mean > self.warn_frac and not self.fired:
            self.fired = True
            message = no_span_message(mean, len(self._shares), self.finders)
            if self.error:
                raise NoAnswerSpanError(message)
            warnings.warn(message, NoAnswerSpanWarning, stacklevel=3)
        return mean
