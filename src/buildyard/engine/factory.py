"""Request building: a job instance of the plan → the ``JobRequest`` of one attempt.

The request is plain data (see ``engine.request``): environment, steps, paths, and the specs the
wrappers act on (cache key inputs, publish, deploy, workspace). What only the orchestrator needs
(gate definitions, the history, open caches) stays with the wrappers (``engine.stack``).
"""

from __future__ import annotations

import fnmatch
import functools
import json
import os
import re
from collections.abc import Mapping, Sequence
from hashlib import blake2b
from pathlib import Path
from typing import Any

from buildyard.engine.joblog import log_limit
from buildyard.engine.options import RunOptions, home_dir
from buildyard.engine.request import (
    CacheRequest,
    DependencyCacheRequest,
    DeployRequest,
    JobRequest,
    PublishRequest,
    StepRequest,
    WorkspaceRequest,
)
from buildyard.engine.scheduler import JobSetupError
from buildyard.plan.build import JobInstance, Plan, TriggerContext
from buildyard.spec.models import Pipeline
from buildyard.store.history import RunRecord

UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")

#: What every job sees of the machine's environment in ``env_mode: strict`` (``*`` is a wildcard).
STRICT_BASE_ENV = (
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "LANG", "LANGUAGE", "LC_*", "TZ", "TMPDIR",
    "HOSTNAME", "NO_COLOR", "FORCE_COLOR", "COLORTERM",
)  # fmt: skip


def passed_env(machine: Mapping[str, str], patterns: Sequence[str], *, base: bool = True) -> dict[str, str]:
    """The variables of ``machine`` matching ``patterns`` (plus ``STRICT_BASE_ENV`` when ``base``)."""
    wanted = (*STRICT_BASE_ENV, *patterns) if base else tuple(patterns)
    exact = {p for p in wanted if "*" not in p}
    globs = [p for p in wanted if "*" in p]
    return {k: v for k, v in machine.items() if k in exact or any(fnmatch.fnmatchcase(k, g) for g in globs)}


def _outputs(inst: JobInstance) -> tuple[str, ...]:
    """``inst``'s declared outputs (``artifacts: paths``, relative to its working directory) made
    relative to the project."""
    if not inst.working_directory or not inst.artifacts:
        return tuple(inst.artifacts)
    from buildyard.cache.pathsafe import project_outputs  # noqa: PLC0415 - the cache stack is lazy

    return project_outputs(inst.working_directory, inst.artifacts)


def _report_patterns(gates: Sequence[Any]) -> list[str]:
    """The report file patterns ``gates`` read (relative to where they are evaluated)."""
    return [p for g in gates for p in getattr(g, "report_patterns", ())]


def _project_paths(working_directory: str | None, paths: Sequence[str]) -> tuple[str, ...]:
    """``paths`` relative to a job's working directory made relative to the project."""
    if not working_directory or not paths:
        return tuple(paths)
    from buildyard.cache.pathsafe import project_outputs  # noqa: PLC0415 - the cache stack is lazy

    return project_outputs(working_directory, paths)


def log_name(job_id: str) -> str:
    """A file name for a job instance's log (readable, collision-free)."""
    safe = UNSAFE.sub("_", job_id).strip("_") or "job"
    if safe != job_id:
        safe += "-" + blake2b(job_id.encode(), digest_size=4).hexdigest()
    return safe + ".log"


def run_log_dir(home: Path, pipeline: str, number: int) -> Path:
    """Where the logs of run ``number`` of ``pipeline`` go (readers find a running job's log here)."""
    return home / "logs" / UNSAFE.sub("_", pipeline) / str(number)


class RequestFactory:
    """Turns a job instance into a ``JobRequest`` (environment, working directory, log path)."""

    def __init__(
        self,
        *,
        options: RunOptions,
        pipeline: Pipeline,
        plan: Plan,
        trigger: TriggerContext,
        run: RunRecord,
        secrets: Mapping[str, str],
        log_dir: Path,
    ) -> None:
        self.options = options
        self.plan = plan
        self.keys: dict[str, str] = {}  # cache keys of finished jobs, for their dependents' keys
        #: Final statuses of finished jobs: a job sees those of the jobs it needs (``BUILDYARD_NEEDS``).
        self.statuses: dict[str, str] = {}
        self.published: dict[str, str] = {}  # NAME@VERSION published by finished jobs (deployments)
        self.approvals: dict[str, tuple[str, float]] = {}  # deployment job → (approver, when)
        #: Deployments started without their approval because their version was already live.
        self.unapproved: set[str] = set()
        self.secrets = dict(secrets)
        self.log_dir = log_dir
        self.log_limit = (
            options.log_limit if options.log_limit is not None else log_limit(project=options.project_dir)
        )
        self.mask = tuple(sorted(set(self.secrets.values())))
        declared = {s for job in pipeline.jobs.values() for s in job.secrets}
        self.machine = {
            k: v for k, v in os.environ.items() if k not in declared and not k.startswith("BUILDYARD_")
        }
        #: buildyard's own settings stay out of jobs (a nested buildyard must not inherit them), except
        #: for a job whose ``pass_env`` names one exactly (BUILDYARD_OSV_DB for ``buildyard scan``).
        self.settings = {
            k: v for k, v in os.environ.items() if k not in declared and k.startswith("BUILDYARD_")
        }
        self.strict = plan.env_mode == "strict"
        base = passed_env(self.machine, plan.pass_env) if self.strict else dict(self.machine)
        base.update(plan.variables)
        base.update(
            {
                "CI": "true",
                "BUILDYARD": "true",
                "BUILDYARD_RUN_ID": run.id,
                "BUILDYARD_RUN_NUMBER": str(run.number),
                "BUILDYARD_PIPELINE": pipeline.name,
                "BUILDYARD_EVENT": str(trigger.event),
                "BUILDYARD_COMMIT_SHA": trigger.sha,
                "BUILDYARD_BRANCH": trigger.branch,
                "BUILDYARD_TAG": trigger.tag,
                "BUILDYARD_REF": trigger.ref,
                "BUILDYARD_PROJECT_DIR": str(options.project_dir),
            }
        )
        self.base_env = base
        self.pipeline_file = pipeline.file
        self.not_inputs = _project_relative(Path(pipeline.file), options.project_dir)
        self.home = home_dir(options)

    def _named_settings(self, inst: JobInstance) -> dict[str, str]:
        """The machine's ``BUILDYARD_*`` settings that ``inst``'s or the pipeline's ``pass_env`` names
        exactly (a glob never brings them in)."""
        names = (*self.plan.pass_env, *inst.pass_env)
        return {k: self.settings[k] for k in names if k in self.settings}

    def __call__(self, inst: JobInstance, attempt: int) -> JobRequest:
        """The request of ``attempt`` of ``inst``; raise ``JobSetupError`` when it cannot start."""
        missing = [s for s in inst.secrets if s not in self.secrets]
        if missing:
            raise JobSetupError(f"secret {missing[0]} is not set (export it or put it in --secrets-file)")
        cwd = self.options.project_dir
        if inst.working_directory:
            cwd = cwd / inst.working_directory
            if not cwd.is_dir():
                raise JobSetupError(f"working_directory '{inst.working_directory}' does not exist")
        env = dict(self.base_env)
        if self.strict and inst.pass_env:
            env.update(passed_env(self.machine, inst.pass_env, base=False))
        env.update(self._named_settings(inst))
        env.update({f"MATRIX_{k.upper()}": v for k, v in inst.matrix})
        env.update(inst.env)
        env.update({s: self.secrets[s] for s in inst.secrets})
        env.update(
            {
                "BUILDYARD_JOB": inst.id,
                "BUILDYARD_JOB_NAME": inst.job,
                "BUILDYARD_STAGE": inst.stage or "",
                "BUILDYARD_ATTEMPT": str(attempt),
                # this run's status of each job it needs (a result file they left may be an earlier
                # run's); not part of the cache key, as the other per-run values
                "BUILDYARD_NEEDS": json.dumps(
                    {d: self.statuses.get(d, "") for d in inst.needs}, sort_keys=True
                ),
            }
        )
        return JobRequest(
            own_log=bool(inst.gates or inst.publish),
            publish=self.publish_request(inst),
            deploy=self.deploy_request(inst),
            cache=self.cache_request(inst) if self.options.cache and not inst.gate_node else None,
            run_id=env["BUILDYARD_RUN_ID"],
            job_id=inst.id,
            attempt=attempt,
            steps=tuple(
                StepRequest(
                    name=s.name,
                    shell=inst.shell,
                    script=s.run,
                    env=s.env,
                    timeout=s.timeout,
                    continue_on_error=s.continue_on_error,
                )
                for s in inst.steps
            ),
            env=tuple(env.items()),
            cwd=str(cwd),
            log_path=str(self.log_dir / log_name(inst.id)),
            timeout=inst.timeout,
            mask=self.mask,
            kill_grace=self.options.kill_grace,
            log_limit=self.log_limit,
            output_globs=_outputs(inst),
            workspace=self.workspace_request(inst) if inst.workspace == "isolated" else None,
            project_root=str(self.options.project_dir),
            upstream_outputs=self.upstream_outputs(inst),
            runs_on=inst.runs_on,
            reports=(
                *_project_paths(inst.working_directory, _report_patterns(inst.gates)),
                *self.pipeline_reports,
            ),
            resources=(("cpus", str(inst.cpus)), *((("mem", inst.mem),) if inst.mem else ())),
        )

    @functools.cached_property
    def pipeline_reports(self) -> tuple[str, ...]:
        """The project-relative report patterns of the pipeline's ``gates:`` (any job may write them)."""
        return tuple(
            p for i in self.plan.instances.values() if i.gate_node for p in _report_patterns(i.gates)
        )

    def upstream_outputs(self, inst: JobInstance) -> tuple[str, ...]:
        """The project-relative output patterns of the jobs ``inst`` needs."""
        return tuple(
            p for d in inst.needs if d in self.plan.instances for p in _outputs(self.plan.instances[d])
        )

    def workspace_request(self, inst: JobInstance) -> WorkspaceRequest:
        """Where ``inst`` runs isolated, what it sees of the jobs it needs, where its outputs go."""
        name = log_name(inst.id)[:-4]
        upstream = self.upstream_outputs(inst)
        return WorkspaceRequest(
            root=str(self.home / "work" / self.base_env["BUILDYARD_RUN_NUMBER"] / name),
            project_root=str(self.options.project_dir),
            working_directory=inst.working_directory or "",
            upstream_outputs=upstream,
            dependency_paths=_project_paths(
                inst.working_directory, [p for d in inst.dependency_caches for p in d.paths]
            ),
            outputs_dir=str(self.home / "outputs" / name),
            keep_on_failure=self.options.keep_workspaces,
        )

    def publish_request(self, inst: JobInstance) -> PublishRequest | None:
        """What ``publish:`` pushes for ``inst`` (None without one)."""
        spec = inst.publish
        if spec is None:
            return None
        version = spec.version if isinstance(spec.version, str) else tuple(sorted(spec.version.items()))
        return PublishRequest(
            name=spec.name,
            paths=tuple(spec.paths),
            version=version,
            type=spec.type,
            key=spec.key,
            build_number=int(self.base_env["BUILDYARD_RUN_NUMBER"]),
            event=self.base_env["BUILDYARD_EVENT"],
            pipeline_file=self.pipeline_file,
        )

    def deploy_request(self, inst: JobInstance) -> DeployRequest | None:
        """What ``environment:`` deploys for ``inst`` (None for other jobs)."""
        if inst.environment is None:
            return None
        from buildyard.engine.deploying import deploy_request  # noqa: PLC0415 - only with environment:

        return deploy_request(
            inst,
            plan=self.plan,
            published=self.published,
            pins=self.options.pins,
            approval=self.approvals.get(inst.id),
            dest=self.home
            / "deploy"
            / UNSAFE.sub("_", self.base_env["BUILDYARD_PIPELINE"])
            / self.base_env["BUILDYARD_RUN_NUMBER"]
            / log_name(inst.id)[:-4],
            run_number=int(self.base_env["BUILDYARD_RUN_NUMBER"]),
            force=self.options.force_deploy,
            commit=self.base_env.get("BUILDYARD_COMMIT_SHA", ""),
            unapproved=inst.id in self.unapproved and inst.id not in self.approvals,
        )

    def cache_request(self, inst: JobInstance) -> CacheRequest:
        """What enters ``inst``'s cache key: its definition, declared env, inputs, upstream keys."""
        from buildyard.engine.caching import canonical_definition  # noqa: PLC0415 - cache stack is lazy

        definition = {
            "steps": [
                {
                    "name": s.name,
                    "run": s.run,
                    "env": dict(s.env),
                    "timeout": s.timeout,
                    "continue_on_error": s.continue_on_error,
                }
                for s in inst.steps
            ],
            "shell": inst.shell,
            "working_directory": inst.working_directory or "",
            "matrix": dict(inst.matrix),
            "outputs": list(_outputs(inst)),
        }
        passed = (
            passed_env(self.machine, (*self.plan.pass_env, *inst.pass_env), base=False) if self.strict else {}
        )
        passed.update(self._named_settings(inst))
        spec_env = {
            **self.plan.variables,
            **{f"MATRIX_{k.upper()}": v for k, v in inst.matrix},
            **dict(inst.env),
        }
        declared = {**passed, **spec_env}
        return CacheRequest(
            definition=canonical_definition(definition),
            project_root=str(self.options.project_dir),
            upstream=tuple((d, self.keys.get(d, "")) for d in inst.needs),
            env=tuple(sorted(declared.items())),
            secrets=inst.secrets,
            salted_env=tuple(sorted(set(passed) - set(spec_env))),  # machine values: salted in the key
            inputs=inst.inputs,
            global_inputs=self.plan.cache_inputs,
            key_commands=inst.key_commands,
            job_cache=inst.cached and inst.environment is None,  # deploying is the point of a deployment
            not_inputs=_under(self.not_inputs, inst.working_directory),
            dependency_caches=tuple(
                DependencyCacheRequest(
                    paths=tuple(d.paths),
                    key=d.key if isinstance(d.key, str) else "",
                    key_files=tuple(d.key.files) if not isinstance(d.key, str) else (),
                    prefix=d.key.prefix if not isinstance(d.key, str) else "",
                    restore_keys=tuple(d.restore_keys),
                    policy=d.policy,
                )
                for d in inst.dependency_caches
            ),
        )


def _under(paths: tuple[str, ...], directory: str | None) -> tuple[str, ...]:
    """``paths`` (relative to the project) that lie under ``directory``, relative to it."""
    if not directory or directory in (".", "./"):
        return paths
    prefix = directory.strip("/") + "/"
    return tuple(p[len(prefix) :] for p in paths if p.startswith(prefix))


def _project_relative(path: Path, project: Path) -> tuple[str, ...]:
    """``(path relative to project,)``, or ``()`` when ``path`` is outside it."""
    try:
        return (path.resolve().relative_to(project.resolve()).as_posix(),)
    except (OSError, ValueError):
        return ()
