"""What the commands share: argparse idioms and the ``main()`` error wrapper. Not a command (the leading
underscore): every command may import it, and no command imports another (tests/test_layers.py)."""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from oarl.core.probes import PROBES

T = TypeVar("T")
#: The probes a ``--probe`` option offers (the core's list, not a copy).
PROBE_CHOICES: tuple[str, ...] = PROBES


def names(text: str | None) -> list[str]:
    """A comma list of names, blanks dropped (``None`` or ``""``: none)."""
    return [a.strip() for a in (text or "").split(",") if a.strip()]


def numbers(text: str | None, cast: Callable[[str], T] = float) -> list[T]:
    """A comma list of numbers (``cast`` each: ``float`` or ``int``), blanks dropped."""
    return [cast(x) for x in names(text)]


def seeds(text: str) -> list[int]:
    """``"0-4"`` (a range, both ends in) or ``"0,3,7"`` (a list; one seed is a list of one)."""
    span = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", text)
    if span:
        return list(range(int(span[1]), int(span[2]) + 1))
    return [int(s) for s in text.split(",")]


def value(text: str) -> Any:
    """A command-line value as YAML would read it, for the few types a config field has: ``None`` / ``null``,
    ``true`` / ``false``, int, float, else the text (``none`` stays text: it is a chatter level)."""
    if text in ("None", "null"):
        return None
    if text in ("true", "True", "false", "False"):
        return text in ("true", "True")
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def assignments(items: list[str]) -> list[tuple[str, list]]:
    """``["FIELD=v1,v2", ...]`` -> ``[(FIELD, [v1, v2]), ...]`` (each value read by :func:`value`)."""
    out = []
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not values:
            raise ValueError(f"expected FIELD=v1,v2,..., got {item!r}")
        out.append((key, [value(v) for v in values.split(",")]))
    return out


def settings(items: list[str]) -> dict[str, Any]:
    """``["FIELD=VALUE", ...]`` -> ``{FIELD: value}`` (``--set``)."""
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"expected FIELD=VALUE, got {item!r}")
        out[key] = value(text)
    return out


def parse_models(specs: list[str]) -> dict[str, str]:
    """``NAME=PATH`` (or a bare ``PATH``, named after its folder; a short name is resolved) -> ``{name: path}``."""
    from oarl.lab.models.resolve import resolve_model

    out = {}
    for spec in specs:
        name, eq, path = spec.partition("=")
        name, path = (name, path) if eq else (Path(spec).name, spec)
        path = resolve_model(path)
        if not Path(path, "config.json").exists():
            raise FileNotFoundError(f"{path}: not a model folder (no config.json)")
        out[name] = path
    return out


def usage_error(prog: str, error: BaseException) -> int:
    """Print ``oarl PROG: error: ...`` on stderr; returns 2, the exit code of a usage error."""
    print(f"oarl {prog}: error: {error}", file=sys.stderr)
    return 2


def run_main(
    prog: str,
    run: Callable[..., int],
    *args: Any,
    errors: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError),
) -> int:
    """``run(*args)``; one of ``errors`` is a usage error (:func:`usage_error`), anything else a traceback."""
    try:
        return int(run(*args) or 0)
    except errors as e:
        return usage_error(prog, e)


def nearest(name: str, valid: Iterable[str]) -> str | None:
    """The valid name closest to a misspelled ``name`` (difflib), or None."""
    near = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.6)
    return near[0] if near else None


def read_config(argv: list[str]) -> tuple[str | None, dict[str, Any]]:
    """``--config FILE`` of a TrlParser command line: ``(FILE, its YAML mapping)``; ``(None, {})`` without."""
    import yaml

    if "--config" not in argv:
        return None, {}
    i = argv.index("--config")
    if i + 1 >= len(argv):
        raise ValueError("--config needs a YAML file")
    path = argv[i + 1]
    if not Path(path).is_file():
        raise FileNotFoundError(f"--config {path}: no such file")
    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a config file must be a YAML mapping of field: value")
    return path, data


def check_config_keys(data: dict[str, Any], valid: Iterable[str], path: str, prog: str) -> None:
    """Refuse a YAML key that is no field: the bad key, the nearest valid one and where the fields are listed."""
    valid = set(valid) | {"env"}  # TrlParser's environment-variable section
    for key in data:
        if key not in valid:
            near = nearest(str(key), valid)
            hint = f"; did you mean {near!r}?" if near else ""
            raise ValueError(f"{path}: unknown key {key!r}{hint} (`oarl {prog} --help` lists every field)")


def flags_given(argv: list[str]) -> dict[str, Any]:
    """The ``--field value`` / ``--field=value`` pairs of a command line (``-`` read as ``_``), values read by
    :func:`value` (a flag with no value is ``True``, several values a list); ``--config`` left out."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        tok = argv[i]
        i += 1
        if not tok.startswith("--") or tok == "--config":
            i += tok == "--config"
            continue
        key, eq, text = tok[2:].partition("=")
        if eq:
            out[key.replace("-", "_")] = value(text)
            continue
        values = []
        while i < len(argv) and not argv[i].startswith("--"):
            values.append(value(argv[i]))
            i += 1
        out[key.replace("-", "_")] = True if not values else values[0] if len(values) == 1 else values
    return out


def new_root(folder: Path) -> Path | None:
    """The topmost folder of ``folder``'s path that does not exist yet (what a run would create), or None."""
    folder = Path(folder).absolute()
    if folder.exists():
        return None
    root = folder
    while not root.parent.exists():
        root = root.parent
    return root


def remove_if_empty(root: Path | None) -> None:
    """Remove the folders under ``root`` (from :func:`new_root`, taken before the run) that a failed run left
    empty, and ``root`` itself if nothing is left in it; None (the folder existed before): nothing."""
    if root is None or not root.is_dir():
        return
    for sub in sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if sub.is_dir() and not any(sub.iterdir()):
            sub.rmdir()
    if not any(root.iterdir()):
        root.rmdir()
