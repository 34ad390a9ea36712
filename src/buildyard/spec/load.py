"""``spec.load``: read ``buildyard.yml`` once, validate it fully, return a frozen ``Pipeline``.

Every problem is collected and reported at once as a ``SpecError`` whose diagnostics carry
``file:line:col``, the field path and a hint. After this function, nothing reads the file again.
"""

from __future__ import annotations

import difflib
import enum
import functools
import os
import re
import types
import typing
from pathlib import Path
from typing import Any

import msgspec

from buildyard.errors import Diagnostic, NotFoundError, SpecError
from buildyard.graph import find_cycle
from buildyard.spec import expr
from buildyard.spec.durations import parse_duration
from buildyard.spec.models import (
    ENVIRONMENT_KEYS,
    GATES_NODE,
    INTERNAL_FIELDS,
    MAX_MATRIX,
    Job,
    Matrix,
    Pipeline,
    Spec,
    field_names,
    normalize_raw,
)
from buildyard.spec.yamlpos import MAX_FILE_BYTES, SourceMap, load_yaml, size_problem
from buildyard.spec.yamlpos import Path as FieldPath

DEFAULT_FILE = "buildyard.yml"
GITLAB_DEFAULT_STAGES = ("build", "test", "deploy")


def find_file(directory: Path, file: Path | None = None) -> Path:
    """The pipeline file to use: ``file`` if given, else ``buildyard.yml``/``.yaml`` in ``directory``."""
    if file is not None:
        path = file if file.is_absolute() else directory / file
        if not path.is_file():
            raise NotFoundError(f"{path}: pipeline file not found (check the path given with --file)")
        return path
    for name in (DEFAULT_FILE, "buildyard.yaml"):
        if (directory / name).is_file():
            return directory / name
    if (directory / ".gitlab-ci.yml").is_file():
        raise NotFoundError(
            f"{directory / DEFAULT_FILE}: no pipeline file here "
            "(run the GitLab file with -f .gitlab-ci.yml, or convert it: buildyard import .gitlab-ci.yml)"
        )
    raise NotFoundError(
        f"{directory / DEFAULT_FILE}: no pipeline file here (create buildyard.yml, or use -C DIR or --file)"
    )


def load(path: Path) -> Pipeline:
    """Load and validate the pipeline at ``path``; raise ``SpecError`` listing every problem."""
    return loads(read_text(path), str(path))


def read_text(path: Path) -> str:
    """The text of a pipeline file, never reading more than ``MAX_FILE_BYTES`` (+1) of it."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
            if len(data) > MAX_FILE_BYTES:
                raise SpecError([size_problem(str(path), max(os.fstat(f.fileno()).st_size, len(data)))])
        return data.decode("utf-8")
    except FileNotFoundError:
        raise NotFoundError(f"{path}: pipeline file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise NotFoundError(f"{path}: cannot read pipeline file ({exc})") from None


def loads(text: str, file: str = DEFAULT_FILE) -> Pipeline:
    """Validate pipeline text (``file`` names it in diagnostics)."""
    data, smap, problems = load_yaml(text, file)
    if problems and data is None:
        raise SpecError(problems)
    return _validate(data, smap, problems)


def from_raw(data: Any, source_map: SourceMap) -> Pipeline:
    """Validate a raw pipeline document built by an importer; errors point at the original file.

    ``data`` is buildyard's document as plain values (what ``buildyard.yml`` would parse to: dicts,
    lists, strings, numbers, booleans, None), typically converted from ``.gitlab-ci.yml`` or a GitHub
    Actions workflow. ``source_map`` maps paths of ``data`` (``("jobs", "build", "timeout")``) to
    positions in the file the user wrote; its ``file`` names that file. Every problem is reported at
    once as a ``SpecError`` located there (``.gitlab-ci.yml:12:5: jobs.build.timeout: ...``), exactly
    as :func:`loads` reports its own file's. The returned pipeline's ``file`` is ``source_map.file``.
    The importer bounds what it parses (:func:`buildyard.spec.yamlpos.load_yaml` does) before converting.
    """
    return _validate(data, source_map, [])


def _validate(data: Any, smap: SourceMap, problems: list[Diagnostic]) -> Pipeline:
    """The raw document -> a frozen ``Pipeline``, or every problem (plus ``problems``) as a ``SpecError``."""
    file = smap.file
    if not isinstance(data, dict):
        raise SpecError([*problems, smap.diag((), "the pipeline file must be a mapping with a 'jobs' key")])
    if data.get("jobs") == {}:
        problems.append(smap.diag(("jobs",), "a pipeline needs at least one job"))
    converter = _Converter(smap)
    pipeline = converter.struct(Pipeline, data, ())
    problems += converter.problems
    if pipeline is None:
        raise SpecError(problems)
    problems += _semantic_checks(pipeline, smap, names=_raw_job_names(data))
    if problems:
        raise SpecError(problems)
    positions = {
        name: (pos.line, pos.col) for name in pipeline.jobs for pos in [smap.key_pos(("jobs", name))]
    }
    loaded: Pipeline = msgspec.structs.replace(pipeline, file=file, positions=positions)
    return loaded


# --- raw YAML → structs, every problem located ----------------------------------------------------

_FAIL = object()


class _Converter:
    """Converts raw YAML values into spec structs field by field, collecting every problem."""

    def __init__(self, smap: SourceMap) -> None:
        self.smap = smap
        self.problems: list[Diagnostic] = []

    def fail(self, path: FieldPath, message: str, hint: str = "", *, at_key: bool = False) -> object:
        self.problems.append(self.smap.diag(path, message, hint, at_key=at_key))
        return _FAIL

    def struct(self, cls: type[Spec], raw: Any, path: FieldPath) -> Any:
        """Best effort: invalid fields are reported and left at their defaults."""
        raw = normalize_raw(cls, raw)
        if not isinstance(raw, dict):
            self.fail(path, f"expected a mapping, got {_kind(raw)}")
            return None
        fields = _fields(cls)
        allowed = field_names(cls)
        values: dict[str, Any] = {}
        complete = True
        for key, given in raw.items():
            name = str(key)
            value = given
            # Matrix axes are written at the matrix level: report their paths without "axes".
            sub = path if (cls is Matrix and name == "axes") else (*path, name)
            if name not in fields or name in INTERNAL_FIELDS:
                shown = ["include", "exclude", "<axis>"] if cls is Matrix else allowed
                close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
                hint = f"did you mean '{close[0]}'?" if close else f"allowed: {', '.join(shown)}"
                if cls is Job and name in ENVIRONMENT_KEYS:
                    hint = f"'{name}' belongs to the deployment: move it under 'environment:'"
                self.fail(sub, f"unknown key '{name}'", hint, at_key=True)
                complete = False
                continue
            f = fields[name]
            if name == "gates":
                values[f.name] = self.gates(value, sub)
                continue
            if name in cls.durations and value is not None:
                try:
                    value = parse_duration(value)
                except ValueError as exc:
                    self.fail(sub, str(exc))
                    complete = False
                    continue
            converted = self.value(f.type, value, sub)
            if converted is _FAIL:
                complete = False
                continue
            values[f.name] = converted
        for name, f in fields.items():
            if f.required and name not in raw:
                self.fail((*path, name), f"missing required key '{name}'", at_key=True)
                return None
        try:
            obj = cls(**values)
        except (TypeError, ValueError) as exc:
            self.fail(path, str(exc))
            return None
        for rel, message in obj.check():
            self.fail((*path, *rel), message, at_key=not rel)
            complete = False
        return obj if complete or cls is Pipeline else None

    def gates(self, raw: Any, path: FieldPath) -> list[Any]:
        """Gate definitions, validated by the gates service (imported only when a file has gates)."""
        from buildyard.spec.gates import validate_gates  # noqa: PLC0415 - keeps validate fast without gates

        gates, problems = validate_gates(raw)
        for rel, message in problems:
            self.fail((*path, *rel), message)
        return gates

    def value(self, tp: Any, raw: Any, path: FieldPath) -> Any:
        """Convert one field value of type ``tp``."""
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin in (typing.Union, types.UnionType) and type(None) in args:
            if raw is None:
                return None
            rest = [a for a in args if a is not type(None)]
            tp = rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]  # noqa: UP007 - runtime union
            origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin in (typing.Union, types.UnionType) and any(_has_spec(a) for a in args):
            tp = _union_branch(args, raw)
            origin, args = typing.get_origin(tp), typing.get_args(tp)
        if isinstance(tp, type) and issubclass(tp, Spec):
            obj = self.struct(tp, raw, path)
            return _FAIL if obj is None else obj
        if origin is list and args and isinstance(args[0], type) and issubclass(args[0], Spec):
            if not isinstance(raw, list):
                return self.fail(path, f"expected a list, got {_kind(raw)}")
            items = [self.value(args[0], item, (*path, i)) for i, item in enumerate(raw)]
            return _FAIL if any(i is _FAIL for i in items) else items
        if origin is dict and args and isinstance(args[1], type) and issubclass(args[1], Spec):
            if not isinstance(raw, dict):
                return self.fail(path, f"expected a mapping, got {_kind(raw)}")
            out = {}
            for k, v in raw.items():
                item = self.value(args[1], v, (*path, str(k)))
                if item is not _FAIL and item is not None:
                    out[str(k)] = item
            failed = len(out) != len(raw)
            return out if not failed or path == ("jobs",) else _FAIL
        raw = self.stringify(tp, raw, path)
        try:
            return msgspec.convert(raw, tp, strict=True)
        except msgspec.ValidationError as exc:
            message, sub = _split_msgspec(str(exc))
            if "..." in sub and isinstance(raw, dict | list) and origin in (dict, list):
                # msgspec names no key inside a mapping ("$[...]"): find the entry, located by its key
                entries = raw.items() if isinstance(raw, dict) else enumerate(raw)
                for key, item in entries:
                    where = str(key) if isinstance(raw, dict) else key
                    if self.value(args[-1], item, (*path, where)) is _FAIL:
                        return _FAIL
            hint = ""
            if isinstance(tp, type) and issubclass(tp, enum.Enum):
                hint = "one of: " + ", ".join(repr(m.value) for m in tp)
            return self.fail((*path, *sub), message, hint)

    def stringify(self, tp: Any, raw: Any, path: FieldPath) -> Any:
        """Scalars where strings are expected become their source text (``3.10`` stays "3.10")."""
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if tp is str:
            return self._scalar(raw, path)
        if origin is dict and args and args[1] is str and isinstance(raw, dict):
            return {k: self._scalar(v, (*path, k)) for k, v in raw.items()}
        if origin is list and args and isinstance(raw, list):
            return [self.stringify(args[0], v, (*path, i)) for i, v in enumerate(raw)]
        if origin is dict and args and isinstance(raw, dict):
            return {k: self.stringify(args[1], v, (*path, k)) for k, v in raw.items()}
        return raw

    def _scalar(self, raw: Any, path: FieldPath) -> Any:
        if isinstance(raw, bool):
            return "true" if raw else "false"
        if isinstance(raw, int | float):
            return self.smap.scalars.get(path, str(raw))
        return raw


@functools.cache
def _fields(cls: type[Spec]) -> dict[str, msgspec.structs.FieldInfo]:
    """Fields of a spec struct by the key users write (resolving annotations is slow: once per class)."""
    return {f.encode_name: f for f in msgspec.structs.fields(cls)}


def _has_spec(tp: Any) -> bool:
    if isinstance(tp, type):
        return issubclass(tp, Spec)
    return any(_has_spec(a) for a in typing.get_args(tp))


def _union_branch(args: tuple[Any, ...], raw: Any) -> Any:
    """The member of a union of structs/lists/scalars that matches the shape of ``raw``."""
    for arg in args:
        origin = typing.get_origin(arg)
        if isinstance(raw, dict) and isinstance(arg, type) and issubclass(arg, Spec):
            return arg
        if isinstance(raw, list) and origin is list:
            return arg
        if not isinstance(raw, dict | list) and not _has_spec(arg) and origin is not list:
            return arg
    return args[0]


def _kind(value: Any) -> str:
    return {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        type(None): "nothing",
    }.get(type(value), type(value).__name__)


_AT = re.compile(r"\$((?:\[\d+\]|\[[^\]]*\]|\.[A-Za-z_][\w-]*)*)")


def _split_msgspec(message: str) -> tuple[str, FieldPath]:
    """``Expected `str`, got `int` - at `$[0]` `` → ("expected str, got int", (0,))."""
    text, _, where = message.partition(" - at `")
    sub: list[str | int] = []
    for part in re.findall(r"\[(\d+)\]|\[\"?([^\]\"]*)\"?\]|\.([\w-]+)", where.rstrip("`")):
        index, key, attr = part
        sub.append(int(index) if index else (key or attr))
    text = text.replace("`", "")
    return (text[:1].lower() + text[1:]), tuple(sub)


# --- checks across fields -------------------------------------------------------------------------


def effective_stages(pipeline: Pipeline) -> list[str] | None:
    """Declared stages, GitLab's defaults when jobs use ``stage`` without declaring any, else ``None``."""
    if pipeline.stages is not None:
        return list(pipeline.stages)
    if any(job.stage for job in pipeline.jobs.values()):
        return list(GITLAB_DEFAULT_STAGES)
    return None


def job_stage(pipeline: Pipeline, job: Job) -> str | None:
    """The stage a job belongs to (GitLab's default ``test`` when it names none)."""
    return stage_of(job, effective_stages(pipeline))


def stage_of(job: Job, stages: list[str] | None) -> str | None:
    """``job_stage`` given the pipeline's ``effective_stages`` (computed once for many jobs)."""
    if stages is None:
        return None
    return job.stage or ("test" if "test" in stages else stages[0])


def _raw_job_names(data: dict[str, Any]) -> list[str]:
    jobs = data.get("jobs")
    return [str(k) for k in jobs] if isinstance(jobs, dict) else []


def _semantic_checks(pipeline: Pipeline, smap: SourceMap, names: list[str] | None = None) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    names = names if names is not None else list(pipeline.jobs)
    stages = effective_stages(pipeline)
    if pipeline.stages is not None and len(set(pipeline.stages)) != len(pipeline.stages):
        out.append(smap.diag(("stages",), "stages must be unique"))
    if pipeline.concurrency is not None:
        out += _check_group(pipeline.concurrency.group, ("concurrency", "group"), smap, None)
    for name, job in pipeline.jobs.items():
        base: FieldPath = ("jobs", name)
        if stages is not None:
            stage = stage_of(job, stages)
            if stage not in stages:
                where = (*base, "stage") if job.stage else base
                close = difflib.get_close_matches(stage or "", stages, n=1)
                hint = f"did you mean '{close[0]}'?" if close else f"declared stages: {', '.join(stages)}"
                out.append(smap.diag(where, f"stage '{stage}' is not in stages", hint))
        for i, target in enumerate(job.needs or []):
            if target == GATES_NODE and pipeline.gates:
                continue
            if target == name:
                out.append(smap.diag((*base, "needs", i), f"job '{name}' cannot need itself"))
            elif target not in names:
                close = difflib.get_close_matches(target, names, n=1)
                hint = f"did you mean '{close[0]}'?" if close else "needs must name jobs of this file"
                out.append(smap.diag((*base, "needs", i), f"unknown job '{target}' in needs", hint))
        out += _check_matrix(job, base, smap)
        out += _check_expressions(job, base, smap)
    if not out:
        cycle = find_cycle(_job_deps(pipeline))
        if not cycle:
            out += _check_environments(pipeline, smap)
        if cycle:
            out.append(
                smap.diag(
                    ("jobs", cycle[0], "needs"),
                    f"dependency cycle: {' -> '.join(cycle)}",
                    "remove one of these needs",
                )
            )
    return out


def upstream_jobs(pipeline: Pipeline, name: str) -> list[str]:
    """Every job ``name`` depends on, directly or transitively (``needs``, else earlier stages)."""
    stages = effective_stages(pipeline)
    rank = {s: i for i, s in enumerate(stages or [])}

    def direct(job: str) -> list[str]:
        spec = pipeline.jobs[job]
        if spec.needs is not None:
            return [n for n in spec.needs if n in pipeline.jobs]
        if stages is None:
            return []
        mine = rank[stage_of(spec, stages) or ""]
        return [o for o, j in pipeline.jobs.items() if rank[stage_of(j, stages) or ""] < mine]

    seen: list[str] = []
    stack = direct(name)
    while stack:
        job = stack.pop()
        if job not in seen:
            seen.append(job)
            stack += direct(job)
    return seen


def published_upstream(pipeline: Pipeline, name: str) -> list[str]:
    """Names of the artifacts published by the jobs ``name`` depends on (sorted, distinct)."""
    return sorted(
        {
            spec.publish.name
            for job in upstream_jobs(pipeline, name)
            if (spec := pipeline.jobs[job]).publish is not None
        }
    )


def _check_environments(pipeline: Pipeline, smap: SourceMap) -> list[Diagnostic]:
    """A deployment without ``artifact:`` deploys what the one needed job publishes (none: a script
    deployment, tracked by the commit it deploys)."""
    out: list[Diagnostic] = []
    for name, job in pipeline.jobs.items():
        env = job.environment
        if env is None or env.artifact is not None:
            continue
        names = published_upstream(pipeline, name)
        where = ("jobs", name, "environment")
        if len(names) > 1:
            out.append(
                smap.diag(
                    where,
                    f"deployment job '{name}' could deploy several artifacts ({', '.join(names)})",
                    "set environment.artifact to the one it deploys",
                )
            )
    return out


def _job_deps(pipeline: Pipeline) -> dict[str, list[str]]:
    """Explicit ``needs`` edges between job templates (stage edges cannot form cycles)."""
    return {name: list(job.needs or []) for name, job in pipeline.jobs.items()}


def _check_matrix(job: Job, base: FieldPath, smap: SourceMap) -> list[Diagnostic]:
    if job.matrix is None:
        return []
    size = 1
    for values in job.matrix.axes.values():
        size *= len(values)
    size += len(job.matrix.include)
    if size > MAX_MATRIX:
        return [
            smap.diag(
                (*base, "matrix"),
                f"matrix expands to {size} jobs, more than the limit of {MAX_MATRIX}",
                "split the job or use exclude",
            )
        ]
    return []


def _matrix_problem(job: Job, text: str) -> str | None:
    """An unknown ``matrix.X`` in ``text`` (the job's matrix keys are known before any run)."""
    used = expr.members(text, "matrix")
    known = set(job.matrix.axes) | {k for entry in job.matrix.include for k in entry} if job.matrix else set()
    unknown = sorted(used - known)
    if not unknown:
        return None
    if not known:
        return f"'matrix.{unknown[0]}': this job has no matrix"
    return f"unknown matrix key '{unknown[0]}' (this job's matrix: {', '.join(sorted(known))})"


def _needs_problem(job: Job, text: str) -> str | None:
    """A ``needs.X`` in ``text`` for a job that is not in this job's ``needs:`` (it would never be set)."""
    if job.needs is None:  # stage order decides the dependencies
        return None
    unknown = sorted(expr.members(text, "needs") - set(job.needs))
    if not unknown:
        return None
    listed = ", ".join(job.needs) if job.needs else "none"
    return f"'needs.{unknown[0]}': '{unknown[0]}' is not in this job's needs ({listed})"


def _check_expressions(job: Job, base: FieldPath, smap: SourceMap) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    if job.if_ is not None:
        problem = expr.check(job.if_) or _matrix_problem(job, job.if_) or _needs_problem(job, job.if_)
        if problem:
            out.append(smap.diag((*base, "if"), problem, "see 'Expressions' in the README"))
    strings: list[tuple[FieldPath, str]] = []
    if job.script is not None:
        strings += [((*base, "script", i), s) for i, s in enumerate(job.script)]
    for i, step in enumerate(job.steps):
        strings.append(((*base, "steps", i), step.run))
        strings += [((*base, "steps", i, "env", k), v) for k, v in step.env.items()]
    strings += [((*base, "env", k), v) for k, v in job.env.items()]
    if job.concurrency is not None:
        out += _check_group(job.concurrency.group, (*base, "concurrency", "group"), smap, job)
    for path, text in strings:
        for inner in expr.interpolations(text):
            problem = expr.check(inner)
            if problem is None and expr.is_runtime(inner):
                problem = "'needs' is only available in 'if:' conditions"
            problem = problem or _matrix_problem(job, inner)
            if problem:
                out.append(smap.diag(path, problem, "see 'Expressions' in the README"))
    return out


def _check_group(text: str, path: FieldPath, smap: SourceMap, job: Job | None) -> list[Diagnostic]:
    """A concurrency group's ``${{ }}`` use only what is known before the run (a job's: its matrix)."""
    out: list[Diagnostic] = []
    for inner in expr.interpolations(text):
        problem = expr.check(inner)
        if problem is None and expr.is_runtime(inner):
            problem = "'needs' is not known when a concurrency group is decided"
        if problem is None and job is None and expr.members(inner, "matrix"):
            problem = "a pipeline's concurrency group cannot use 'matrix' (only a job's can)"
        if problem is None and job is not None:
            problem = _matrix_problem(job, inner)
        if problem:
            out.append(smap.diag(path, problem, "see 'Concurrency' in the README"))
    return out
