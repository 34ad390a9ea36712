"""YAML loading that keeps the position of every key and value.

``load_yaml`` returns the plain Python document plus a ``SourceMap`` from field paths (tuples of keys
and list indexes) to ``(line, col)`` positions, 1-based, so later validation errors can point at the
exact place in the file. Duplicate mapping keys, which PyYAML silently collapses, are reported.

The text is untrusted (a pull request writes it), so ``check_limits`` bounds it before anything is
composed: its size, its nesting depth, and the size of the document *after alias expansion* (nodes and
scalar text), computed from the event stream with each anchor's expanded size remembered, so an alias
bomb is refused in microseconds without ever being expanded. Every caller of PyYAML on a pipeline
file goes through it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from buildyard.errors import Diagnostic

try:
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - libyaml is present in the wheels we lock
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

_BOOL_TAG = "tag:yaml.org,2002:bool"


class _Loader(_BaseLoader):
    """The safe loader, except that a plain mapping *key* YAML 1.1 reads as a boolean keeps its text.

    GitHub reads ``on:`` as the key "on" (YAML 1.2); PyYAML (1.1) would make it ``True`` (and ``off``,
    ``yes``, ``no`` likewise), at any nesting level. Values keep YAML 1.1 booleans (``allow_failure: yes``).
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """Like the base constructor, with boolean-looking plain keys as strings."""
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag == _BOOL_TAG and not key_node.style:
                key_node.tag = "tag:yaml.org,2002:str"
        return super().construct_mapping(node, deep=deep)


Path = tuple[str | int, ...]

#: Largest pipeline file accepted (bytes of UTF-8 text).
MAX_FILE_BYTES = 4 * 1024 * 1024
#: Most nodes (scalars, lists, mappings) after alias expansion: ~10,000 ordinary jobs fit.
MAX_NODES = 250_000
#: Most characters of scalar text after alias expansion.
MAX_TEXT_CHARS = 4 * MAX_FILE_BYTES
#: Deepest nesting of lists and mappings.
MAX_DEPTH = 100

_START = (yaml.SequenceStartEvent, yaml.MappingStartEvent)
_END = (yaml.SequenceEndEvent, yaml.MappingEndEvent)


@dataclass(frozen=True, slots=True)
class Pos:
    """1-based line and column; ``file`` when it is not the source map's own file (an included file)."""

    line: int
    col: int
    file: str | None = None


@dataclass
class SourceMap:
    """Positions of keys and values of a document, by field path, in the file the user wrote.

    ``load_yaml`` fills it from the YAML it parses. An importer that converts another format into
    buildyard's document builds one by hand, mapping each *converted* path to where its value came
    from in the *original* file (``SourceMap(".gitlab-ci.yml", values={("jobs", "build", "timeout"):
    Pos(12, 5)})``), and passes it to :func:`buildyard.spec.load.from_raw`. A path without a
    position is located at its closest located ancestor.
    """

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
        return Diagnostic(pos.file or self.file, pos.line, pos.col, format_path(path), message, hint)


def format_path(path: Path) -> str:
    """``('jobs', 'build', 'steps', 0)`` → ``jobs.build.steps[0]``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _mark(node: yaml.Node) -> Pos:
    return Pos(node.start_mark.line + 1, node.start_mark.column + 1)


def check_limits(text: str, file: str, *, aliases_only: bool = False) -> Diagnostic | None:
    """The first limit ``text`` exceeds (size, nesting, expanded size), located; ``None`` when within.

    Walks the event stream once (no node is composed): every anchor remembers the node count and text
    size of what it names, and an alias adds that to the running totals, which is exactly what
    composing and expanding the document would produce. Syntax errors are left to the composer.
    ``aliases_only`` (for lockfiles, which may be large) drops the file size limit and counts against
    the node and text limits only what aliases add.
    """
    size = len(text) if len(text) * 4 <= MAX_FILE_BYTES else len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_FILE_BYTES and not aliases_only:
        return size_problem(file, size)
    anchors: dict[str, tuple[int, int]] = {}
    stack: list[tuple[str | None, int, int]] = []  # per open collection: anchor, nodes and text before it
    nodes = chars = 0  # after expansion
    alias_nodes = alias_chars = 0  # what aliases added
    loader = _Loader(text)
    try:
        while (event := loader.get_event()) is not None:
            if isinstance(event, yaml.ScalarEvent):
                nodes += 1
                chars += len(event.value)
                if event.anchor is not None:
                    anchors[event.anchor] = (1, len(event.value))
            elif isinstance(event, _START):
                if len(stack) >= MAX_DEPTH:
                    return _limit(
                        file,
                        event,
                        f"lists and mappings nested more than {MAX_DEPTH} deep (the limit)",
                        "flatten the structure",
                    )
                if event.anchor is not None:
                    anchors.pop(event.anchor, None)  # redefined: an alias inside refers to this one
                stack.append((event.anchor, nodes, chars))
                nodes += 1
            elif isinstance(event, _END):
                anchor, nodes_before, chars_before = stack.pop()
                if anchor is not None:
                    anchors[anchor] = (nodes - nodes_before, chars - chars_before)
            elif isinstance(event, yaml.AliasEvent):
                if event.anchor not in anchors:
                    if any(frame[0] == event.anchor for frame in stack):
                        return _limit(
                            file, event, f"alias '*{event.anchor}' refers to itself", "remove the recursion"
                        )
                    continue  # an undefined alias: the composer reports it
                more_nodes, more_chars = anchors[event.anchor]
                nodes += more_nodes
                chars += more_chars
                alias_nodes += more_nodes
                alias_chars += more_chars
            else:
                continue
            if (alias_nodes if aliases_only else nodes) > MAX_NODES:
                return _limit(
                    file,
                    event,
                    f"the document has more than {MAX_NODES:,} values after alias expansion (the limit)",
                    "write fewer values or use fewer aliases",
                )
            if (alias_chars if aliases_only else chars) > MAX_TEXT_CHARS:
                return _limit(
                    file,
                    event,
                    f"the document has more than {MAX_TEXT_CHARS // 2**20} MiB of text after alias "
                    "expansion (the limit)",
                    "use fewer aliases of long values",
                )
    except yaml.YAMLError:
        return None  # reported, located, by the composer
    finally:
        loader.dispose()
    return None


def size_problem(file: str, size: int) -> Diagnostic:
    """The located refusal of a file of ``size`` bytes (more than ``MAX_FILE_BYTES``)."""
    return Diagnostic(
        file,
        1,
        1,
        "",
        f"the file is {size / 2**20:.1f} MiB, more than the limit of {MAX_FILE_BYTES // 2**20} MiB",
        "keep large data in files the jobs read, not in the pipeline",
    )


def _limit(file: str, event: yaml.Event, message: str, hint: str) -> Diagnostic:
    mark = event.start_mark
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    return Diagnostic(file, line, col, "", message, hint)


def load_yaml(text: str, file: str) -> tuple[Any, SourceMap, list[Diagnostic]]:
    """Parse ``text`` within ``check_limits``; return ``(document, source map, problems)``.

    Syntax errors and exceeded limits are problems too (with no document).
    """
    smap = SourceMap(file)
    exceeded = check_limits(text, file)
    if exceeded is not None:
        return None, smap, [exceeded]
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            problems: list[Diagnostic] = []
            if node is not None:  # before construction, which rewrites mappings with merge keys
                _walk(node, (), smap, problems)
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        return None, smap, [syntax_problem(exc, text, file)]
    return data, smap, problems


def syntax_problem(exc: yaml.YAMLError, text: str, file: str) -> Diagnostic:
    """One located line for a PyYAML error (a tab, the usual culprit, is named as such)."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or getattr(exc, "context", None)
    hint = "fix the YAML syntax"
    if isinstance(exc, yaml.reader.ReaderError):  # a forbidden character: position, not line
        line, col = _line_col(text, exc.position)
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        problem = f"character U+{code:04X} is not allowed in YAML"
        hint = "write it as an escape inside double quotes, e.g. \\e for ESC"
    elif mark is not None:
        line, col = mark.line + 1, mark.column + 1
    else:
        line, col = 1, 1
    problem = problem or "invalid YAML"
    if mark is not None and 0 <= mark.index < len(text) and text[mark.index] == "\t":
        problem = f"a tab character ({problem})"
        hint = "YAML indents with spaces: replace the tab by spaces"
    return Diagnostic(file, line, col, "", f"YAML syntax error: {problem}", hint)


def _line_col(text: str, index: int) -> tuple[int, int]:
    before = text[:index]
    return before.count("\n") + 1, index - (before.rfind("\n") + 1) + 1


def node_positions(node: yaml.Node, file: str) -> tuple[SourceMap, list[Diagnostic]]:
    """Positions of every key and value under a composed ``node`` (duplicate keys as problems).

    For importers that compose YAML with their own loader (GitLab's ``!reference`` tag) but want the
    same source map ``load_yaml`` builds.
    """
    smap = SourceMap(file)
    problems: list[Diagnostic] = []
    _walk(node, (), smap, problems)
    return smap, problems


def _walk(node: yaml.Node, path: Path, smap: SourceMap, problems: list[Diagnostic]) -> None:
    smap.values.setdefault(path, _mark(node))
    if isinstance(node, yaml.ScalarNode):
        smap.scalars[path] = node.value
    elif isinstance(node, yaml.MappingNode):
        seen: dict[Any, Pos] = {}
        merged: list[yaml.Node] = []
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            key = key_node.value
            if key == "<<":  # merge key: walked below, for the keys not written here
                merged += value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
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
        for source in merged:  # the first merged mapping wins, like the constructor's merge
            if not isinstance(source, yaml.MappingNode):
                continue
            for key_node, value_node in source.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else "<<"
                if key != "<<" and key not in seen:
                    seen[key] = smap.keys[(*path, key)] = _mark(key_node)
                    _walk(value_node, (*path, key), smap, [])
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), smap, problems)
