"""pyproject.toml declares ranges whose ends are the two stacks CI runs (requirements/lock.txt, low.txt)."""

from __future__ import annotations

from importlib.metadata import requires
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _pins(name: str) -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements" / name).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", f"{name}: {line} is not an exact pin"
            pins[canonicalize_name(req.name)] = spec.version
    return pins


def _declared() -> list[Requirement]:
    groups = [PROJECT["dependencies"]] + [
        v for k, v in PROJECT["optional-dependencies"].items() if k != "vllm"
    ]
    reqs = [Requirement(r) for group in groups for r in group]
    return [r for r in reqs if canonicalize_name(r.name) != "oarl"]  # dev's oarl[lab,math,...]: the extras


LOCK, LOW = _pins("lock.txt"), _pins("low.txt")


@pytest.mark.parametrize("req", _declared(), ids=str)
def test_each_range_holds_both_stacks_and_its_floor_is_the_low_one(req: Requirement) -> None:
    name = canonicalize_name(req.name)
    assert not any(s.operator in ("==", "===", "~=") for s in req.specifier), (
        f"{req}: declare a range, not a pin"
    )
    floors = [s.version for s in req.specifier if s.operator == ">="]
    assert floors, f"{req}: no tested lower bound"
    assert req.specifier.contains(LOCK[name], prereleases=True), (
        f"lock.txt's {name}=={LOCK[name]} is outside {req}"
    )
    # the floor is what the low stack installs, so the lower bound is the version CI tests
    assert Version(LOW[name]) == Version(floors[0]), (
        f"low.txt's {name}=={LOW[name]} is not {req}'s floor {floors[0]}"
    )


def test_the_vllm_extra_is_trls_own_range() -> None:
    (ours,) = (Requirement(r) for r in PROJECT["optional-dependencies"]["vllm"])
    trl = [Requirement(r) for r in requires("trl") or [] if r.startswith("vllm")]
    assert trl, "the installed trl declares no vllm extra"
    assert ours.specifier == SpecifierSet(str(trl[0].specifier))


def test_the_stacks_share_the_torch_set_up_installs_first() -> None:
    assert LOCK["torch"] == LOW["torch"] == "2.13.0"


# --- the core install and its extras -------------------------------------------------------------------------

SRC = ROOT / "src" / "oarl"
LIBRARY = ("utils", "core", "batch", "integrations")
#: import name -> PyPI name, where they differ
DIST = {"yaml": "pyyaml", "math_verify": "math-verify"}


def _names(group: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(r).name) for r in group}


def _imported(paths) -> dict[str, set[str]]:
    """PyPI name -> the files under src/oarl that import it (stdlib and oarl itself left out)."""
    import ast
    import sys

    out: dict[str, set[str]] = {}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                mods = [node.module]
            elif isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            else:
                continue
            for m in (m.split(".")[0] for m in mods):
                if m not in sys.stdlib_module_names and m not in ("oarl", "__future__"):
                    out.setdefault(canonicalize_name(DIST.get(m, m)), set()).add(str(path.relative_to(SRC)))
    return out


EXTRAS = PROJECT["optional-dependencies"]
CORE = _names(PROJECT["dependencies"])


def test_the_core_is_what_the_library_imports() -> None:
    """``pip install oarl`` declares exactly what the library's code imports (torch, transformers, trl, numpy);
    peft, imported by the LoRA glue only when asked for, is its own extra."""
    library = [p for p in SRC.rglob("*.py") if p.relative_to(SRC).parts[0] in LIBRARY]
    used = _imported(library)
    assert CORE == set(used) - {"peft"}, f"core {sorted(CORE)} vs imported {sorted(used)}"
    assert used["peft"] == {"integrations/trl/lora.py"} and "peft" in _names(EXTRAS["peft"])


def test_every_import_of_the_lab_and_cli_is_declared() -> None:
    rest = [p for p in SRC.rglob("*.py") if p.relative_to(SRC).parts[0] not in LIBRARY]
    declared = CORE | _names(EXTRAS["lab"]) | _names(EXTRAS["math"]) | _names(EXTRAS["vllm"])
    undeclared = {d: sorted(f) for d, f in _imported(rest).items() if d not in declared}
    assert not undeclared, f"imported but in no extra: {undeclared}"


def test_the_extras_checks_list_the_extras() -> None:
    """oarl.lab and the math rewards check for exactly the packages their extra installs."""
    from oarl.lab import LAB_MODULES
    from oarl.lab.math.rewards import MATH_MODULES

    assert {canonicalize_name(d) for d in LAB_MODULES.values()} == _names(EXTRAS["lab"])
    assert {canonicalize_name(d) for d in MATH_MODULES.values()} == _names(EXTRAS["math"])
    assert set(DIST) <= set(LAB_MODULES) | set(MATH_MODULES)


def test_dev_installs_every_extra_but_vllm() -> None:
    (self_ref,) = (Requirement(r) for r in EXTRAS["dev"] if canonicalize_name(Requirement(r).name) == "oarl")
    assert self_ref.extras == set(EXTRAS) - {"dev", "vllm", "peft"}  # peft: in the lab extra
    assert _names(EXTRAS["peft"]) <= _names(EXTRAS["lab"])
