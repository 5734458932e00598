"""The one definition of every OAR knob and its default: :class:`OARSettings`.

Each field carries its help text (``metadata["help"]``); ``OARConfig`` (TRL) derives its ``oar_<name>`` fields
from them (:func:`config_name`) and the testbed's ``RLSettings`` holds an ``OARSettings`` as it is, so a new knob
is one field here. Method helpers (:func:`methods`, :func:`method_label`, :func:`model_free`) read the scorer
registry, where plain GRPO is the scorer ``"none"`` (``ScorerSpec.uniform``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from oarl.batch.span_watch import check_watch_settings
from oarl.batch.spans import check_finders
from oarl.core.gating import BETA, FLOOR, TAU, check_gate_params
from oarl.core.probes import check_probe
from oarl.core.scorers import SCORERS, get_scorer, shared_options


def methods() -> tuple[str, ...]:
    """Valid ``method`` values: every registered scorer (``"none"``: plain GRPO), read at call time."""
    return tuple(SCORERS)


def method_label(method: str) -> str:
    """Display label of a method (the scorer's: ``"GRPO"`` for ``"none"``); other names as they are."""
    return SCORERS[method].display if method in SCORERS else method


def model_free(method: str) -> bool:
    """True when ``method`` never runs the model (plain GRPO and the scorers that do not need it)."""
    return get_scorer(method).model_free


#: Scorer options set only through their named settings (the warm-up switches ``probe``; the trainer resolves
#: ``mask_token_id`` from ``oar_mask_token``), never through ``scorer_options``.
NAMED_ONLY = ("probe", "mask_token_id")
#: OARSettings fields a trainer config names differently: ``mask_token_id`` is an id of the tokenizer, which a
#: config (written before the tokenizer loads) gives as text or id, ``oar_mask_token``, for the trainer to resolve.
TOKENIZER_FIELDS = {"mask_token_id": "mask_token"}


def config_name(name: str) -> str:
    """The trainer-config field of OARSettings field ``name``: ``oar_<name>`` (``oar_mask_token`` for
    ``mask_token_id``, see :data:`TOKENIZER_FIELDS`)."""
    return "oar_" + TOKENIZER_FIELDS.get(name, name)


def _knob(default: Any, help: str, **kw: Any) -> Any:
    """A settings field with its help text, written once next to it (``metadata``: argparse keywords, as
    transformers' ``HfArgumentParser`` reads them from a config's fields)."""
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class OARSettings:
    """What to score with, how to gate, and the step's switches: the one settings object. ``OARConfig``
    (``oar_*`` fields) and the testbed's ``RLSettings`` derive theirs from it. ``method="none"`` is plain GRPO.

    The named scorer settings (``probe``, ``mask_token_id``, ``noise_std``, ``max_batch_tokens``) are shared by
    every scorer and each applies to the scorers that have that option (``noise_std`` to OAR-G, not to OAR-P);
    ``None`` leaves the scorer's own default. ``scorer_options`` are the chosen scorer's own options (a dict, or
    its JSON text), checked here against it (:meth:`ScorerSpec.validate`): an unknown key, or one also set by a
    named setting, raises. Everything is validated at construction.
    """

    method: str = _knob(
        "gradient",
        "token scorer: 'none' (plain GRPO) or any name in oarl.core.scorers.SCORERS",
        # the registry as it is when this module is imported (a CLI's argparse check); __post_init__ re-validates
        # against the registry at construction, so later registrations work too
        choices=list(SCORERS),
    )
    probe: str = _knob("as_mean", "outcome probe: lt_logits, as_mean (paper's best) or as_joint")
    probe_warmup_steps: int = _knob(0, "use lt_logits before this global step, then probe")
    tau: float = _knob(TAU, "gate quantile in (0, 1); low tau boosts more")
    beta: float = _knob(BETA, "boost strength >= 0")
    floor: float = _knob(FLOOR, "least weight of a suppressed token, in [0, 1]")
    noise_std: float | None = _knob(
        None, "embedding noise std >= 0 of the scorers that take noise_std (OAR-G); default: theirs"
    )
    mask_token_id: int | None = _knob(
        None, "OAR-P replacement token id; default: the scorer's (the pad token)"
    )
    max_batch_tokens: int | None = _knob(
        None,
        "masking scorers (OAR-P): recomputed tokens per forward (memory bound; raise on GPUs); default: the "
        "scorer's",
    )
    skip_zero_advantage: bool = _knob(
        True, "do not score rows whose advantage is zero (e.g. a group rewarded alike)"
    )
    span_finders: list[str] | None = _knob(
        None,
        "answer-span finders, some of boxed, hashes, answer_is, task_marker (oarl.batch.spans.SPAN_FINDERS), or "
        '"re:PATTERN" (a regular expression with one group: the answer); '
        "default: all",
    )
    scorer_options: dict | str | None = _knob(
        None,
        "the scorer's own options, a dict or a JSON string (e.g. '{\"window\": 8}'); checked against the scorer "
        "(docs/scorers.md lists each scorer's options)",
    )
    # OAR never silently off (oarl.batch.span_watch): the step warns once when more than no_span_warn_frac of
    # the rows of the last no_span_window steps had no answer span (those rows keep weight 1: plain GRPO)
    no_span_warn_frac: float = _knob(
        0.5, "warn once when more than this share of rows has no answer span (1.0: never), in [0, 1]"
    )
    no_span_window: int = _knob(10, "steps over which the no-answer-span share is measured (>= 1)")
    no_span_error: bool = _knob(False, "raise instead of warning when the no-answer-span share is exceeded")

    def __post_init__(self) -> None:
        if self.method not in methods():
            raise ValueError(f"unknown OAR method {self.method!r}; expected one of {methods()}")
        check_probe(self.probe)
        if not (isinstance(self.probe_warmup_steps, int) and self.probe_warmup_steps >= 0):
            raise ValueError(
                f"probe_warmup_steps must be a whole number >= 0, got {self.probe_warmup_steps!r}"
            )
        check_gate_params(self.tau, self.beta, self.floor)
        if self.noise_std is not None and not self.noise_std >= 0:
            raise ValueError(f"noise_std must be >= 0, got {self.noise_std}")
        if self.max_batch_tokens is not None and self.max_batch_tokens < 1:
            raise ValueError(f"max_batch_tokens must be >= 1, got {self.max_batch_tokens}")
        check_finders(self.span_finders)  # built-in names or "re:PATTERN" (oarl.batch.spans.get_finder)
        check_watch_settings(self.no_span_warn_frac, self.no_span_window)
        if isinstance(self.scorer_options, str):
            try:
                self.scorer_options = json.loads(self.scorer_options)
            except json.JSONDecodeError as e:
                raise ValueError(f"scorer_options is not valid JSON: {e}") from None
        if self.scorer_options is not None and not isinstance(self.scorer_options, dict):
            raise ValueError(f"scorer_options must be a dict, got {type(self.scorer_options).__name__}")
        self.resolved_options()  # fails here, at config time, on a bad option

    def resolved_options(self) -> dict[str, Any]:
        """The options the scorer is called with: the named settings it takes, plus ``scorer_options``."""
        given = dict(self.scorer_options or {})
        named = {
            "probe": self.probe,
            "mask_token_id": self.mask_token_id,
            "noise_std": self.noise_std,
            "max_batch_tokens": self.max_batch_tokens,
        }
        twice = sorted(k for k in given if k in NAMED_ONLY or named.get(k) is not None)
        if twice:
            raise ValueError(
                f"scorer option(s) {twice} are also named settings (oar_{twice[0]}); set each in one place "
                f"({NAMED_ONLY} only through their named settings)"
            )
        named = {k: v for k, v in named.items() if v is not None}
        options = {**shared_options(self.method, **named), **given}
        get_scorer(self.method).validate(options, unlisted=NAMED_ONLY)
        return options
