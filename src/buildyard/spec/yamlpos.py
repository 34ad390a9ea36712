"""YAML loading that keeps the position of every key and value.

``load_yaml`` returns the plain Python document plus a ``SourceMap`` from field paths (tuples of keys
and list indexes) to ``(line, col)`` positions, 1-based, so later validation errors can point at the
exact place in the file. Duplicate mapping keys, which PyYAML silently collapses, are reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

try:
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - libyaml is present in the wheels we lock
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

from buildyard.errors import Diagnostic

Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Pos:
    """1-based line and column."""

    line: int
    col: int


@dataclass
class SourceMap:
    """Positions of keys and values in one YAML file."""

    file: str
    keys: dict[Path, Pos] = field(default_factory=dict)
    values: dict[Path, Pos] = field(default_factory=dict)
    #: Source text of plain scalars, so ``python: 3.10`` stays "3.10" where a string is expected.
    scalars: dict[Path, str] = field(default_factory=dict)

    def value_pos(self, path: Path) -> Pos:
        """Position of the value at ``path``, or of its closest located ancestor."""
        return self._lookup(self.values, path)

    def key_pos(self, path: Path) -> Pos:
        """Position of the key that introduces ``path`` (falls back to the value position)."""
        if path in self.keys:
            return self.keys[path]
        return self.value_pos(path)

    def _lookup(self, table: dict[Path, Pos], path: Path) -> Pos:
        for end in range(len(path), -1, -1):
            pos = table.get(path[:end])
            if pos is not None:
                return pos
        return Pos(1, 1)

    def diag(self, path: Path, message: str, hint: str = "", *, at_key: bool = False) -> Diagnostic:
        """A diagnostic located at ``path``."""
        pos = self.key_pos(path) if at_key else self.value_pos(path)
        return Diagnostic(self.file, pos.line, pos.col, format_path(path), message, hint)


def format_path(path: Path) -> str:
    """``('jobs', 'build', 'steps', 0)`` → ``jobs.build.steps[0]``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _mark(node: yaml.Node) -> Pos:
    return Pos(node.start_mark.line + 1, node.start_mark.column + 1)


def load_yaml(text: str, file: str) -> tuple[Any, SourceMap, list[Diagnostic]]:
    """Parse ``text``; return ``(document, source map, problems)``. Syntax errors are problems too."""
    smap = SourceMap(file)
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        return (
            None,
            smap,
            [Diagnostic(file, line, col, "", f"YAML syntax error: {problem}", "fix the YAML syntax")],
        )
    except yaml.YAMLError as exc:
        return None, smap, [Diagnostic(file, 1, 1, "", f"YAML error: {exc}")]
    problems: list[Diagnostic] = []
    if node is not None:
        _walk(node, (), smap, problems)
    return data, smap, problems


def _walk(node: yaml.Node, path: Path, smap: SourceMap, problems: list[Diagnostic]) -> None:
    smap.values.setdefault(path, _mark(node))
    if isinstance(node, yaml.ScalarNode):
        smap.scalars[path] = node.value
    elif isinstance(node, yaml.MappingNode):
        seen: dict[Any, Pos] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            key = key_node.value
            if key == "<<":  # merge key: positions of merged values stay where they were written
                continue
            pos = _mark(key_node)
            if key in seen:
                first = seen[key]
                problems.append(
                    Diagnostic(
                        smap.file,
                        pos.line,
                        pos.col,
                        format_path((*path, key)),
                        f"duplicate key '{key}' (first defined at line {first.line})",
                        "remove one of them",
                    )
                )
            seen[key] = pos
            child = (*path, key)
            smap.keys[child] = pos
            _walk(value_node, child, smap, problems)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), smap, problems)
