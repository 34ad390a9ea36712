"""``buildyard design``: a pipeline and its design document from an architect's ``build_requirements``.

:func:`parse_requirements` validates the document (located errors, all at once), :func:`design`
returns the ``buildyard.yml`` document, its DAG and the Markdown design document, and :func:`to_yaml`
writes the pipeline as text. Pure: the caller reads and writes the files.
"""

from __future__ import annotations

from typing import Any

import yaml

from buildyard.design.pipeline import Design, design, gitignore
from buildyard.design.requirements import Requirements, parse_requirements

__all__ = ["Design", "Requirements", "design", "gitignore", "parse_requirements", "to_yaml"]


class _Dumper(yaml.SafeDumper):
    """Lists of scripts and mappings in block style; keys in the order written."""


def to_yaml(document: dict[str, Any], *, source: str) -> str:
    """The designed pipeline as ``buildyard.yml`` text, headed by where it came from."""
    body: Any = yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=110, allow_unicode=True)
    return f"# Designed by 'buildyard design {source}'; the design document explains each choice.\n{body}"
