"""The executor stack of a run, declared once: wrappers in one documented order around a backend.

From the outside in (each layer only where the plan needs it):

0. ``concurrency`` — a job with ``concurrency:`` waits for (or cancels) the job of its group in
   another run sharing this home, before anything else of it happens (``engine.concurrency``).
1. ``deploying``  — deployment jobs: lock the environment, pull the verified artifact, run, check
   health, roll back; records deployments. Outside everything, so it deploys only what passed.
2. ``publishing`` — push a successful job's ``publish:`` artifact (its gates have passed by then).
3. ``gating``     — evaluate a job's gates after it succeeded or was restored; run the gates node.
4. ``caching``    — look the job up: a hit is restored here and never reaches a layer below; a miss
   runs it and stores its outputs. Dependency caches (``cache:``) around the run.
5. ``outputs``    — a successful job's declared outputs exist (warning, or failure with ``--strict``).
6. ``workspace``  — an isolated job runs in a fresh workspace (inside the cache: keys as if shared).
7. the backend    — ``local``, ``pool`` or a plugin's, chosen by name (``engine.executors``). A
   backend whose ``isolates`` is true (``dask``) makes every job's workspace itself: no layer 6.

Only this module knows the order; each wrapper knows nothing of the others.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Set
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from buildyard.engine.executors import ExecutorRegistry, executor_name, executors, split_target
from buildyard.engine.options import RunObserver, RunOptions, warner
from buildyard.engine.request import Executor
from buildyard.plan.build import Plan
from buildyard.settings import load as load_settings
from buildyard.store.history import History


class CacheStack:
    """The cache objects of one run: job cache (local + optional remote), hasher with its stat cache."""

    def __init__(self, options: RunOptions, home: Path, warn: Callable[[str], None]) -> None:
        from buildyard.cache import (  # noqa: PLC0415 - the cache stack is imported only when used
            DependencyCache,
            FileHasher,
            InputIndex,
            open_job_cache,
            open_stat_cache,
        )

        cache_dir = options.cache_dir or (home / "cas")
        self.job_cache = open_job_cache(
            options.project_dir,
            cache_dir=cache_dir,
            remote_url=options.remote_cache,
            remote_token=load_settings(options.project_dir).remote_cache_token,
            warn=warn,
        )
        self.stat_cache = open_stat_cache(home)
        self.hasher = FileHasher(self.stat_cache)
        self.index = InputIndex(options.project_dir)
        self.deps = DependencyCache(self.job_cache.local.store)
        self.warn = warn

    def wrap(self, inner: Executor) -> Executor:
        """``inner`` behind the job cache."""
        from buildyard.engine.caching import CachingExecutor  # noqa: PLC0415

        return CachingExecutor(
            inner,
            self.job_cache,
            hasher=self.hasher,
            index=self.index,
            salt=self.job_cache.local.store.salt(),
            dependency_cache=self.deps,
            warn=self.warn,
        )

    def close(self) -> None:
        """Persist the stat cache and release connections."""
        try:
            self.stat_cache.save()
        except OSError as exc:
            self.warn(f"could not save the stat cache ({exc})")
        try:
            self.job_cache.close()
        except OSError as exc:  # e.g. a full disk: the cache's event log is an optimisation
            self.warn(f"could not close the cache cleanly ({exc.strerror or exc})")


def open_cache_stack(options: RunOptions, home: Path, observer: RunObserver | None) -> CacheStack:
    """The run's cache stack; warnings go to the observer."""
    return CacheStack(options, home, warner(observer))


@dataclass
class StackContext:
    """What the wrappers of one run are made from (the orchestrator's side of a job)."""

    plan: Plan
    project: Path
    history: History
    run_started: float
    #: ``(gate label, branch or "")`` → the gate's data in the latest successful run before this one.
    baselines: Callable[[str, str], dict[str, Any] | None]
    #: Ids of the jobs that failed the run so far (the gates node reports them); filled by the runner.
    failed: Set[str]
    warn: Callable[[str], None]
    info: Callable[[str], None]
    cache: CacheStack | None = None
    strict: bool = False
    #: buildyard's home (``BUILDYARD_HOME``): where the deployment locks are (None: no locks).
    home: Path | None = None
    #: Waits until this run's history writes so far are done (a deployment reads its run's gates).
    written: Callable[[], Awaitable[None]] | None = None
    closers: list[Callable[[], None]] = field(default_factory=list)


def _concurrency(inner: Executor, ctx: StackContext) -> Executor:
    from buildyard.engine.concurrency import ConcurrencyExecutor, job_groups  # noqa: PLC0415

    assert ctx.home is not None  # noqa: S101 - the layer is only added with a home
    return ConcurrencyExecutor(inner, home=ctx.home, groups=job_groups(ctx.plan.instances))


def _deploying(inner: Executor, ctx: StackContext) -> Executor:
    from buildyard.engine.deploying import DeployingExecutor  # noqa: PLC0415 - only with environment:

    locks = ctx.home / "deploy" / "locks" if ctx.home is not None else None
    return DeployingExecutor(
        inner, project=ctx.project, history=ctx.history, locks=locks, written=ctx.written
    )


def _publishing(inner: Executor, ctx: StackContext) -> Executor:
    from buildyard.engine.publishing import PublishingExecutor  # noqa: PLC0415 - only with publish:

    return PublishingExecutor(inner, project=ctx.project, warn=ctx.warn)


def _gating(inner: Executor, ctx: StackContext) -> Executor:
    from buildyard.engine.gating import GatingExecutor, gated_jobs  # noqa: PLC0415 - only with gates

    return GatingExecutor(
        inner,
        project=ctx.project,
        run_started=ctx.run_started,
        jobs=gated_jobs(ctx.plan),
        failed=ctx.failed,
        baselines=ctx.baselines,
    )


def _caching(inner: Executor, ctx: StackContext) -> Executor:
    assert ctx.cache is not None  # noqa: S101 - the layer is only added with a cache
    return ctx.cache.wrap(inner)


def _outputs(inner: Executor, ctx: StackContext) -> Executor:
    from buildyard.engine.outputs import OutputCheckExecutor  # noqa: PLC0415 - only with outputs

    return OutputCheckExecutor(inner, project=ctx.project, warn=ctx.warn, strict=ctx.strict)


def _workspace(inner: Executor, ctx: StackContext) -> Executor:
    from buildyard.engine.workspace import WorkspaceExecutor  # noqa: PLC0415 - only with isolated jobs

    for job in sorted({i.job for i in ctx.plan.instances.values() if i.workspace_auto}):
        ctx.info(
            f"the matrix instances of {job} declare the same outputs: each runs in an isolated "
            f"workspace (set workspace: shared or isolated on {job} to choose)"
        )
    workspaces = WorkspaceExecutor(inner, method=load_settings(ctx.project).workspace_method)
    ctx.closers.append(workspaces.close)
    return workspaces


@dataclass(frozen=True)
class Layer:
    """One wrapper of the stack: its name, whether a run needs it, how it wraps the layer below."""

    name: str
    needed: Callable[[StackContext], bool]
    wrap: Callable[[Executor, StackContext], Executor]


def _any(ctx: StackContext, test: Callable[[Any], bool]) -> bool:
    return any(test(inst) for inst in ctx.plan.instances.values())


#: The wrappers, outermost first (see the module docstring for why this order).
LAYERS: tuple[Layer, ...] = (
    Layer(
        "concurrency",
        lambda c: c.home is not None and _any(c, lambda i: bool(i.concurrency_group)),
        _concurrency,
    ),
    Layer("deploying", lambda c: _any(c, lambda i: i.environment is not None), _deploying),
    Layer("publishing", lambda c: _any(c, lambda i: i.publish is not None), _publishing),
    Layer("gating", lambda c: _any(c, lambda i: bool(i.gates) or i.gate_node), _gating),
    Layer("caching", lambda c: c.cache is not None, _caching),
    Layer("outputs", lambda c: _any(c, lambda i: bool(i.artifacts)), _outputs),
    Layer("workspace", lambda c: _any(c, lambda i: i.workspace == "isolated"), _workspace),
)


@dataclass
class ExecutorStack:
    """The executor a run's scheduler talks to, and what must be closed after the run."""

    executor: Executor
    layers: tuple[str, ...]  # the wrappers present, outermost first, then the backend's name
    closers: list[Callable[[], None]]

    def close(self) -> None:
        """Stop the backend's workers, release workspaces, persist and close the cache."""
        for close in self.closers:
            close()


def build_stack(
    ctx: StackContext,
    *,
    backend: Executor | None = None,
    name: str | None = None,
    registry: ExecutorRegistry = executors,
) -> ExecutorStack:
    """Wrap ``backend`` (else a new executor of backend ``name``, see ``executor_name``) in the
    ``LAYERS`` the plan needs. A backend made here is closed with the stack; a given one is not."""
    chosen, origin = executor_name(name, ctx.project, declared=ctx.plan.executor)
    closers: list[Callable[[], None]] = []
    if backend is None:
        backend = registry.create(chosen, origin=origin)
        close = getattr(backend, "close", None)
        if callable(close):
            closers.append(close)
    else:
        chosen = type(backend).__name__
    executor = backend
    on_cluster = split_target(chosen)[0] in ("dask", "tls")
    if not on_cluster and _any(ctx, lambda i: bool(i.runs_on) and i.runs_on != ("local",)):
        ctx.info("runs_on labels are ignored: no cluster (--executor dask://HOST:PORT), every job runs here")
    present = [layer for layer in LAYERS if layer.needed(ctx)]
    if getattr(backend, "isolates", False):  # it runs every job in a fresh workspace of its own
        present = [layer for layer in present if layer.name != "workspace"]
    for layer in reversed(present):
        executor = layer.wrap(executor, ctx)
    closers.extend(ctx.closers)
    if ctx.cache is not None:
        closers.append(ctx.cache.close)
    return ExecutorStack(executor, (*(layer.name for layer in present), chosen), closers)
