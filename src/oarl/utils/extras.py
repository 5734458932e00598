"""What an optional part of oarl needs installed, checked once where that part starts.

``pip install oarl`` brings the library (core, batch, integrations: torch, transformers, TRL, numpy). The lab
(``oarl.lab``: testbed, studies, plots, real-model conversion) needs the ``lab`` extra and the math-verify
rewards the ``math`` extra; each checks for its packages on import (:func:`require`) and fails at once with
the ``pip install`` line to run, instead of an ImportError deep inside a run.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping


class MissingExtra(ImportError):
    """An optional part of oarl was imported without its extra; the message is the ``pip install`` line."""


def require(extra: str, modules: Mapping[str, str], part: str) -> None:
    """Raise :class:`MissingExtra` unless every module of ``modules`` (import name -> PyPI name) is installed.

    ``part`` names what needs them in the message (``"oarl.lab"``). Looks the modules up without importing
    them (``importlib.util.find_spec``), so the check costs no start-up time.
    """
    missing = [dist for module, dist in modules.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise MissingExtra(
            f'{part} needs {", ".join(missing)} (the "{extra}" extra): pip install "oarl[{extra}]"',
            name=next(m for m, d in modules.items() if d == missing[0]),
        )
