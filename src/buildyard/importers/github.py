"""GitHub Actions workflow -> buildyard's raw document + a source map into the workflow -> ``Pipeline``.

Owns the meaning of a workflow's keywords at the pipeline level: ``on`` (push, pull_request,
workflow_dispatch inputs, schedule, with their branch, tag and path filters) becomes buildyard's
``on:``; every job becomes one buildyard job per matrix combination (``buildyard.importers.github_job``).

Design (steps need a runtime): a converted job is one buildyard step that runs the small step runner
``python -m buildyard.importers.github_steps`` with the GitHub job as JSON on its stdin (a heredoc in
the step's script). The runner gives steps GitHub's semantics — step ``if`` with ``success()``,
``failure()``, ``always()``, ``steps.<id>.outputs``; ``$GITHUB_OUTPUT``/``$GITHUB_ENV``/``$GITHUB_PATH``/
``$GITHUB_STEP_SUMMARY`` between steps; ``continue-on-error``; ``timeout-minutes``; shells;
``uses:`` of local composite actions and of the common actions done natively — and writes the job's
result and ``outputs`` to ``.buildyard-github/results/<job>.json``, a declared output of the job, so
later jobs read ``needs.<job>.outputs`` whether the job ran or was restored from the cache. The
engine is unchanged and its cache keys stay deterministic: the JSON holds only the workflow's own
text (expressions unevaluated) and static values (matrix, names); the commit, run id and other
per-run values reach the runner through the job's environment, never through its definition.

What GitHub decides before a job starts (job ``if`` on ``github``/``vars``/``inputs`` and the status
functions, matrix expansion, ``continue-on-error``, ``timeout-minutes``) is decided at conversion
time for the trigger, as GitLab's rules are: a job whose ``if`` is false for it is skipped; ``always()``
and ``failure()`` become ``when: always`` / ``on_failure``. A job ``if`` that reads ``needs`` is
evaluated by the runner (``when: always`` when it uses a status function); false exits ``SKIP_EXIT``,
which the job declares in ``skip_exit_codes``, so the engine records it skipped as GitHub shows it. The
runner reads a needed job's result file only when the engine says (``BUILDYARD_NEEDS``) that the job
ran or was restored in this run: a file a skipped job left is an earlier run's. Constructs buildyard cannot
carry (``services``, ``container``, ``concurrency``, ``permissions``, other triggers, actions it does
not run) come back as located notes (``services``/``container`` are errors with ``strict``).
"""

from __future__ import annotations

import contextlib
import difflib
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from buildyard.errors import Diagnostic, SpecError
from buildyard.importers import github_expr as gx
from buildyard.importers.github_context import github_context
from buildyard.spec.models import Pipeline
from buildyard.spec.yamlpos import MAX_FILE_BYTES, SourceMap, load_yaml, size_problem
from buildyard.spec.yamlpos import Path as FieldPath

TOP_KEYS = frozenset({"name", "run-name", "on", "permissions", "env", "defaults", "concurrency", "jobs"})
FILTER_KEYS = ("branches", "branches-ignore", "tags", "tags-ignore", "paths", "paths-ignore")
#: Events buildyard's ``on:`` has an equivalent for.
_CARRIED_EVENTS = frozenset({"push", "pull_request", "pull_request_target", "workflow_dispatch", "schedule"})
#: The variable naming the Python that runs the step runner (the one running buildyard).
PYTHON_VAR = "GITHUB_STEPS_PYTHON"


@dataclass(frozen=True)
class Context:
    """The trigger a workflow is converted for."""

    event: str = "push"
    branch: str = ""
    tag: str = ""
    sha: str = ""
    variables: Mapping[str, str] = field(default_factory=dict)
    default_branch: str = "main"
    project: Path = Path()
    #: ``services``/``container`` become errors instead of warnings.
    strict: bool = False


@dataclass
class Conversion:
    """The converted document, its map into the workflow, and everything not carried."""

    document: dict[str, Any]
    source_map: SourceMap
    notes: list[Diagnostic]
    #: GitHub job id -> the buildyard jobs it became (one per matrix combination).
    names: dict[str, list[str]]


def context_for(
    project: Path,
    *,
    event: str = "push",
    branch: str | None = None,
    tag: str | None = None,
    variables: Mapping[str, str] | None = None,
    strict: bool = False,
) -> Context:
    """The context of a run in ``project`` (git gives what the options leave unset)."""
    from buildyard.importers import gitlab  # noqa: PLC0415 - the same reading of git

    g = gitlab.context_for(project, event=event, branch=branch, tag=tag, variables=variables, strict=strict)
    return Context(
        event=g.event,
        branch=g.branch,
        tag=g.tag,
        sha=g.sha,
        variables=dict(g.variables),
        default_branch=g.default_branch,
        project=project,
        strict=strict,
    )


def load(path: Path, context: Context) -> tuple[Pipeline, Conversion]:
    """Read, convert and validate a workflow; raise a ``SpecError`` located in it."""
    from buildyard.spec.load import from_raw  # noqa: PLC0415 - the validator, only once converted

    data, smap = read(path, context.project)
    conversion = convert(data, smap, context)
    pipeline = from_raw(conversion.document, conversion.source_map)
    return msgspec.structs.replace(pipeline, file=str(path)), conversion


def read(path: Path, project: Path) -> tuple[dict[str, Any], SourceMap]:
    """The workflow's YAML (``on:`` stays the key "on") with positions; raise a located ``SpecError``."""
    try:
        name = str(path.resolve().relative_to(project.resolve()))
    except ValueError:
        name = str(path)
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise SpecError([Diagnostic(name, 1, 1, "", f"cannot read the file ({exc.strerror})")]) from None
    if len(raw) > MAX_FILE_BYTES:
        raise SpecError([size_problem(name, len(raw))])
    text = raw.decode("utf-8", "replace")
    data, smap, problems = load_yaml(text, name)
    if problems:
        raise SpecError(problems)
    if not isinstance(data, dict):
        raise SpecError([Diagnostic(name, 1, 1, "", "a workflow must be a mapping with 'on' and 'jobs'")])
    return {str(k): v for k, v in data.items()}, smap


class Converter:
    """Collects located problems (errors) and notes (not carried) while converting."""

    def __init__(self, data: dict[str, Any], smap: SourceMap, ctx: Context) -> None:
        self.data = data
        self.src = smap
        self.ctx = ctx
        self.smap = SourceMap(smap.file)
        self.problems: list[Diagnostic] = []
        self.notes: list[Diagnostic] = []

    def problem(self, path: FieldPath, message: str, hint: str = "", *, at_key: bool = False) -> None:
        """Record an error located at the workflow's ``path``."""
        self.problems.append(self.src.diag(path, message, hint, at_key=at_key))

    def note(self, path: FieldPath, message: str) -> None:
        """Record something GitHub would honour that buildyard does not carry."""
        self.notes.append(self.src.diag(path, message))

    def unsupported(self, path: FieldPath, message: str) -> None:
        """A note, or an error when converting strictly (``services``, ``container``)."""
        if self.ctx.strict:
            self.problem(path, message, "remove it, or run without --strict to run in the shell")
        else:
            self.note(path, message)

    def locate(self, out: FieldPath, src: FieldPath) -> None:
        """Map the converted path ``out`` to where the workflow wrote ``src``."""
        self.smap.values[out] = self.src.value_pos(src)
        self.smap.keys[out] = self.src.key_pos(src)

    def unknown_keys(
        self, value: Mapping[str, Any], allowed: frozenset[str], path: FieldPath, what: str
    ) -> bool:
        """Report keys of ``value`` not in ``allowed``; True when there were none."""
        ok = True
        for key in value:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
                hint = f"did you mean '{close[0]}'?" if close else "see GitHub's workflow syntax reference"
                self.problem((*path, key), f"unknown key '{key}' in {what}", hint, at_key=True)
                ok = False
        return ok

    def document_name(self) -> str:
        """The workflow's name (its file's stem without ``name:``)."""
        return str(self.data.get("name") or Path(self.src.file).stem)

    def static_context(self) -> dict[str, Any]:
        """The contexts known before any job runs: ``github``, ``vars``, ``inputs``."""
        c = self.ctx
        inputs = self.input_values()
        return {
            "github": github_context(
                event=c.event,
                branch=c.branch,
                tag=c.tag,
                sha=c.sha,
                workspace=str(c.project.resolve()),
                repository=c.project.resolve().name,
                default_branch=c.default_branch,
                inputs=inputs if c.event == "manual" else None,
            ),
            "vars": dict(c.variables),
            "inputs": inputs if c.event == "manual" else {},  # GitHub: only a dispatch has inputs
        }

    def input_values(self) -> dict[str, Any]:
        """workflow_dispatch inputs: ``--var NAME=VALUE`` or the input's default (booleans typed)."""
        out: dict[str, Any] = {}
        for name, spec in dispatch_inputs(self.data).items():
            kind = spec.get("type", "string")
            value: Any = self.ctx.variables.get(name, spec.get("default", ""))
            if kind == "boolean":
                value = value if isinstance(value, bool) else str(value).lower() == "true"
            elif kind == "number" and isinstance(value, str) and value:
                with contextlib.suppress(ValueError):
                    value = float(value)
            out[name] = value
        return out

    # -- the workflow --

    def convert(self) -> Conversion:
        """The whole document: name, variables, on, then every job."""
        from buildyard.importers.github_job import JobConverter  # noqa: PLC0415 - its own module

        data = self.data
        self.unknown_keys(data, TOP_KEYS, (), "a workflow")
        if "on" not in data:
            self.problem((), "a workflow needs 'on' (the events that start it)", "e.g. on: [push]")
        jobs = data.get("jobs")
        if not isinstance(jobs, dict) or not jobs:
            self.problem(("jobs",) if "jobs" in data else (), "a workflow needs 'jobs' (a mapping of jobs)")
            raise SpecError(self.problems)
        document: dict[str, Any] = {"name": self.document_name()}
        self.locate(("name",), ("name",))
        document["variables"] = {PYTHON_VAR: sys.executable}
        on = self.on(data.get("on"))
        if on is not None:
            document["on"] = on
            self.locate(("on",), ("on",))
        for key in ("concurrency", "permissions", "run-name"):
            if key in data:
                self.note((key,), f"{key}: not applied by buildyard (a local run has no {key})")
        env = data.get("env", {})
        if not isinstance(env, dict):
            self.problem(("env",), "env takes a mapping of NAME: value")
        defaults = _run_defaults(data.get("defaults"))
        if defaults is None:
            self.problem(("defaults",), "defaults takes {run: {shell, working-directory}}")
        converter = JobConverter(self, jobs, env if isinstance(env, dict) else {}, defaults or {})
        document["jobs"] = converter.convert()
        self.locate(("jobs",), ("jobs",))
        if self.problems:
            raise SpecError(self.problems)
        return Conversion(document, self.smap, self.notes, converter.instances)

    def on(self, raw: Any) -> dict[str, Any] | None:
        """GitHub's ``on`` -> buildyard's (push/pull_request filters, manual inputs, schedules)."""
        if raw is None:
            return None
        if isinstance(raw, str):
            raw = {raw: None}
        elif isinstance(raw, list) and all(isinstance(e, str) for e in raw):
            raw = dict.fromkeys(raw)
        if not isinstance(raw, dict):
            self.problem(("on",), "on takes an event, a list of events, or a mapping of events")
            return None
        out: dict[str, Any] = {}
        for event, cfg in raw.items():
            path: FieldPath = ("on", event)
            if event not in _CARRIED_EVENTS:
                self.note(path, f"on.{event}: buildyard has no such trigger (run it with 'buildyard run -f')")
                continue
            if event in ("push", "pull_request", "pull_request_target"):
                target = "pull_request" if event == "pull_request_target" else event
                out[target] = self.event_filter(cfg, path)
                self.locate(("on", target), path)
            elif event == "schedule":
                out["schedule"] = self.schedules(cfg, path)
                self.locate(("on", "schedule"), path)
            else:
                inputs = {}
                for name, spec in dispatch_inputs(raw).items():
                    inputs[name] = self.manual_input(spec, (*path, "inputs", name))
                out["manual"] = {"inputs": inputs}
                self.locate(("on", "manual"), path)
        return out

    def event_filter(self, cfg: Any, path: FieldPath) -> dict[str, Any]:
        """``branches``/``tags``/``paths`` (and ``-ignore``) of push or pull_request."""
        if cfg is None:
            return {}
        if not isinstance(cfg, dict):
            self.problem(path, "an event's filters are a mapping (branches, tags, paths...)")
            return {}
        out: dict[str, Any] = {}
        for key, value in cfg.items():
            if key == "types":
                self.note((*path, key), "pull_request types: every pull request event starts the run")
                continue
            if key not in FILTER_KEYS:
                self.problem((*path, key), f"unknown filter '{key}'", f"one of: {', '.join(FILTER_KEYS)}")
                continue
            patterns = [value] if isinstance(value, str) else value
            if not isinstance(patterns, list):
                self.problem((*path, key), f"{key} takes a list of patterns")
                continue
            name = key.replace("-", "_")
            out[name] = [str(p) for p in patterns]
            self.locate(
                ("on", path[-1] if path[-1] != "pull_request_target" else "pull_request", name), (*path, key)
            )
        return out

    def schedules(self, cfg: Any, path: FieldPath) -> list[dict[str, str]]:
        """``schedule: [{cron}]`` (GitHub's crons are UTC)."""
        if not isinstance(cfg, list) or not all(isinstance(c, dict) and "cron" in c for c in cfg):
            self.problem(path, "schedule takes a list of {cron: '...'}")
            return []
        for i in range(len(cfg)):
            self.locate(("on", "schedule", i), (*path, i))
        return [{"cron": str(c["cron"])} for c in cfg]

    def manual_input(self, spec: Mapping[str, Any], path: FieldPath) -> dict[str, Any]:
        """One workflow_dispatch input -> a manual input (number and environment as strings)."""
        kind = str(spec.get("type", "string"))
        out: dict[str, Any] = {
            "type": {"choice": "choice", "boolean": "boolean"}.get(kind, "string"),
            "description": str(spec.get("description", "")),
            "required": bool(spec.get("required", False)),
        }
        if kind not in ("string", "choice", "boolean", "number", "environment"):
            self.problem(
                (*path, "type"),
                f"unknown input type '{kind}'",
                "string, choice, boolean, number, environment",
            )
        if "default" in spec:
            default = spec["default"]
            out["default"] = (
                default if kind == "boolean" and isinstance(default, bool) else gx.to_string(default)
            )
        if kind == "choice":
            out["options"] = [str(o) for o in spec.get("options") or []]
        if kind in ("number", "environment"):
            self.note((*path, "type"), f"input type {kind}: taken as a string")
        self.locate(("on", "manual", "inputs", str(path[-1])), path)
        return out


def dispatch_inputs(data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The ``workflow_dispatch`` inputs of a workflow (or of its ``on`` mapping), by name."""
    on = data.get("on", data) if "on" in data else data
    if not isinstance(on, dict):
        return {}
    dispatch = on.get("workflow_dispatch")
    inputs = dispatch.get("inputs") if isinstance(dispatch, dict) else None
    if not isinstance(inputs, dict):
        return {}
    return {str(k): v if isinstance(v, dict) else {} for k, v in inputs.items()}


def _run_defaults(raw: Any) -> dict[str, str] | None:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not isinstance(raw.get("run", {}), dict):
        return None
    run = raw.get("run") or {}
    return {k: str(v) for k, v in run.items() if k in ("shell", "working-directory")}


def convert(data: dict[str, Any], smap: SourceMap, ctx: Context) -> Conversion:
    """Convert a read workflow for the trigger ``ctx``; raise a located ``SpecError``."""
    return Converter(data, smap, ctx).convert()
