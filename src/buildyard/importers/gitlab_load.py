"""Reading a ``.gitlab-ci.yml`` the way GitLab composes it, before any conversion.

Owns: YAML with positions and the ``!reference`` tag, ``include: local`` (files and globs, nested),
``extends`` (multi-level, GitLab's deep merge: mappings merged, everything else replaced), and
``!reference`` resolution. The result is the merged GitLab document plus, for every top-level key,
the chain of definitions it was built from, so a converted field points at the line that wrote it,
in the file that wrote it. Every file is bounded by :func:`buildyard.spec.yamlpos.check_limits`.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from buildyard.errors import Diagnostic, SpecError
from buildyard.spec.yamlpos import (
    MAX_FILE_BYTES,
    Pos,
    SourceMap,
    check_limits,
    node_positions,
    size_problem,
    syntax_problem,
)
from buildyard.spec.yamlpos import Path as FieldPath

try:
    from yaml import CSafeLoader as _Base
except ImportError:  # pragma: no cover - libyaml is present in the wheels we lock
    from yaml import SafeLoader as _Base  # type: ignore[assignment]

#: GitLab's own limits: included files per pipeline, ``extends`` depth, ``!reference`` nesting.
MAX_INCLUDES = 150
MAX_EXTENDS_DEPTH = 11
MAX_REFERENCE_DEPTH = 10

#: Top-level keys that are not jobs.
GLOBAL_KEYS = frozenset(
    {
        "default",
        "include",
        "stages",
        "variables",
        "workflow",
        "image",
        "services",
        "cache",
        "before_script",
        "after_script",
        "spec",
    }
)


@dataclass(frozen=True, slots=True)
class Reference:
    """A ``!reference [job, key, ...]`` tag, resolved once the whole document is merged."""

    path: tuple[str, ...]
    pos: Pos


class _Loader(_Base):
    """The safe loader plus GitLab's ``!reference`` tag."""


def _reference(loader: _Loader, node: yaml.Node) -> Reference:
    mark = node.start_mark
    pos = Pos(mark.line + 1, mark.column + 1)
    if not isinstance(node, yaml.SequenceNode) or not all(isinstance(n, yaml.ScalarNode) for n in node.value):
        raise yaml.constructor.ConstructorError(
            None, None, "!reference takes a list of keys, e.g. !reference [.setup, script]", node.start_mark
        )
    return Reference(tuple(str(n.value) for n in node.value), pos)


_Loader.add_constructor("!reference", _reference)


@dataclass
class Source:
    """One parsed file: its name (relative to the project), document and positions."""

    name: str
    data: dict[str, Any]
    smap: SourceMap


@dataclass
class GitLabDocument:
    """The merged document: top-level key -> value, and where each came from."""

    data: dict[str, Any]
    main: SourceMap
    #: top-level key -> the source maps that define it, the key's own first, then its ``extends``.
    chains: dict[str, list[SourceMap]] = field(default_factory=dict)

    def pos(self, key: str, sub: FieldPath = ()) -> Pos:
        """Where ``key``'s field ``sub`` was written (its closest located ancestor otherwise)."""
        chain = self.chains.get(key, [self.main])
        for smap in chain:
            path = (key, *sub)
            if path in smap.values:
                return smap.values[path]
        for end in range(len(sub) - 1, -1, -1):
            for smap in chain:
                path = (key, *sub[:end])
                if path in smap.values:
                    return smap.values[path]
        return Pos(1, 1)

    def key_pos(self, key: str, sub: FieldPath = ()) -> Pos:
        """Where the key introducing ``sub`` of ``key`` was written."""
        for smap in self.chains.get(key, [self.main]):
            if (key, *sub) in smap.keys:
                return smap.keys[(key, *sub)]
        return self.pos(key, sub)

    def diag(
        self, key: str, sub: FieldPath, message: str, hint: str = "", *, at_key: bool = False
    ) -> Diagnostic:
        """A located problem of ``key``'s field ``sub`` (at its value, or its key with ``at_key``)."""
        pos = self.key_pos(key, sub) if at_key else self.pos(key, sub)
        shown = ".".join(str(p) for p in (key, *sub))
        return Diagnostic(pos.file or self.main.file, pos.line, pos.col, shown, message, hint)


def parse(text: str, name: str) -> Source:
    """Parse one GitLab YAML file within the limits; raise a located ``SpecError``."""
    exceeded = check_limits(text, name)
    if exceeded is not None:
        raise SpecError([exceeded])
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise SpecError([Diagnostic(name, 1, 1, "", "the file is empty", "add jobs with a 'script'")])
        smap, problems = node_positions(node, name)
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise SpecError([syntax_problem(exc, text, name)]) from None
    finally:
        loader.dispose()
    if problems:
        raise SpecError(problems)
    if not isinstance(data, dict):
        raise SpecError(
            [Diagnostic(name, 1, 1, "", "a GitLab CI file must be a mapping of jobs and keywords")]
        )
    return Source(name, {str(k): v for k, v in data.items()}, smap)


def _relocated(smap: SourceMap, file: str) -> SourceMap:
    """The map with every position naming ``file`` (an included file, not the main one)."""
    out = SourceMap(smap.file)
    out.keys = {p: Pos(v.line, v.col, file) for p, v in smap.keys.items()}
    out.values = {p: Pos(v.line, v.col, file) for p, v in smap.values.items()}
    out.scalars = dict(smap.scalars)
    return out


def read(path: Path, project: Path) -> GitLabDocument:
    """Read ``path`` and everything it includes; merge, resolve ``extends`` and ``!reference``."""
    main = parse(_read_text(path, str(path.name)), _display(path, project))
    includes = _Includes(project, main)
    includes.collect(main, depth=0)
    data: dict[str, Any] = {}
    chains: dict[str, list[SourceMap]] = {}
    # Included files first, in order; the including file's keys win (mappings merged deeply).
    for source in [*includes.sources, main]:
        for key, value in source.data.items():
            if key == "include":
                continue
            data[key] = deep_merge(data[key], value) if key in data else value
            chains[key] = [source.smap, *chains.get(key, [])]
    doc = GitLabDocument(data, main.smap, chains)
    _resolve_extends(doc)
    _resolve_references(doc)
    return doc


def _display(path: Path, project: Path) -> str:
    try:
        return str(path.resolve().relative_to(project.resolve()))
    except ValueError:
        return str(path)


def _read_text(path: Path, name: str) -> str:
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise SpecError([Diagnostic(name, 1, 1, "", f"cannot read the file ({exc.strerror})")]) from None
    if len(raw) > MAX_FILE_BYTES:
        raise SpecError([size_problem(name, len(raw))])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SpecError([Diagnostic(name, 1, 1, "", "the file is not UTF-8 text")]) from None


class _Includes:
    """``include: local`` files (and globs), depth first, each file once."""

    def __init__(self, project: Path, main: Source) -> None:
        self.project = project.resolve()
        self.sources: list[Source] = []
        self.seen: set[str] = {main.name}

    def collect(self, source: Source, depth: int) -> None:
        """Parse every file ``source`` includes (depth first), once each."""
        raw = source.data.get("include")
        if raw is None:
            return
        items = raw if isinstance(raw, list) else [raw]
        for i, item in enumerate(items):
            sub: FieldPath = ("include", i) if isinstance(raw, list) else ("include",)
            pos = source.smap.value_pos(sub)
            where = Diagnostic(source.name, pos.line, pos.col, "include", "")
            local = item if isinstance(item, str) else item.get("local") if isinstance(item, dict) else None
            if isinstance(item, dict) and isinstance(local, str) and set(item) != {"local"}:
                extra = sorted(set(item) - {"local"})[0]
                raise SpecError(
                    [_with(where, f"include: {extra} is not supported", "include the file plainly")]
                )
            if not isinstance(local, str):
                kind = next(iter(item), "?") if isinstance(item, dict) else type(item).__name__
                raise SpecError(
                    [
                        _with(
                            where,
                            f"include: {kind} is not supported (only local files of this repository)",
                            "copy the file into the repository and include it with 'local:'",
                        )
                    ]
                )
            if local.startswith(("http://", "https://")):
                raise SpecError(
                    [
                        _with(
                            where,
                            "include of a remote URL is not supported",
                            "vendor the file; include it locally",
                        )
                    ]
                )
            for target in self._expand(local, where):
                rel = str(target.relative_to(self.project))
                if rel in self.seen:
                    continue
                self.seen.add(rel)
                if len(self.seen) > MAX_INCLUDES:
                    raise SpecError(
                        [_with(where, f"more than {MAX_INCLUDES} included files (GitLab's limit)")]
                    )
                included = parse(_read_text(target, rel), rel)
                included.smap = _relocated(included.smap, rel)
                self.collect(included, depth + 1)
                self.sources.append(included)

    def _expand(self, pattern: str, where: Diagnostic) -> list[Path]:
        rel = pattern.lstrip("/")
        if any(c in rel for c in "*?[{"):
            rx = glob_regex(rel)
            found = sorted(
                p
                for p in self.project.rglob("*")
                if p.is_file() and ".git" not in p.parts and rx.fullmatch(str(p.relative_to(self.project)))
            )
            if not found:
                raise SpecError([_with(where, f"include '{pattern}' matches no file")])
            return found
        target = (self.project / rel).resolve()
        if not target.is_relative_to(self.project):
            raise SpecError([_with(where, f"include '{pattern}' is outside the repository")])
        if not target.is_file():
            raise SpecError(
                [
                    _with(
                        where,
                        f"included file '{pattern}' does not exist",
                        "paths are from the repository root",
                    )
                ]
            )
        return [target]


def _with(base: Diagnostic, message: str, hint: str = "") -> Diagnostic:
    return Diagnostic(base.file, base.line, base.col, base.path, message, hint)


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A GitLab (Ruby ``File.fnmatch`` with PATHNAME|EXTGLOB) glob as a regex: ``*`` stays in one
    directory, ``**/`` spans any, ``{a,b}`` alternates."""
    out = ""
    i = 0
    depth = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
            continue
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "{":
            out += "(?:"
            depth += 1
        elif c == "}" and depth:
            out += ")"
            depth -= 1
        elif c == "," and depth:
            out += "|"
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out += re.escape(c)
            else:
                out += "[" + pattern[i + 1 : end].replace("\\", "\\\\") + "]"
                i = end
        else:
            out += re.escape(c)
        i += 1
    return re.compile(out + ")" * depth)


def deep_merge(base: Any, over: Any) -> Any:
    """GitLab's merge: mappings merged key by key (recursively); any other value replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            out[key] = deep_merge(out[key], value) if key in out else value
        return out
    return over


def _resolve_extends(doc: GitLabDocument) -> None:
    resolved: dict[str, Any] = {}

    def resolve(name: str, trail: list[str]) -> Any:
        if name in resolved:
            return resolved[name]
        value = doc.data[name]
        if not isinstance(value, dict) or "extends" not in value:
            resolved[name] = value
            return value
        parents = value["extends"]
        parents = [parents] if isinstance(parents, str) else parents
        sub: FieldPath = ("extends",)
        if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
            raise SpecError([doc.diag(name, sub, "extends takes a job name or a list of them")])
        if len(trail) >= MAX_EXTENDS_DEPTH:
            raise SpecError(
                [
                    doc.diag(
                        name, sub, f"extends nests deeper than {MAX_EXTENDS_DEPTH} levels (GitLab's limit)"
                    )
                ]
            )
        merged: dict[str, Any] = {}
        chain = list(doc.chains.get(name, [doc.main]))
        for parent in parents:
            if parent == name or parent in trail:
                cycle = " -> ".join([*trail, name, parent])
                raise SpecError([doc.diag(name, sub, f"extends forms a cycle: {cycle}")])
            if parent not in doc.data:
                import difflib  # noqa: PLC0415 - error path only

                close = difflib.get_close_matches(parent, list(doc.data), n=1)
                hint = (
                    f"did you mean '{close[0]}'?"
                    if close
                    else "extends names a job or hidden .job of this pipeline"
                )
                raise SpecError([doc.diag(name, sub, f"unknown job '{parent}' in extends", hint)])
            base = resolve(parent, [*trail, name])
            if not isinstance(base, dict):
                raise SpecError([doc.diag(name, sub, f"'{parent}' is not a job: it cannot be extended")])
            merged = deep_merge(merged, copy.deepcopy(base))
            # The parent's fields are located in its own definition, under the child's name.
            for smap in doc.chains.get(parent, []):
                chain.append(_renamed(smap, parent, name))
        own = {k: v for k, v in value.items() if k != "extends"}
        result = deep_merge(merged, own)
        doc.chains[name] = chain
        resolved[name] = result
        return result

    for key in list(doc.data):
        if key not in GLOBAL_KEYS:
            doc.data[key] = resolve(key, [])


def _renamed(smap: SourceMap, old: str, new: str) -> SourceMap:
    """``smap``'s positions under ``old`` reachable as paths under ``new``."""
    out = SourceMap(smap.file)
    out.keys = {(new, *p[1:]): v for p, v in smap.keys.items() if p and p[0] == old}
    out.values = {(new, *p[1:]): v for p, v in smap.values.items() if p and p[0] == old}
    return out


def _resolve_references(doc: GitLabDocument) -> None:
    def lookup(ref: Reference, key: str, depth: int) -> Any:
        if depth > MAX_REFERENCE_DEPTH:
            raise SpecError([doc.diag(key, (), f"!reference nests deeper than {MAX_REFERENCE_DEPTH} levels")])
        value: Any = doc.data
        for i, part in enumerate(ref.path):
            if not isinstance(value, dict) or part not in value:
                shown = ", ".join(ref.path[: i + 1])
                raise SpecError(
                    [
                        Diagnostic(
                            ref.pos.file or doc.main.file,
                            ref.pos.line,
                            ref.pos.col,
                            key,
                            f"!reference [{shown}] names nothing in this pipeline",
                        )
                    ]
                )
            value = value[part]
        return walk(copy.deepcopy(value), key, depth + 1)

    def walk(value: Any, key: str, depth: int) -> Any:
        if isinstance(value, Reference):
            return lookup(value, key, depth)
        if isinstance(value, dict):
            return {k: walk(v, key, depth) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, key, depth) for v in value]
        return value

    for key in list(doc.data):
        doc.data[key] = walk(doc.data[key], key, 0)
