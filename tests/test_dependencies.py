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
    return [Requirement(r) for group in groups for r in group]


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
