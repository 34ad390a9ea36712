"""An imported pipeline written as ``buildyard.yml`` text (block scalars for scripts, notes as comments)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml

from buildyard.termtext import safe_text

if TYPE_CHECKING:
    from buildyard.importers import Imported


class _Dumper(yaml.SafeDumper):
    """Multi-line strings as ``|`` blocks, so scripts read as they were written."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(imported: Imported, *, source: str, trigger: str) -> str:
    """The document as YAML, headed by where it came from and what was not carried."""
    from buildyard.importers import Format  # noqa: PLC0415 - a cycle at import time otherwise

    github = imported.format is Format.GITHUB
    decided = "job if: conditions, matrices" if github else "rules/only/except/workflow"
    lines = [
        f"# Imported from {source} by 'buildyard import' ({imported.format} format).",
        f"# {decided} were decided for: {trigger or 'the current checkout'};",
        "# import again for another branch, tag or event.",
    ]
    if github:
        lines.append(
            "# Each job runs its GitHub steps with buildyard.importers.github_steps (GITHUB_STEPS_PYTHON)."
        )
    if imported.notes:
        lines.append(f"# Not carried ({'GitHub' if github else 'GitLab'} would honour these):")
        lines += [f"#   {safe_text(str(note))}" for note in imported.notes]
    body: Any = yaml.dump(imported.document, Dumper=_Dumper, sort_keys=False, width=120, allow_unicode=True)
    return "\n".join(lines) + "\n" + str(body)
