"""What both exporters need to know about a pipeline: each job's dependencies as buildyard runs them
(``needs``, else earlier stages, plus a deployment's wait for gates), its depth in the DAG, what only
buildyard can do for it, and the located notes about what was not carried. Pure."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from buildyard.errors import Diagnostic
from buildyard.graph import topological_order
from buildyard.spec.load import effective_stages, stage_of
from buildyard.spec.models import GATES_NODE, Job, Pipeline

#: The command an exported job runs to let buildyard do what the target service cannot.
BUILDYARD_RUN = "buildyard run"


@dataclass
class Notes:
    """Located notes about constructs an export does not carry (one per construct and place)."""

    pipeline: Pipeline
    items: list[Diagnostic] = field(default_factory=list)

    def add(self, job: str | None, where: str, message: str) -> None:
        """A note about ``where`` (a field path) in ``job`` (``None``: the pipeline)."""
        line, col = self.pipeline.position(job) if job else (1, 1)
        path = f"jobs.{job}.{where}" if job and where else f"jobs.{job}" if job else where
        note = Diagnostic(self.pipeline.file, line, col, path.rstrip("."), message)
        if note not in self.items:
            self.items.append(note)


def dependencies(pipeline: Pipeline) -> dict[str, list[str]]:
    """Job name -> the jobs it waits for, as buildyard's plan builds them (the ``gates`` node included
    when the pipeline has gates: it waits for every job that does not come after it)."""
    stages = effective_stages(pipeline)
    rank = {s: i for i, s in enumerate(stages or [])}
    stage = {name: stage_of(job, stages) for name, job in pipeline.jobs.items()}
    deps: dict[str, list[str]] = {}
    for name, job in pipeline.jobs.items():
        if job.needs is not None:
            deps[name] = list(job.needs)
        elif stages is not None:
            deps[name] = [o for o in pipeline.jobs if rank[stage[o] or ""] < rank[stage[name] or ""]]
        else:
            deps[name] = []
    gated = [n for n, j in pipeline.jobs.items() if j.gates]
    for name, job in pipeline.jobs.items():
        env = job.environment
        if env is None or not env.wait_for_gates:
            continue
        after = dependents_of(deps, name)
        extra = [GATES_NODE] if pipeline.gates else [g for g in gated if g != name and g not in after]
        deps[name] += [e for e in extra if e not in deps[name]]
    if pipeline.gates:
        after = dependents_of(deps, GATES_NODE)
        deps[GATES_NODE] = [n for n in pipeline.jobs if n not in after]
    return deps


def dependents_of(deps: Mapping[str, list[str]], node: str) -> set[str]:
    """Every job that (transitively) waits for ``node``."""
    children: dict[str, list[str]] = {}
    for child, parents in deps.items():
        for parent in parents:
            children.setdefault(parent, []).append(child)
    seen: set[str] = set()
    stack = [node]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return seen


def ancestors(deps: Mapping[str, list[str]], node: str) -> list[str]:
    """Every job ``node`` (transitively) waits for, nearest first."""
    seen: list[str] = []
    stack = list(deps.get(node, []))
    while stack:
        parent = stack.pop(0)
        if parent not in seen:
            seen.append(parent)
            stack.extend(deps.get(parent, []))
    return seen


def depths(deps: Mapping[str, list[str]]) -> dict[str, int]:
    """Job -> its depth: 0 for a job without dependencies, else one more than its deepest dependency."""
    out: dict[str, int] = {}
    for name in topological_order({k: list(v) for k, v in deps.items()}):
        out[name] = max((out[d] + 1 for d in deps[name]), default=0)
    return out


def stage_names(pipeline: Pipeline, depth: Mapping[str, int]) -> dict[int, str]:
    """A name for each depth: the buildyard stage its jobs share (when that stage is at one depth
    only), else ``stage-N``."""
    stages = effective_stages(pipeline)
    by_depth: dict[int, set[str]] = {}
    for name, d in depth.items():
        job = pipeline.jobs.get(name)
        by_depth.setdefault(d, set()).add(
            (stage_of(job, stages) or "") if job is not None else ("gates" if stages is None else "")
        )
    depth_of_stage: dict[str, set[int]] = {}
    for d, names in by_depth.items():
        for s in names:
            depth_of_stage.setdefault(s, set()).add(d)
    out: dict[int, str] = {}
    for d in sorted(by_depth):
        names = by_depth[d]
        only = next(iter(names)) if len(names) == 1 else ""
        good = only and len(depth_of_stage[only]) == 1 and only not in (".pre", ".post")
        out[d] = only if good else f"stage-{d + 1}"
    return out


def buildyard_only(job: Job) -> list[str]:
    """What only buildyard can do for this job (then the export runs it with ``buildyard run JOB``)."""
    out: list[str] = []
    if job.gates:
        out.append("quality gates")
    if job.publish is not None:
        out.append(f"publishing the signed artifact '{job.publish.name}'")
    env = job.environment
    if env is not None and (env.health_check is not None or env.auto_rollback or env.rollback):
        out.append("the deployment's health check and rollback")
    return out


def note_not_carried(name: str, job: Job, notes: Notes) -> None:
    """Note the keys of ``job`` that only buildyard's job cache and workspaces read (no export has them)."""
    for key, value in (
        ("inputs", job.inputs),
        ("key_commands", job.key_commands),
        ("pass_env", job.pass_env),
        ("workspace", job.workspace),
    ):
        if value:
            notes.add(name, key, f"{key}: part of buildyard's job cache and workspaces, not carried")
    if job.skip_exit_codes:
        notes.add(name, "skip_exit_codes", "skip_exit_codes: not carried (such an exit fails the job there)")


def minutes(seconds: float) -> int:
    """A timeout in whole minutes, rounded up (GitHub's ``timeout-minutes``)."""
    return max(1, math.ceil(seconds / 60))


def gitlab_duration(seconds: float) -> str:
    """``5400`` -> ``1h 30m`` (GitLab's duration syntax)."""
    total = max(1, math.ceil(seconds))
    hours, rest = divmod(total, 3600)
    mins, secs = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{mins}m" if mins else "", f"{secs}s" if secs else ""]
    return " ".join(p for p in parts if p)


def job_timeout(pipeline: Pipeline, job: Job) -> float | None:
    """The job's timeout, else the pipeline default."""
    return job.timeout if job.timeout is not None else pipeline.defaults.timeout


def buildyard_variables(text: str, mapping: Mapping[str, str]) -> dict[str, str]:
    """buildyard's standard variables the scripts use, each set from the target's own."""
    return {name: value for name, value in mapping.items() if name in text}
