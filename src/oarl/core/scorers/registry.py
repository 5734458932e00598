"""The scorer registry: each scorer is declared once, where it is defined, as a :class:`ScorerSpec`.

A scorer is a function ``fn(model, layout, <options>, [inputs]) -> Tensor[B, L]`` (float32, 0 outside the
reasoning mask; ``layout`` a :class:`~oarl.core.layout.Layout`; the inputs, each passed only to the scorers whose
``needs`` name it: ``generator``, ``oracle_mask``, ``reward_fn``, ``reference_model``, ``contrast_models``,
``tokenizer``). ``ScorerSpec.output`` says what the tensor is: ``"scores"`` (OAR's gate turns them into
weights) or ``"weights"`` (already the method's own per-token multipliers of the sequence advantage; the gate
is skipped). Its keyword parameters
with defaults are its options: :func:`register_scorer` turns them into a frozen dataclass
(``spec.options``), so each default is written once, in the signature, and an option the scorer does not take
fails loudly (with the valid keys listed) instead of being ignored. The inputs are not options but what the
caller provides, declared in ``needs``. As verl's ``core_algos`` registry, but a name
registered twice raises.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from oarl.core.layout import Layout

#: What a scorer reads besides the four ``[B, L]`` layout tensors (the trainer must provide it).
NEEDS = {
    "model": "runs the policy",
    "gradients": "backpropagates through the policy (to its input embeddings or keys/values)",
    "randomness": "draws from the caller's ``generator``",
    "oracle_labels": "reads ``oracle_mask``, the known decisive tokens (synthetic tasks only)",
    # Reserved for the coming credit families (information gain, prefix trees, resampling):
    "group_rewards": "reads the rewards of the row's group",
    "reference_answer": "reads the reference answer",
    "generation": "samples continuations from the policy and rewards them with the caller's ``reward_fn``",
    "reference_model": "reads a frozen reference model, ``reference_model`` (``oar_reference_model=``, else TRL's ``ref_model``)",
    "contrast_models": "reads ``contrast_models = (positive, negative)``, two models tuned on correct and on wrong "
    "rollouts",
    "tokenizer": "reads the policy's ``tokenizer`` (token text)",
}
#: What a scorer's tensor is: gated scores, or the method's own weights (the gate is skipped).
OUTPUTS = {
    "scores": "token scores; OAR's bi-level gate turns them into weights that sum to the reasoning-token count",
    "weights": "the method's own per-token multipliers of the sequence advantage (``A_t = A * w_t``), used as "
    "they are: the gate is skipped and the mass is the method's (not renormalised)",
}
STATUSES = {
    "recommended": 'won or tied in the project\'s measurements (docs/fidelity.md; docs/performance.md, "Past T²")',
    "experimental": "lost there; kept for ablations (the table says by how much)",
    "control": "a baseline to compare against, not a credit method",
}
#: Cost of one call, for ``T`` reasoning tokens a row.
COSTS = {
    "none": "no model call",
    "forward": "one forward pass",
    "backward": "a few forwards and backwards, independent of T",
    "linear": "token-passes linear in T (more than a forward)",
    "quadratic": "masked copies: ~T^2 / 2 token-passes, or a fraction of that",
}
#: Inputs that come from ``needs`` rather than from the options.
_INPUTS = {
    "generator": "randomness",
    "oracle_mask": "oracle_labels",
    "reward_fn": "generation",
    "reference_model": "reference_model",
    "contrast_models": "contrast_models",
    "tokenizer": "tokenizer",
}
_LAYOUT = ("model", "layout")


@dataclass(frozen=True)
class ScorerSpec:
    """A scorer's declaration. ``options``, ``fn`` and ``doc`` are filled in by :func:`register_scorer`.

    ``check(options)`` (optional) validates values or nested options at config time (raise ValueError).
    ``output``: ``"scores"`` (gated) or ``"weights"`` (the method's own weights, not gated; see ``OUTPUTS``).
    """

    name: str
    family: str
    needs: frozenset[str]
    status: str
    cost: str
    why: str = ""  # experimental: the measurement it lost; shown in docs/scorers.md
    label: str = ""  # display name in tables and figures (default: the name)
    #: True for plain GRPO (``"none"``): every weight is 1 by definition, so a caller neither scores nor gates
    #: (no row counts as scored, ESS 1, no scorer time, no loss mode or sharding to refuse).
    uniform: bool = False
    check: Callable[[Any], None] | None = None
    output: str = "scores"
    options: type | None = None
    fn: Callable[..., Tensor] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        unknown = set(self.needs) - set(NEEDS)
        if self.uniform and (self.needs or self.cost != "none"):
            raise ValueError(
                f"scorer {self.name!r}: a uniform scorer reads nothing (needs empty, cost 'none')"
            )
        if unknown or self.status not in STATUSES or self.cost not in COSTS or self.output not in OUTPUTS:
            raise ValueError(
                f"scorer {self.name!r}: needs {sorted(unknown)} not in {list(NEEDS)}, or status {self.status!r} "
                f"not in {list(STATUSES)}, or cost {self.cost!r} not in {list(COSTS)}, or output "
                f"{self.output!r} not in {list(OUTPUTS)}"
            )

    @property
    def gated(self) -> bool:
        """True when OAR's gate turns the output into weights (``output == "scores"``)."""
        return self.output == "scores"

    @property
    def display(self) -> str:
        """The label shown in tables and figures."""
        return self.label or self.name

    @property
    def model_free(self) -> bool:
        """True when the scorer never runs the model (nothing to gather when parameters are sharded)."""
        return "model" not in self.needs

    @property
    def doc(self) -> str:
        """The first paragraph of the scorer's docstring, on one line (Sphinx roles dropped)."""
        text = " ".join((inspect.getdoc(self.fn) or "").split("\n\n")[0].split())
        return re.sub(r":\w+:`~?([^`]+)`", r"``\1``", text)

    def defaults(self) -> dict[str, Any]:
        """``{option: default}`` in signature order."""
        return {f.name: f.default for f in dataclasses.fields(self.options)}

    def takes(self, key: str) -> bool:
        """Whether ``key`` is one of this scorer's options."""
        return any(f.name == key for f in dataclasses.fields(self.options))

    def validate(self, options: Mapping[str, Any] | None = None, unlisted: tuple[str, ...] = ()) -> Any:
        """``options`` as a frozen ``self.options`` instance; unknown keys raise a ValueError listing the valid ones
        (but ``unlisted``: options the caller sets elsewhere)."""
        options = dict(options or {})
        unknown = sorted(set(options) - set(self.defaults()))
        valid = sorted(k for k in self.defaults() if k not in unlisted)
        if unknown:
            hint = ""
            if "upcast" in unknown:
                hint = f" ({self.name!r} does not run in float32 on request; upcast: {upcast_scorers()})"
            elsewhere = sorted(k for k in self.defaults() if k in unlisted)
            if elsewhere:
                hint += f"; {elsewhere} come from their named settings"
            raise ValueError(f"scorer {self.name!r} has no option(s) {unknown}{hint}; valid options: {valid}")
        opts = self.options(**options)
        if self.check is not None:
            self.check(opts)
        return opts

    def __call__(
        self,
        model,
        layout: Layout | Tensor,
        attention_mask: Tensor | None = None,
        reasoning_mask: Tensor | None = None,
        answer_mask: Tensor | None = None,
        *,
        generator=None,
        oracle_mask: Tensor | None = None,
        reward_fn: Callable[..., Any] | None = None,
        reference_model: Any = None,
        contrast_models: Any = None,
        tokenizer: Any = None,
        **options: Any,
    ) -> Tensor:
        """Score a batch: ``[B, L]`` float32. ``layout``: a :class:`Layout`, or its four ``[B, L]`` tensors
        (``input_ids, attention_mask, reasoning_mask, answer_mask``). Options are validated; the inputs
        (``generator``, ``oracle_mask``, ``reward_fn``, ``reference_model``, ``contrast_models``, ``tokenizer``)
        are passed only to a scorer that ``needs`` them (callers may always provide them)."""
        if not isinstance(layout, Layout):
            layout = Layout(layout, attention_mask, reasoning_mask, answer_mask)
        elif attention_mask is not None or reasoning_mask is not None or answer_mask is not None:
            raise TypeError("pass a Layout or its four tensors, not both")
        valid = self.validate(options)
        opts = {f.name: getattr(valid, f.name) for f in dataclasses.fields(valid)}  # no deep copy (asdict)
        inputs = {
            "generator": generator,
            "oracle_mask": oracle_mask,
            "reward_fn": reward_fn,
            "reference_model": reference_model,
            "contrast_models": contrast_models,
            "tokenizer": tokenizer,
        }
        kw = {k: v for k, v in inputs.items() if _INPUTS[k] in self.needs}
        return self.fn(model, layout, **opts, **kw)


#: Every registered scorer by name, in registration order.
SCORERS: dict[str, ScorerSpec] = {}


def _options_class(name: str, fn: Callable[..., Tensor], needs: frozenset[str]) -> type:
    """The frozen dataclass of ``fn``'s options (keyword parameters after the layout, minus the inputs)."""
    params = list(inspect.signature(fn).parameters.values())
    if tuple(p.name for p in params[: len(_LAYOUT)]) != _LAYOUT:
        raise TypeError(f"scorer {name!r} must take {_LAYOUT} first")
    rest = params[len(_LAYOUT) :]
    bad = [p.name for p in rest if p.default is inspect.Parameter.empty or p.kind is p.VAR_KEYWORD]
    if bad:
        raise TypeError(
            f"scorer {name!r}: options need defaults and no **kwargs (they would swallow typos): {bad}"
        )
    for arg, need in _INPUTS.items():
        if (arg in {p.name for p in rest}) != (need in needs):
            raise TypeError(f"scorer {name!r}: takes {arg!r} exactly when it needs {need!r}")
    fields = [(p.name, Any, field(default=p.default)) for p in rest if p.name not in _INPUTS]
    return dataclasses.make_dataclass(f"{name}_options", fields, frozen=True)


def register_scorer(spec: ScorerSpec) -> Callable[[Callable[..., Tensor]], Callable[..., Tensor]]:
    """Decorator: register the function under ``spec.name`` (a ValueError if the name is taken).

    Returns the function unchanged, so direct calls keep its signature.
    """

    def deco(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
        if spec.name in SCORERS:
            raise ValueError(f"scorer {spec.name!r} is already registered")
        options = _options_class(spec.name, fn, spec.needs)
        SCORERS[spec.name] = dataclasses.replace(spec, options=options, fn=fn)
        return fn

    return deco


def unregister_scorer(name: str) -> None:
    """Remove a registered scorer (tests and plugins that register temporary ones)."""
    del SCORERS[name]


def get_scorer(name: str) -> ScorerSpec:
    """The scorer registered as ``name`` (callable; see :meth:`ScorerSpec.__call__`); a ValueError lists the
    known names otherwise."""
    try:
        return SCORERS[name]
    except KeyError:
        raise ValueError(f"unknown scorer {name!r}; expected one of {sorted(SCORERS)}") from None


def upcast_scorers() -> list[str]:
    """Scorers that take ``upcast`` (score in float32 on bf16/fp16 weights)."""
    return [n for n, s in SCORERS.items() if s.takes("upcast")]


def model_free_scorers() -> tuple[str, ...]:
    """Scorers that never run the model."""
    return tuple(n for n, s in SCORERS.items() if s.model_free)


def shared_options(name: str, **settings: Any) -> dict[str, Any]:
    """The subset of ``settings`` that scorer ``name`` takes as options (``None`` values: the scorer's default).

    For code that runs several scorers under one set of shared settings (``probe``, ``noise_std``, ...): a
    shared setting applies to the scorers that have it. A scorer's own options go through
    :meth:`ScorerSpec.validate` (or the call), which refuses unknown keys.
    """
    spec = get_scorer(name)
    return {k: v for k, v in settings.items() if v is not None and spec.takes(k)}
