"""One exception tree: every exception class buildyard defines descends from ``BuildyardError``,
and no two share a name (a ``PolicyError`` must say whose policy)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import buildyard
from buildyard.errors import BuildyardError


def _exception_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(buildyard.__path__, "buildyard."):
        if info.name.endswith("__main__") or ".migrations" in info.name:
            continue  # scripts run by their own tools (alembic), not importable alone
        module = importlib.import_module(info.name)
        for _name, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__ == info.name:
                found[f"{info.name}.{obj.__qualname__}"] = obj
    return found


def test_every_exception_is_in_the_one_tree_and_names_are_unique() -> None:
    classes = _exception_classes()
    assert len(classes) > 20
    outside = sorted(name for name, cls in classes.items() if not issubclass(cls, BuildyardError))
    assert outside == []
    names = [cls.__name__ for cls in classes.values()]
    assert sorted({n for n in names if names.count(n) > 1}) == []
