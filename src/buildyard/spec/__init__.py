"""The pipeline specification: loading ``buildyard.yml`` with positions, models, expressions, schema.

The public entry points, imported lazily (``import buildyard.spec`` stays cheap):

- :func:`load` / :func:`loads` — a pipeline file (or its text) -> a frozen ``Pipeline``;
- :func:`from_raw` — a document converted by an importer (GitLab CI, GitHub Actions) plus a
  :class:`SourceMap` into the original file -> a ``Pipeline``, errors located in the original file;
- :class:`SourceMap`, :class:`Pos` — positions of a document's fields.

Every problem is raised at once as a :class:`buildyard.errors.SpecError`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from buildyard.spec.load import from_raw, load, loads
    from buildyard.spec.yamlpos import Pos, SourceMap

_EXPORTS = {
    "from_raw": "buildyard.spec.load",
    "load": "buildyard.spec.load",
    "loads": "buildyard.spec.load",
    "Pos": "buildyard.spec.yamlpos",
    "SourceMap": "buildyard.spec.yamlpos",
}

__all__ = ["Pos", "SourceMap", "from_raw", "load", "loads"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'buildyard.spec' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
