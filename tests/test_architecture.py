"""The import direction of README's "How it fits together", checked on the source with ``ast``.

Every module under ``src/buildyard`` is parsed; every import of a buildyard module counts — at the
top, inside functions (lazy imports are still dependencies) and as ``importlib.import_module`` of a
literal name — except those under ``if TYPE_CHECKING:``. Imports are reduced to packages
(``buildyard.spec.load`` -> ``spec``; a top-level module is its own package) and checked against the
layers: faces > engine > services > core, one direction, no cycle between packages.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

from buildyard.graph import find_cycle

SRC = Path(__file__).resolve().parent.parent / "src" / "buildyard"
ROOT = "buildyard"  # the package's __init__ (its version), importable from anywhere

CORE = frozenset(
    {
        ROOT,
        "errors",
        "termtext",
        "fsutil",
        "model",
        "versioning",
        "graph",
        "gitinfo",
        "settings",
        "extras",
        "spec",
        "plan",
    }
)
SERVICES = frozenset(
    {"cache", "artifacts", "deps", "gates", "store", "backup", "views", "triggers", "notify", "importers"}
    | {"exporters", "design", "buildoutput", "scaffold"}
)
ENGINE = frozenset({"engine"})
FACES = frozenset({"cli", "daemon", "server", "dask", "__main__", "testing"})
LAYERS: dict[str, int] = {
    **dict.fromkeys(CORE, 0),
    **dict.fromkeys(SERVICES, 1),
    **dict.fromkeys(ENGINE, 2),
    **dict.fromkeys(FACES, 3),
}
#: The imports between services that the README documents (a service otherwise stands alone).
SERVICE_USES: dict[str, frozenset[str]] = {
    "artifacts": frozenset({"cache", "deps"}),  # blobs in the CAS; SBOM of a package from the deps scan
    "backup": frozenset({"artifacts", "cache", "store"}),  # what it backs up
    "views": frozenset({"store"}),  # the view model of runs is built from history records
    "triggers": frozenset({"store"}),  # schedule claims and the delivery log are tables of the history
    "notify": frozenset({"store"}),  # the outbox is a table of the history
    "buildoutput": frozenset({"store", "views", "artifacts"}),  # runs, deployments, published artifacts
}
#: The imports between faces: the CLI starts the daemon and the cache server; the rest stand alone.
FACE_USES: dict[str, frozenset[str]] = {
    "cli": frozenset({"daemon", "server", "dask"}),
    "dask": frozenset({"server"}),  # the executor serves the job files to the agents
    "__main__": frozenset({"cli"}),
}


def _module_name(path: Path) -> tuple[str, bool]:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def _package(module: str) -> str:
    """``buildyard.spec.load`` -> ``spec``; ``buildyard`` -> ``buildyard``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ROOT


def _type_checking_only(tree: ast.Module) -> set[int]:
    hidden: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                hidden.update(id(n) for n in ast.walk(child))
    return hidden


def _imported(node: ast.AST, module: str, is_package: bool) -> list[str]:
    """The buildyard modules one node imports (absolute names)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            target = ".".join([*base, *([node.module] if node.module else [])])
        else:
            target = node.module or ""
        if target == ROOT:  # ``from buildyard import errors``: a module, not a name of __init__
            return [f"{ROOT}.{a.name}" if (SRC / f"{a.name}.py").exists() or (SRC / a.name).is_dir() else ROOT
                    for a in node.names]  # fmt: skip
        return [target]
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute | ast.Name)
        and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id) == "import_module"
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ):
        return [node.args[0].value]
    return []


def package_imports() -> dict[tuple[str, str], list[str]]:
    """``(from package, to package)`` -> the ``module:line`` of each import."""
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in sorted(SRC.rglob("*.py")):
        module, is_package = _module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        hidden = _type_checking_only(tree)
        for node in ast.walk(tree):
            if id(node) in hidden:
                continue
            for target in _imported(node, module, is_package):
                if target != ROOT and not target.startswith(f"{ROOT}."):
                    continue
                source, dest = _package(module), _package(target)
                if source != dest:
                    edges[(source, dest)].append(f"{module}:{getattr(node, 'lineno', '?')}")
    return edges


EDGES = package_imports()


def _violations(allowed: Callable[[str, str], bool]) -> list[str]:
    return [
        f"{a} -> {b} ({', '.join(where[:3])})" for (a, b), where in sorted(EDGES.items()) if not allowed(a, b)
    ]


def test_the_scan_sees_imports_of_every_kind() -> None:
    """The checker is not vacuous: top-level, lazy (in a function) and relative imports are all found."""
    assert ("cli", "engine") in EDGES  # lazy imports inside command functions
    assert ("plan", "spec") in EDGES
    assert ("engine", "store") in EDGES
    assert any(where.startswith("buildyard.cli:") for where in EDGES[("cli", "daemon")])  # in main()
    tree = ast.parse("from ..spec import load\nfrom . import models\n")
    relative = [_imported(node, "buildyard.plan.build", False) for node in tree.body]
    assert relative == [["buildyard.spec"], ["buildyard.plan"]]


def test_every_package_has_a_layer() -> None:
    """A new package is placed in the picture deliberately (add it to README and to LAYERS here)."""
    packages = {_package(_module_name(p)[0]) for p in SRC.rglob("*.py")}
    assert packages - LAYERS.keys() == set()


def test_core_imports_nothing_above_it() -> None:
    """spec, plan, model, errors, ... are the bottom: they never reach for a service, the engine or a face."""
    assert _violations(lambda a, b: a not in CORE or b in CORE) == []


def test_services_import_only_the_core_and_the_documented_services() -> None:
    def allowed(a: str, b: str) -> bool:
        if a not in SERVICES:
            return True
        return b in CORE or b in SERVICE_USES.get(a, frozenset())

    assert _violations(allowed) == []


def test_the_engine_does_not_import_faces() -> None:
    assert _violations(lambda a, b: a not in ENGINE or LAYERS[b] < LAYERS["engine"]) == []


def test_faces_import_each_other_only_as_documented() -> None:
    assert (
        _violations(lambda a, b: a not in FACES or b not in FACES or b in FACE_USES.get(a, frozenset())) == []
    )


def test_nothing_in_the_package_imports_the_test_helpers() -> None:
    assert [edge for edge in EDGES if edge[1] == "testing"] == []


def test_no_cycle_between_packages() -> None:
    deps: dict[str, set[str]] = defaultdict(set)
    for a, b in EDGES:
        deps[a].add(b)
        deps.setdefault(b, set())
    assert find_cycle(deps) is None


@pytest.mark.parametrize(("source", "imported"), [("spec", "gates"), ("spec", "plan"), ("daemon", "cli")])
def test_the_cycles_of_issue_20_stay_broken(source: str, imported: str) -> None:
    assert (source, imported) not in EDGES, EDGES.get((source, imported))
