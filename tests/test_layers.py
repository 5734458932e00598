"""The package layout is the architecture: each layer imports only from layers below it (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "oarl"
# Bottom to top. A module may import from its own layer and any layer before it in this list. The library is
# utils, core, batch, integrations; the lab (``oarl/lab/``: models, math, testbed, viz, bench) sits on it, and
# cli on both. models (real pretrained models by short name: package files, a cache folder) is I/O.
LIBRARY = ["utils", "core", "batch", "integrations"]
LAB = ["models", "math", "testbed", "viz", "bench"]
LAYERS = [*LIBRARY, "lab", *LAB, "cli"]


def _layer(path: Path) -> str:
    rel = path.relative_to(SRC)
    if rel.parts[0] == "lab":
        return rel.parts[1] if len(rel.parts) > 2 else "lab"
    return rel.parts[0] if len(rel.parts) > 1 else "top"


def _oarl_imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "oarl":
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "oarl"]
    return found


def _third_party(path: Path) -> set[str]:
    mods = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            mods.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            mods |= {a.name.split(".")[0] for a in node.names}
    return mods


MODULES = sorted(p for p in SRC.rglob("*.py") if _layer(p) != "top")


def test_every_subpackage_is_a_known_layer():
    assert {_layer(p) for p in MODULES} <= set(LAYERS)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_point_down(path: Path):
    mine = LAYERS.index(_layer(path))
    for lineno, module in _oarl_imports(path):
        parts = module.split(".")
        target = parts[1] if len(parts) > 1 else "top"
        if target == "lab":
            target = parts[2] if len(parts) > 2 else "lab"
        if target == "top":  # the package root re-exports every layer: only the CLI (the top) may use it
            assert _layer(path) == "cli", f"{path.name}:{lineno} imports the package root; import the layer"
            continue
        assert LAYERS.index(target) <= mine, f"{path.name}:{lineno}: {_layer(path)} must not import {module}"


CLI = SRC / "cli"
#: The command modules: every module of cli/ but the dispatcher (``__init__``, ``__main__``) and the shared
#: helpers, whose names start with an underscore (``_args``).
COMMAND_MODULES = sorted(p for p in CLI.glob("*.py") if not p.stem.startswith("_"))


def _cli_targets(path: Path) -> list[tuple[int, str]]:
    """(line, module of cli/) of each import of a cli module in ``path`` (``oarl.cli`` itself: ``__init__``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "oarl.cli":
            found += [(node.lineno, a.name) for a in node.names]  # from oarl.cli import demo / main
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("oarl.cli."):
            found.append((node.lineno, node.module.split(".")[2]))
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "oarl.cli" or a.name.startswith("oarl.cli."):
                    found.append((node.lineno, a.name.split(".")[2] if a.name.count(".") > 1 else "__init__"))
    return found


def test_every_command_module_is_a_command():
    """A module of cli/ without a leading underscore is a command of ``oarl`` (a helper's name starts with one)."""
    from oarl.cli import COMMANDS

    assert {p.stem for p in COMMAND_MODULES} == {m.rsplit(".", 1)[1] for m, _ in COMMANDS.values()}


@pytest.mark.parametrize("path", sorted(CLI.glob("*.py")), ids=lambda p: p.name)
def test_no_cli_command_imports_another(path: Path):
    """cli/ is a thin shell: a command imports the shared helpers (``cli/_*.py``) and the layers below, never
    another command nor the dispatcher; the helpers import no command either."""
    if path.stem == "__main__":  # ``python -m oarl.cli``: the dispatcher's entry
        return
    for lineno, target in _cli_targets(path):
        assert target.startswith("_") and target not in ("__init__", "__main__"), (
            f"cli/{path.name}:{lineno} imports the command {target!r}; move what it needs below cli/ or to cli/_args.py"
        )
    if path.stem == "__init__":  # the dispatcher imports its commands by name only, lazily (importlib)
        assert not _cli_targets(path)


@pytest.mark.parametrize("path", [p for p in MODULES if _layer(p) in ("core", "batch")], ids=str)
def test_core_and_batch_step_do_not_import_trainers(path: Path):
    assert not _third_party(path) & {"trl", "accelerate", "datasets", "verl"}


def test_public_names_of_the_readme_import_from_the_top():
    import oarl

    for name in (
        "OARConfig",
        "OARGRPOTrainer",
        "perturbation_scores",
        "gradient_scores",
        "bilevel_weights",
        "reshape_advantages",
        "ess_ratio",
        "top_mass_share",
        "oracle_recall",
        "get_scorer",
        "SCORERS",
        "PROBES",
        "outcome_probe",
    ):
        assert getattr(oarl, name) is not None
    from oarl.integrations.trl import OARGRPOTrainer

    assert oarl.OARGRPOTrainer is OARGRPOTrainer


@pytest.mark.parametrize("path", [p for p in MODULES if _layer(p) == "core"], ids=str)
def test_transformers_is_reached_only_through_the_model_adapter(path: Path):
    """Every transformers-internal call of the core (caches, attention hook, LM head) is in ``core/model.py``, so
    the transformers range CI tests at both ends rests on one file."""
    if path.relative_to(SRC).as_posix() != "core/model.py":
        assert "transformers" not in _third_party(path)


@pytest.mark.parametrize("path", sorted((SRC / "core" / "scorers").rglob("*.py")), ids=str)
def test_scorer_modules_import_at_the_top(path: Path):
    """No function-level imports between scorer modules (a shared helper lives in a shared module instead)."""
    tree = ast.parse(path.read_text())
    for fn in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
        nested = [n for n in ast.walk(fn) if isinstance(n, (ast.Import, ast.ImportFrom))]
        assert not nested, f"{path.name}: {fn.name} imports inside the function"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULE_FILES = {_module_name(p): p for p in SRC.rglob("*.py")}


def _import_graph() -> dict[str, set[str]]:
    """module -> the oarl modules it imports, at any depth of the file (function bodies included).

    ``from oarl.x import y`` is the module ``oarl.x.y`` when that is one, else ``oarl.x``; a package stands for
    its ``__init__``. The parents Python also runs (``oarl.x`` for ``oarl.x.y``) are not edges: a package
    ``__init__`` that gathers its submodules would otherwise be a cycle with each of them.
    """
    graph: dict[str, set[str]] = {}
    for name, path in MODULE_FILES.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                if node.module.split(".")[0] == "oarl":
                    for a in node.names:
                        sub = f"{node.module}.{a.name}"
                        edges.add(sub if sub in MODULE_FILES else node.module)
            elif isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name.split(".")[0] == "oarl"}
        graph[name] = {e for e in edges if e in MODULE_FILES and e != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    """No two oarl modules import each other, directly or through others, counting imports inside functions
    (a function-local import hides a cycle from Python's start-up, not from a reader)."""
    cycles = _cycles(_import_graph())
    files = [[str(MODULE_FILES[m].relative_to(SRC)) for m in c] for c in cycles]
    assert not cycles, f"import cycles among: {files}"


#: Where an oarl import may sit inside a function, beside the commands of cli/ (each imports what it runs when
#: it runs, so `oarl --help` and a command's own start-up stay fast): file -> function -> why.
LOCAL_IMPORTS_ALLOWED = {
    "__init__.py": {"__getattr__": "`import oarl` gives the core without importing TRL (seconds)"},
    "lab/testbed/lora_warmstart.py": {
        "train_adapter": "the recipes import this module, and the single-file loop must load them without TRL"
    },
    "lab/testbed/settings.py": {
        "lora_config": "RLSettings is read without a trainer (YAML, CLI parsers); the LoRA builder's package "
        "(integrations/trl) imports TRL"
    },
    "lab/testbed/train.py": {
        "build_trainer": "the math extra (math-verify) is needed by a math task only, not by `--task flag`"
    },
}


def _local_oarl_imports(path: Path) -> list[tuple[str, int]]:
    found = set()
    for fn in ast.walk(ast.parse(path.read_text())):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "oarl":
                    found.add((fn.name, node.lineno))
                elif isinstance(node, ast.Import) and any(a.name.split(".")[0] == "oarl" for a in node.names):
                    found.add((fn.name, node.lineno))
    return sorted(found, key=lambda f: f[1])


@pytest.mark.parametrize("path", sorted(p for p in SRC.rglob("*.py") if p.parent != CLI), ids=str)
def test_oarl_imports_sit_at_the_top(path: Path):
    """Outside cli/, an oarl import inside a function needs a reason in LOCAL_IMPORTS_ALLOWED."""
    rel = path.relative_to(SRC).as_posix()
    allowed = LOCAL_IMPORTS_ALLOWED.get(rel, {})
    stray = [f"{rel}:{line} in {fn}()" for fn, line in _local_oarl_imports(path) if fn not in allowed]
    assert not stray, f"move to the top of the module (or give a reason in LOCAL_IMPORTS_ALLOWED): {stray}"


def test_the_allowed_local_imports_still_exist():
    for rel, functions in LOCAL_IMPORTS_ALLOWED.items():
        present = {fn for fn, _ in _local_oarl_imports(SRC / rel)}
        assert set(functions) <= present, f"{rel}: {set(functions) - present} no longer import locally"
