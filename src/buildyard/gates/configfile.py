"""Reading the ``gates:`` list straight from a ``buildyard.yml`` (for ``buildyard gates check``).

Only the top-level ``gates:`` key is read, with PyYAML ``safe_load``; the line of each gate is taken
from the YAML node tree so errors point at it. (Once the pipeline spec loader exists, the engine uses
its ``Pipeline.gates`` instead.)
"""

from __future__ import annotations

from pathlib import Path

import yaml

from buildyard.errors import NotFoundError
from buildyard.gates.config import AnyGate, parse_gates
from buildyard.gates.errors import GateConfigError
from buildyard.spec.load import read_text
from buildyard.spec.yamlpos import check_limits


def load_gates_file(path: Path) -> list[AnyGate]:
    """The validated pipeline-level gates of ``path`` (empty when there is no ``gates:`` key)."""
    if not path.exists():
        raise NotFoundError(f"{path}: no such file (pass --config to name the pipeline file)")
    text = read_text(path)  # bounded, like every read of a pipeline file
    exceeded = check_limits(text, str(path))
    if exceeded is not None:
        raise GateConfigError(str(exceeded))
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise GateConfigError(f"{where}: invalid YAML: {problem}") from None
    if data is None:
        return []
    if not isinstance(data, dict):
        raise GateConfigError(f"{path}: expected a mapping at the top level")
    gates = data.get("gates")
    if gates is not None and not isinstance(gates, list):
        raise GateConfigError(f"{path}: 'gates' must be a list of gates (e.g. '- tests: {{junit: ...}}')")
    return parse_gates(gates, source=str(path), lines=_gate_lines(node))


def _gate_lines(root: yaml.Node | None) -> dict[int, int]:
    """1-based line of each item of the top-level ``gates`` sequence."""
    if not isinstance(root, yaml.MappingNode):
        return {}
    for key, value in root.value:
        if isinstance(key, yaml.ScalarNode) and key.value == "gates" and isinstance(value, yaml.SequenceNode):
            return {i: item.start_mark.line + 1 for i, item in enumerate(value.value)}
    return {}
