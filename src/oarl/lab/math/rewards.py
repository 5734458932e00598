"""Math rewards for TRL: extract the final answer, compare it to the reference with math-verify (the ``math``
extra: importing this module without it fails at once with ``pip install "oarl[math]"``).

The final answer is the span OAR's probe reads (:func:`oarl.batch.spans.find_answer_span`: the last of
``\\boxed{...}``, ``#### x``, ``The answer is x``, ``ANSWER x``), so the reward and the token weights agree
on what "the answer" is. :mod:`oarl.lab.math.mathcheck` compares it to the reference (math-verify's LaTeX path only;
model text is never evaluated or executed).

Timeouts: math-verify bounds each ``parse``/``verify`` call with ``signal.alarm``, which works only in the
main thread. There we pass ``timeout_seconds`` to each call. Called from any other thread (a thread pool, an
async trainer), the comparison runs in a worker interpreter (:mod:`oarl.lab.math.mathcheck` as a script, started once and
kept), in whose main thread the same timeouts apply; the caller waits at most a hard wall-clock bound, then
kills that worker and scores the sample as wrong: never a hang, never an unbounded computation left running.
"""

from __future__ import annotations

import atexit
import json
import math
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from oarl.batch.spans import find_answer_span
from oarl.lab.math import mathcheck
from oarl.utils.extras import require

#: What the math extra installs (import name -> PyPI name): pyproject.toml's ``math`` extra (tested).
MATH_MODULES = {"math_verify": "math-verify"}
require("math", MATH_MODULES, "oarl.lab.math.rewards (math-verify rewards and answer checks)")

DEFAULT_TIMEOUT = 5


@dataclass(frozen=True)
class Verdict:
    """One graded completion.

    ``answer``: the extracted final answer (None: no final-answer span). ``correct``: None when the reference
    itself cannot be parsed (the sample cannot be graded). ``reason``: ``correct``, ``wrong``, ``no_answer``,
    ``bad_reference`` or ``timeout`` (the worker had to be killed; a math-verify timeout inside a call
    counts as ``wrong``).
    """

    answer: str | None
    correct: bool | None
    reason: str


def completion_text(completion: Any) -> str:
    """A completion as text: TRL gives strings, or chat messages (the last message's ``content``)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content", ""))
    raise TypeError(
        f"expected a completion string or a list of chat messages, got {type(completion).__name__}"
    )


def extract_answer(text: str, finders: Sequence[str] | None = None) -> str | None:
    """The final answer in ``text`` (see the module docstring), or None when there is none."""
    span = find_answer_span(text, finders)
    return None if span is None else text[span[0] : span[1]].strip()


class MathCheckWorker:
    """A child interpreter running :func:`oarl.lab.math.mathcheck.serve`, for callers outside the main thread.

    A fresh interpreter rather than ``multiprocessing``: spawning would re-import the caller's ``__main__``
    script (and re-run it when it has no ``if __name__ == "__main__"`` guard). ``hard_timeout`` (default
    ``4 * timeout + 30`` s: three math-verify calls plus start-up) bounds each request; past it the worker is
    killed and the next request starts a new one.
    """

    def __init__(self, command: Sequence[str] | None = None, hard_timeout: float | None = None) -> None:
        # Run the file with neither the cwd nor oarl/ on sys.path (no module there can shadow a library).
        boot = (
            f"import runpy, sys; sys.path.pop(0); runpy.run_path({mathcheck.__file__!r}, run_name='__main__')"
        )
        self.command = list(command or [sys.executable, "-c", boot])
        self.hard_timeout = hard_timeout
        self._proc: subprocess.Popen | None = None
        self._replies: queue.Queue[str] = queue.Queue()
        self._lock = threading.Lock()
        atexit.register(self.close)

    def match(self, reference: str, answer: str | None, timeout: int) -> bool | None | str:
        """:func:`oarl.lab.math.mathcheck.answers_match` in the worker; the string ``"timeout"`` when it was killed."""
        hard = self.hard_timeout if self.hard_timeout is not None else 4 * timeout + 30
        request = json.dumps({"reference": reference, "answer": answer, "timeout": timeout})
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._start()
            try:
                self._proc.stdin.write(request + "\n")
                self._proc.stdin.flush()
                reply = self._replies.get(timeout=hard)
            except (queue.Empty, OSError):
                reply = ""
            if not reply:  # timed out, or the worker died
                self.close()
                return "timeout"
        return json.loads(reply)["match"]

    def _start(self) -> None:
        self._proc = subprocess.Popen(
            self.command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            bufsize=1,
        )
        self._replies = queue.Queue()  # one queue per process: a dead worker's end marker cannot leak
        threading.Thread(target=_pump, args=(self._proc.stdout, self._replies), daemon=True).start()

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()


def _pump(stream, replies: queue.Queue) -> None:
    """Move the worker's reply lines into ``replies``; an empty string marks its end."""
    for line in stream:
        replies.put(line)
    replies.put("")


_WORKER = MathCheckWorker()


def check_answer(
    completion: Any,
    reference: Any,
    timeout_seconds: int = DEFAULT_TIMEOUT,
    finders: Sequence[str] | None = None,
) -> Verdict:
    """Grade one completion against its reference answer (a string or a number).

    Args:
        completion: the completion text (or chat messages).
        reference: the reference final answer, e.g. ``"18"``, ``18`` or ``"\\frac{1}{2}"``.
        timeout_seconds: per math-verify call (a parse of each answer, the comparison); whole seconds >= 1.
        finders: which answer forms to look for (names in :data:`oarl.batch.spans.SPAN_FINDERS`; default all).
    """
    if int(timeout_seconds) != timeout_seconds or timeout_seconds < 1:
        raise ValueError(f"timeout_seconds must be a whole number >= 1 (math-verify), got {timeout_seconds}")
    answer = extract_answer(completion_text(completion), finders)
    if threading.current_thread() is threading.main_thread():
        match = mathcheck.answers_match(str(reference), answer, int(timeout_seconds))
    else:
        match = _WORKER.match(str(reference), answer, int(timeout_seconds))
    if match == "timeout":
        return Verdict(answer, False, "timeout")
    if match is None:
        return Verdict(answer, None, "bad_reference")
    if answer is None:
        return Verdict(None, False, "no_answer")
    return Verdict(answer, bool(match), "correct" if match else "wrong")


def make_math_reward(
    answer_field: str = "answer",
    timeout_seconds: int = DEFAULT_TIMEOUT,
    format_weight: float = 0.0,
    finders: Sequence[str] | None = None,
    name: str = "math_verify_reward",
) -> Callable[..., list[float | None]]:
    """A TRL reward function: 1.0 for a correct final answer, else 0.0, plus ``format_weight`` for every
    completion that has a final-answer span; ``None`` (TRL: not scored) where the reference does not parse.

    TRL passes the dataset column ``answer_field`` (the references) as a keyword argument; extracted answers
    go to TRL's completions table through ``log_extra`` when the trainer provides it.
    """
    if not (math.isfinite(format_weight) and format_weight >= 0):
        raise ValueError(f"format_weight must be a finite number >= 0, got {format_weight}")

    def reward(
        prompts: list | None = None, completions: list | None = None, **kwargs: Any
    ) -> list[float | None]:
        if completions is None:
            raise TypeError(f"{name} needs completions=...")
        if answer_field not in kwargs:
            raise KeyError(f"{name} needs the reference answers in the dataset column {answer_field!r}")
        references = kwargs[answer_field]
        if len(references) != len(completions):
            raise ValueError(f"{len(completions)} completions but {len(references)} references")
        pairs = zip(completions, references, strict=True)
        verdicts = [check_answer(c, r, timeout_seconds, finders) for c, r in pairs]
        if callable(kwargs.get("log_extra")):
            kwargs["log_extra"]("extracted_answer", [v.answer for v in verdicts])
        return [
            None if v.correct is None else float(v.correct) + format_weight * (v.answer is not None)
            for v in verdicts
        ]

    reward.__name__ = reward.__qualname__ = name
    return reward


#: The default math reward (dataset column ``answer``, 5 s math-verify timeouts, no format bonus).
math_verify_reward = make_math_reward()


def format_reward(completions: list, **kwargs: Any) -> list[float]:
    """1.0 when a completion has a final-answer span (``\\boxed{}``, ``####``, ...), else 0.0."""
    return [float(extract_answer(completion_text(c)) is not None) for c in completions]
