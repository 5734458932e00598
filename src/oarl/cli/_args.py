"""What the commands share: argparse idioms and the ``main()`` error wrapper. Not a command (the leading
underscore): every command may import it, and no command imports another (tests/test_layers.py)."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
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
