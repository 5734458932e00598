"""The RL settings every arm of a comparison shares (:class:`RLSettings`), without importing a trainer.

OAR's own settings are an :class:`~oarl.batch.reshape.OARSettings` inside them (``rl.oar``), written once:
the arm chooses the method (and its scorer options), ``rl.oar`` says how every arm scores and gates. A study
sweeps or overrides them by name (:func:`with_overrides`): an ``RLSettings`` field (``steps``), an OAR field by
its path (``oar.tau``) or, as the docs have always written it, by its flat name (``tau``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from oarl.batch.settings import OARSettings, config_name

#: The OARConfig fields :func:`oarl.lab.testbed.experiment.run_arm` sets itself (from the arm and RLSettings'
#: named fields): a key of ``RLSettings.extra`` or ``Arm.trl_fields`` among them would be passed twice, so it is
#: refused. Every OAR field is one (derived from OARSettings: ``oar_<name>``), plus TRL's that run_arm sets.
RUN_FIELDS = frozenset({config_name(f.name) for f in fields(OARSettings)}) | frozenset(
    {
        "output_dir",
        "use_cpu",
        "bf16",
        "report_to",
        "max_steps",
        "per_device_train_batch_size",
        "num_generations",
        "max_completion_length",
        "temperature",
        "learning_rate",
        "lr_scheduler_type",
        "beta",
        "logging_steps",
        "gradient_checkpointing",
        "save_strategy",
        "seed",
        "data_seed",
        "disable_tqdm",
        "log_completions",
    }
)
#: OARSettings fields that belong to the arm, not to the shared settings.
ARM_OWNED = ("method", "scorer_options")
#: OARSettings fields a study may set or sweep, by flat name (``tau``) or path (``oar.tau``).
OAR_KEYS = tuple(f.name for f in fields(OARSettings) if f.name not in ARM_OWNED)


def check_trl_fields(given: Mapping[str, Any], where: str) -> None:
    """Raise unless no key of ``given`` is one :func:`run_arm` sets (:data:`RUN_FIELDS`)."""
    twice = sorted(set(given) & RUN_FIELDS)
    if twice:
        raise ValueError(
            f"{where} sets {twice}, which the testbed sets from RLSettings' named fields and the arm "
            "(oar_tau -> RLSettings.oar.tau, oar_method -> the arm, oar_scorer_options -> Arm.scorer_options, "
            "beta -> RLSettings.kl_beta, ...): set each there, once"
        )


@dataclass
class RLSettings:
    """The RL budget shared by every method of a comparison, and ``oar``: how every arm scores and gates.

    ``oar.method`` is replaced by each arm's ``oar_method``; ``oar.scorer_options`` must stay unset (a scorer's
    own options are its arm's, :attr:`Arm.scorer_options`). A dict for ``oar`` (``asdict`` read back from YAML or
    JSON) is read as OARSettings.
    """

    steps: int = 60
    prompts_per_step: int = 8
    num_generations: int = 8
    learning_rate: float = 1e-4
    max_completion_length: int = 48
    temperature: float = 1.0
    oar: OARSettings = field(default_factory=OARSettings)
    eval_every: int = 10
    eval_samples: int = 0  # sampled completions per held-out problem (0: greedy accuracy only)
    kl_beta: float = 0.0  # TRL's KL coefficient (GRPOConfig.beta)
    lora_rank: int = (
        0  # > 0: train fresh LoRA adapters of this rank (alpha = 2 x rank) instead of all weights
    )
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")
    bf16: bool = False  # bfloat16 autocast in training and in the held-out evaluation
    device: str = "cpu"  # "cuda": the trainer runs on the GPU (many runs can share one: oarl study --workers)
    extra: dict = field(default_factory=dict)  # further GRPOConfig fields, the same for every arm

    def __post_init__(self) -> None:
        if isinstance(self.oar, Mapping):
            self.oar = OARSettings(**self.oar)
        if not isinstance(self.oar, OARSettings):
            raise ValueError(f"RLSettings.oar must be an OARSettings, got {type(self.oar).__name__}")
        if self.oar.scorer_options is not None:
            raise ValueError(
                "RLSettings.oar.scorer_options: a scorer's own options are its arm's (Arm.scorer_options), "
                "not every arm's"
            )
        check_trl_fields(self.extra, "RLSettings.extra")
        if self.lora_rank < 0:
            raise ValueError(
                f"RLSettings.lora_rank must be >= 0 (0 = train all weights), got {self.lora_rank}"
            )
        self.lora_targets = tuple(self.lora_targets)  # a YAML / JSON list reads back as a list
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"RLSettings.device must be 'cpu' or 'cuda', got {self.device!r}")

    def lora_config(self) -> Any:
        """The ``peft.LoraConfig`` of ``lora_rank`` (None when it is 0: all weights train)."""
        if not self.lora_rank:
            return None
        from oarl.integrations.trl.lora import peft_lora_config  # peft only when LoRA is asked for

        return peft_lora_config(self.lora_rank, 2 * self.lora_rank, 0.0, list(self.lora_targets))

    def arm_settings(self, method: str, scorer_options: dict | None = None) -> OARSettings:
        """``oar`` with the arm's ``method`` and scorer options (validated against the scorer registry)."""
        return replace(self.oar, method=method, scorer_options=scorer_options)


def settings_keys() -> list[str]:
    """Every name :func:`with_overrides` takes: RLSettings fields, then ``oar.<field>`` and the flat names."""
    top = [f.name for f in fields(RLSettings) if f.name != "oar"]
    return top + [f"oar.{k}" for k in OAR_KEYS] + list(OAR_KEYS)


def canonical_key(key: str) -> str:
    """The name a setting is recorded under: an OAR field by its flat name (``oar.tau`` -> ``tau``, as condition
    names of earlier studies have it), an RLSettings field as it is; ValueError on any other name."""
    name = key.removeprefix("oar.")
    top = {f.name for f in fields(RLSettings)} - {"oar"}
    if key.startswith("oar."):
        if name in OAR_KEYS:
            return name
        raise ValueError(
            f"{key!r}: not an OAR setting; expected one of {[f'oar.{k}' for k in OAR_KEYS]} "
            f"({', '.join(ARM_OWNED)} are the arm's)"
        )
    if name in top or name in OAR_KEYS:
        return name
    raise ValueError(f"{key!r}: not an RL setting; expected one of {settings_keys()}")


def with_overrides(rl: RLSettings, overrides: Mapping[str, Any]) -> RLSettings:
    """``rl`` with ``overrides`` by name (:func:`canonical_key`: ``steps``, ``oar.tau`` or ``tau``), validated."""
    top: dict[str, Any] = {}
    oar: dict[str, Any] = {}
    for key, value in overrides.items():
        name = canonical_key(key)
        (oar if name in OAR_KEYS else top)[name] = value
    if oar:
        top["oar"] = replace(rl.oar, **oar)
    return replace(rl, **top)
