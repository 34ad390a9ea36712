"""``plan.build``: Pipeline + TriggerContext → Plan (pure, no I/O).

Expands matrices into job instances, resolves ``needs`` and stage ordering into instance edges,
interpolates ``${{ }}`` with the static context, evaluates conditions that do not depend on other
jobs, applies job selection and computes critical-path priorities.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from buildyard.errors import Diagnostic, SpecError, UsageError
from buildyard.graph import closure, critical_path_lengths, topological_order
from buildyard.model import Event, SkipReason, When
from buildyard.spec import expr
from buildyard.spec.load import effective_stages, stage_of
from buildyard.spec.models import (
    GATES_NODE,
    DependencyCacheSpec,
    EnvironmentSpec,
    Job,
    Pipeline,
    PublishSpec,
    Retry,
)


@dataclass(frozen=True, slots=True)
class TriggerContext:
    """What triggered the run: the values conditions and interpolation see."""

    event: Event = Event.PUSH
    branch: str = ""
    tag: str = ""
    sha: str = ""
    ref: str = ""
    variables: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    manual: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class StepSpec:
    """One resolved step."""

    name: str
    run: str
    env: tuple[tuple[str, str], ...] = ()
    timeout: float | None = None
    continue_on_error: bool = False


@dataclass(frozen=True, slots=True)
class JobInstance:
    """One runnable job: a job, or one combination of its matrix."""

    id: str
    job: str
    matrix: tuple[tuple[str, str], ...]
    stage: str | None
    needs: tuple[str, ...]
    steps: tuple[StepSpec, ...]
    env: tuple[tuple[str, str], ...]
    secrets: tuple[str, ...]
    condition: str | None
    when: When
    allow_failure: bool
    timeout: float | None
    retry: Retry
    cpus: int
    shell: str
    working_directory: str | None
    artifacts: tuple[str, ...]
    inputs: tuple[str, ...] | None = None
    key_commands: tuple[str, ...] = ()
    pass_env: tuple[str, ...] = ()
    cached: bool = True
    dependency_caches: tuple[DependencyCacheSpec, ...] = ()
    gates: tuple[Any, ...] = ()
    #: True for the synthetic node that evaluates the pipeline-level gates.
    gate_node: bool = False
    publish: PublishSpec | None = None
    #: The deployment this job makes (``environment:``), None for other jobs.
    environment: EnvironmentSpec | None = None
    #: True when ``--manual JOB`` approved the deployment in advance.
    pre_approved: bool = False
    #: ``isolated``: runs in its own copy of the project (``engine.workspace``); "" or ``shared``: in it.
    workspace: str = ""
    #: True when isolation was chosen because instances of one matrix job declare the same outputs.
    workspace_auto: bool = False
    #: Exit codes whose failure is allowed (``allow_failure: {exit_codes}``); ``allow_failure`` allows any.
    allow_failure_codes: tuple[int, ...] = ()
    #: Exit codes that end the job as skipped (``skip_exit_codes``).
    skip_exit_codes: tuple[int, ...] = ()
    #: ``runs_on``: labels an agent must have (``("local",)``: the orchestrator's machine).
    runs_on: tuple[str, ...] = ()
    #: ``resources.mem`` as written ("" when unset).
    mem: str = ""
    #: ``concurrency.group`` interpolated ("": none) and whether a newer member cancels this one's.
    concurrency_group: str = ""
    cancel_in_progress: bool = False

    @property
    def awaits_approval(self) -> bool:
        """True for a deployment that must wait for ``buildyard approve`` before it starts."""
        env = self.environment
        return env is not None and env.approval == "required" and not self.pre_approved


@dataclass(frozen=True, slots=True)
class Skip:
    """A decision not to run an instance, with its reason."""

    reason: SkipReason
    message: str


@dataclass(frozen=True)
class Plan:
    """The DAG of job instances of one run, in topological order."""

    pipeline: str
    variables: Mapping[str, str]
    instances: Mapping[str, JobInstance]
    skips: Mapping[str, Skip]
    priority: Mapping[str, float]
    dependents: Mapping[str, tuple[str, ...]]
    cache_inputs: tuple[str, ...] = ()
    env_mode: str = "loose"
    pass_env: tuple[str, ...] = ()
    #: The pipeline's ``executor:`` ("" when it names none).
    executor: str = ""

    def __len__(self) -> int:
        return len(self.instances)


def instance_id(job: str, combo: Mapping[str, str]) -> str:
    """``test`` + ``{python: 3.11, os: linux}`` → ``test[3.11,linux]``."""
    return f"{job}[{','.join(combo.values())}]" if combo else job


def expand_matrix(job: Job) -> list[dict[str, str]]:
    """Combinations of a job's matrix (GitHub semantics for ``include``/``exclude``); ``[{}]`` without one."""
    matrix = job.matrix
    if matrix is None:
        return [{}]
    axes = matrix.axes
    combos = (
        [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())] if axes else []
    )
    combos = [
        c for c in combos if not any(all(c.get(k) == v for k, v in ex.items()) for ex in matrix.exclude)
    ]
    originals = [dict(c) for c in combos]
    for entry in matrix.include:
        matched = False
        # only the original combinations: entries appended by earlier includes are not extended
        for combo, original in zip(combos[: len(originals)], originals, strict=True):
            overlap = {k: v for k, v in entry.items() if k in axes}
            if all(original.get(k) == v for k, v in overlap.items()) and overlap:
                combo.update({k: v for k, v in entry.items() if k not in axes})
                matched = True
        if not matched:
            combos.append(dict(entry))
    return combos


def static_context(pipeline: Pipeline, trigger: TriggerContext) -> dict[str, Any]:
    """The expression context known before any job runs."""
    return {
        "event": str(trigger.event),
        "branch": trigger.branch,
        "tag": trigger.tag,
        "ref": trigger.ref,
        "sha": trigger.sha,
        "vars": {**pipeline.variables, **trigger.variables},
        "env": dict(trigger.env),
        "matrix": {},
    }


def _group(job: Job, ctx: dict[str, Any]) -> str:
    """The job's concurrency group with its ``${{ }}`` replaced ("" without ``concurrency:``)."""
    if job.concurrency is None:
        return ""
    return expr.interpolate(job.concurrency.group, ctx).strip()[:400]


def _isolate_colliding_outputs(made: dict[str, JobInstance], instances_of: Mapping[str, list[str]]) -> None:
    """Isolate the instances of a matrix job that declare the same outputs (unless a workspace is set).

    Sharing one checkout, they would write (and read back) each other's files: two pytest-cov
    instances corrupt one ``.coverage``. In their own workspaces each writes its own copy.
    """
    for ids in instances_of.values():
        insts = [made[i] for i in ids if i in made]
        if len(insts) < 2 or any(i.workspace for i in insts):
            continue
        seen: set[tuple[str | None, str]] = set()
        collide = False
        for inst in insts:
            mine = {(inst.working_directory, p) for p in inst.artifacts if not p.startswith("!")}
            collide = collide or bool(seen & mine)
            seen |= mine
        if collide:
            for inst in insts:
                made[inst.id] = replace(inst, workspace="isolated", workspace_auto=True)


def build(
    pipeline: Pipeline,
    trigger: TriggerContext,
    *,
    select: Iterable[str] = (),
    durations: Mapping[str, float] | None = None,
    alone: bool = False,
) -> Plan:
    """Build the plan of one run. ``select`` restricts it to named jobs plus what they need (only the
    named jobs, without their needs, with ``alone``)."""
    base_ctx = static_context(pipeline, trigger)
    variables = dict(base_ctx["vars"])
    instances_of: dict[str, list[str]] = {}
    combos_of: dict[str, list[dict[str, str]]] = {}
    for name, job in pipeline.jobs.items():
        combos_of[name] = expand_matrix(job)
        instances_of[name] = [instance_id(name, c) for c in combos_of[name]]
    if pipeline.gates:
        instances_of[GATES_NODE] = [GATES_NODE]

    stages = effective_stages(pipeline)
    stage_rank = {s: i for i, s in enumerate(stages or [])}
    job_stages = {name: stage_of(job, stages) for name, job in pipeline.jobs.items()}

    deps: dict[str, list[str]] = {}
    made: dict[str, JobInstance] = {}
    skips: dict[str, Skip] = {}
    problems: list[Diagnostic] = []
    for name, job in pipeline.jobs.items():
        if job.needs is not None:
            upstream = [i for n in job.needs for i in instances_of[n]]
        elif stages is not None:
            rank = stage_rank[job_stages[name] or ""]
            upstream = [
                i
                for other, st in job_stages.items()
                if stage_rank[st or ""] < rank
                for i in instances_of[other]
            ]
        else:
            upstream = []
        for combo in combos_of[name]:
            iid = instance_id(name, combo)
            ctx = {**base_ctx, "matrix": combo}
            try:
                made[iid], skip = _instance(
                    pipeline, name, job, iid, combo, job_stages[name], upstream, ctx, trigger
                )
            except expr.ExprError as exc:
                line, col = pipeline.position(name)
                problems.append(Diagnostic(pipeline.file, line, col, f"jobs.{name}", str(exc)))
                continue
            if skip is not None:
                skips[iid] = skip
            deps[iid] = upstream
    if problems:
        raise SpecError(problems)
    _isolate_colliding_outputs(made, instances_of)
    _deployments_wait_for_gates(deps, made, gate_node=bool(pipeline.gates))
    if pipeline.gates:
        made[GATES_NODE] = _gate_node(pipeline)
        after = closure_of_dependents(deps, GATES_NODE)
        deps[GATES_NODE] = [i for i in deps if i not in after]

    if select := list(select):
        roots = _resolve_selection(select, instances_of, made)
        keep = set(roots) if alone else closure(deps, roots)
        deps = {k: [d for d in v if d in keep] for k, v in deps.items() if k in keep}
        # A manual job the user selected by name is a request to run it.
        skips = {
            k: v for k, v in skips.items() if k in keep and not (v.reason == SkipReason.MANUAL and k in roots)
        }

    order = topological_order(deps)
    weights = {iid: (durations or {}).get(iid, 1.0) for iid in order}
    priority = critical_path_lengths(deps, weights)
    dependents: dict[str, list[str]] = {iid: [] for iid in order}
    for iid in order:
        for d in deps[iid]:
            dependents[d].append(iid)
    return Plan(
        pipeline=pipeline.name,
        variables=MappingProxyType(variables),
        instances=MappingProxyType({iid: _with_needs(made[iid], deps[iid]) for iid in order}),
        skips=MappingProxyType(skips),
        priority=MappingProxyType(priority),
        dependents=MappingProxyType({k: tuple(v) for k, v in dependents.items()}),
        cache_inputs=tuple(pipeline.cache_inputs),
        env_mode=str(pipeline.env_mode),
        pass_env=tuple(pipeline.pass_env),
        executor=pipeline.executor or "",
    )


def _deployments_wait_for_gates(
    deps: dict[str, list[str]], made: Mapping[str, JobInstance], *, gate_node: bool
) -> None:
    """A deployment waits for the pipeline's gates unless it opts out (``wait_for_gates: false``).

    With pipeline ``gates:`` it needs the ``gates`` node (which itself fails when any job it waits for
    failed); without them, it needs every job that has gates of its own. Jobs that come after the
    deployment (smoke tests of staging, the production deployment…) are never added: no cycle.
    """
    for iid, inst in made.items():
        env = inst.environment
        if env is None or not env.wait_for_gates or iid not in deps:
            continue
        after = closure_of_dependents(deps, iid)
        if gate_node:
            extra = [GATES_NODE]
        else:
            extra = [o for o, other in made.items() if other.gates and o != iid and o not in after]
        deps[iid] = [*deps[iid], *(e for e in extra if e not in deps[iid])]


def closure_of_dependents(deps: Mapping[str, list[str]], node: str) -> set[str]:
    """Every instance that (transitively) needs ``node``."""
    dependents: dict[str, list[str]] = {}
    for child, parents in deps.items():
        for parent in parents:
            dependents.setdefault(parent, []).append(child)
    seen: set[str] = set()
    stack = [node]
    while stack:
        for child in dependents.get(stack.pop(), []):
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return seen


def _gate_node(pipeline: Pipeline) -> JobInstance:
    return JobInstance(
        id=GATES_NODE,
        job=GATES_NODE,
        matrix=(),
        stage=None,
        needs=(),
        steps=(),
        env=(),
        secrets=(),
        condition=None,
        when=When.ALWAYS,
        allow_failure=False,
        timeout=None,
        retry=Retry(),
        cpus=1,
        shell=pipeline.defaults.shell,
        working_directory=None,
        artifacts=(),
        cached=False,
        gates=tuple(pipeline.gates),
        gate_node=True,
    )


def _with_needs(inst: JobInstance, needs: list[str]) -> JobInstance:
    resolved = tuple(needs)
    return inst if resolved == inst.needs else replace(inst, needs=resolved)


def _resolve_selection(
    select: list[str], instances_of: dict[str, list[str]], made: dict[str, JobInstance]
) -> set[str]:
    roots: set[str] = set()
    for name in select:
        if name in instances_of:
            roots.update(instances_of[name])
        elif name in made:
            roots.add(name)
        else:
            import difflib  # noqa: PLC0415 - error path only

            close = difflib.get_close_matches(name, [*instances_of, *made], n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (jobs: {', '.join(instances_of)})"
            raise UsageError(f"unknown job '{name}'{hint}")
    return roots


def _instance(
    pipeline: Pipeline,
    name: str,
    job: Job,
    iid: str,
    combo: dict[str, str],
    stage: str | None,
    upstream: list[str],
    ctx: dict[str, Any],
    trigger: TriggerContext,
) -> tuple[JobInstance, Skip | None]:
    steps = tuple(
        StepSpec(
            name=step.name or f"step {i + 1}",
            run=expr.interpolate(step.run, ctx),
            env=tuple((k, expr.interpolate(v, ctx)) for k, v in step.env.items()),
            timeout=step.timeout,
            continue_on_error=step.continue_on_error,
        )
        for i, step in enumerate(job.all_steps)
    )
    env = {k: expr.interpolate(v, ctx) for k, v in job.env.items()}
    skip: Skip | None = None
    condition = job.if_.strip() if job.if_ else None
    if condition is not None and not expr.is_runtime(condition):
        if not expr.is_true(condition, ctx):
            skip = Skip(SkipReason.CONDITION_FALSE, f"condition is false: {condition}")
        condition = None
    if skip is None and job.when == When.MANUAL and name not in trigger.manual and iid not in trigger.manual:
        skip = Skip(SkipReason.MANUAL, "manual job (run it with --manual " + name + ")")
    workdir = job.working_directory or pipeline.defaults.working_directory
    return (
        JobInstance(
            id=iid,
            job=name,
            matrix=tuple(combo.items()),
            stage=stage,
            needs=tuple(upstream),
            steps=steps,
            env=tuple(env.items()),
            secrets=tuple(job.secrets),
            condition=condition,
            when=job.when,
            allow_failure=job.allowed_failure,
            allow_failure_codes=job.allow_failure_codes,
            skip_exit_codes=tuple(job.skip_exit_codes),
            timeout=job.timeout if job.timeout is not None else pipeline.defaults.timeout,
            retry=job.retry,
            cpus=job.resources.cpus,
            shell=job.shell or pipeline.defaults.shell,
            working_directory=expr.interpolate(workdir, ctx) if workdir else None,
            artifacts=tuple(job.artifacts.paths),
            inputs=tuple(job.inputs) if job.inputs is not None else None,
            key_commands=tuple(expr.interpolate(c, ctx) for c in job.key_commands),
            pass_env=tuple(job.pass_env),
            cached=job.cached,
            dependency_caches=tuple(job.dependency_caches),
            gates=tuple(job.gates),
            publish=job.publish,
            environment=job.environment,
            pre_approved=name in trigger.manual or iid in trigger.manual,
            workspace=str(job.workspace or pipeline.defaults.workspace or ""),
            runs_on=(job.runs_on,) if isinstance(job.runs_on, str) else tuple(job.runs_on or ()),
            mem=job.resources.mem or "",
            concurrency_group=_group(job, ctx),
            cancel_in_progress=job.concurrency is not None and job.concurrency.cancel_in_progress,
        ),
        skip,
    )
