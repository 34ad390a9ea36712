"""A buildyard ``Pipeline`` as a ``.gitlab-ci.yml`` document.

Stages come from each job's depth in buildyard's DAG and every job lists its ``needs`` (``needs: []``
for the first ones), so GitLab starts jobs exactly when buildyard would. Conditions become ``rules: -
if:`` with ``CI_*`` variables; a job is also left out when a job it waits for is left out by its own
condition (buildyard skips it; GitLab would refuse a ``needs`` on a missing job). Matrices become
``parallel: matrix`` (expanded, so ``include``/``exclude`` are honoured), approval a blocking manual
job, dependency caches ``cache:`` with ``key: files``, ``on:`` ``workflow: rules``. A job that needs
what only buildyard does (gates, publishing, a deployment's health check, a condition GitLab cannot
express) runs ``buildyard run JOB`` instead of its script. Everything not carried is a note.
"""

from __future__ import annotations

from typing import Any

from buildyard.exporters import conditions
from buildyard.exporters.conditions import Untranslatable
from buildyard.exporters.shape import (
    BUILDYARD_RUN,
    Notes,
    ancestors,
    buildyard_only,
    buildyard_variables,
    dependencies,
    depths,
    gitlab_duration,
    job_timeout,
    note_not_carried,
    stage_names,
)
from buildyard.graph import topological_order
from buildyard.model import When
from buildyard.plan.build import expand_matrix
from buildyard.spec.filters import compile_pattern
from buildyard.spec.models import GATES_NODE, DependencyCacheSpec, EventFilter, Job, Pipeline

#: GitLab's global keywords: a job of that name is renamed.
RESERVED = frozenset(
    {"image", "services", "stages", "types", "before_script", "after_script", "variables", "cache"}
    | {"include", "default", "workflow", "pages", "spec"}
)
STANDARD = {
    "BUILDYARD_COMMIT_SHA": "$CI_COMMIT_SHA",
    "BUILDYARD_BRANCH": "$CI_COMMIT_BRANCH",
    "BUILDYARD_TAG": "$CI_COMMIT_TAG",
    "BUILDYARD_REF": "$CI_COMMIT_REF_NAME",
    "BUILDYARD_RUN_NUMBER": "$CI_PIPELINE_IID",
    "BUILDYARD_JOB": "$CI_JOB_NAME",
    "BUILDYARD_PROJECT_DIR": "$CI_PROJECT_DIR",
}
_MAX_KEY_FILES = 2  # GitLab's limit on cache:key:files


def job_name(name: str) -> str:
    """The GitLab job name for a buildyard job."""
    return f"{name}-job" if name in RESERVED else name


def export(pipeline: Pipeline, notes: Notes) -> dict[str, Any]:
    """The ``.gitlab-ci.yml`` document (as plain data) for ``pipeline``; what is not carried goes to
    ``notes``."""
    deps = dependencies(pipeline)
    depth = depths(deps)
    names = stage_names(pipeline, depth)
    doc: dict[str, Any] = {}
    workflow = _workflow(pipeline, notes)
    if workflow:
        doc["workflow"] = {"rules": workflow}
    doc["stages"] = [names[d] for d in sorted(names)]
    variables = {k: _variable(v) for k, v in pipeline.variables.items()}
    scripts = "\n".join(s.run for j in pipeline.jobs.values() for s in j.all_steps)
    variables.update(buildyard_variables(scripts, STANDARD))
    if "BUILDYARD_PIPELINE" in scripts:
        variables["BUILDYARD_PIPELINE"] = pipeline.name
    if variables:
        doc["variables"] = variables
    _pipeline_notes(pipeline, notes)
    rules = {name: _rule(pipeline, name, job, notes) for name, job in pipeline.jobs.items()}
    conditions_of = _conditions(pipeline, deps, rules)
    for name in depth:
        if name == GATES_NODE and name not in pipeline.jobs:
            doc[job_name(GATES_NODE)] = {
                "stage": names[depth[name]],
                "needs": [job_name(d) for d in deps[name]],
                "script": [f"{BUILDYARD_RUN} {GATES_NODE}"],
            }
            notes.add(None, "gates", f"pipeline gates: evaluated by '{BUILDYARD_RUN} {GATES_NODE}'")
            continue
        job = pipeline.jobs[name]
        doc[job_name(name)] = _job(
            pipeline, name, job, deps, rules[name], conditions_of, names[depth[name]], notes
        )
    return doc


def _variable(value: str) -> str | dict[str, Any]:
    # buildyard does not expand variables in values; GitLab would, unless told not to
    return {"value": value, "expand": False} if "$" in value else value


def _pipeline_notes(pipeline: Pipeline, notes: Notes) -> None:
    notes.add(
        None,
        "",
        "buildyard's content-addressed job cache has no GitLab equivalent: every job runs "
        f"(use '{BUILDYARD_RUN} JOB' in a job to get it)",
    )
    if pipeline.defaults.shell != "bash -eo pipefail":
        notes.add(
            None, "defaults.shell", f"shell {pipeline.defaults.shell!r}: jobs run in the runner's shell"
        )
    if pipeline.notify:
        notes.add(None, "notify", "notifications: configure GitLab's integrations instead")
    if pipeline.deps:
        notes.add(None, "deps", f"dependency policy: checked by '{BUILDYARD_RUN}' only")
    if str(pipeline.env_mode) != "loose" or pipeline.pass_env:
        notes.add(None, "env_mode", "env_mode/pass_env: GitLab jobs see the runner's whole environment")
    if pipeline.cache_inputs:
        notes.add(None, "cache_inputs", "cache_inputs belong to buildyard's job cache")


def _rule(pipeline: Pipeline, name: str, job: Job, notes: Notes) -> str | None:
    """The job's own condition as a GitLab rule (``None``: none, or buildyard decides it)."""
    if job.if_ is None:
        return None
    try:
        return conditions.to_gitlab(job.if_)
    except Untranslatable as exc:
        notes.add(name, "if", f"condition {job.if_!r} ({exc}): decided by '{BUILDYARD_RUN} {name}'")
        return None


def _job(
    pipeline: Pipeline,
    name: str,
    job: Job,
    deps: dict[str, list[str]],
    rule: str | None,
    conditions_of: dict[str, str | None],
    stage: str,
    notes: Notes,
) -> dict[str, Any]:
    # outputs of every job before it, as buildyard's shared workspace has them (GitLab passes the
    # artifacts of the needed jobs only)
    producers = [a for a in ancestors(deps, name) if a not in deps[name] and _produces(pipeline, a)]
    optional = job.when in (When.ALWAYS, When.ON_FAILURE)
    out: dict[str, Any] = {
        "stage": stage,
        "needs": [
            {"job": job_name(d), "optional": True} if optional and conditions_of[d] else job_name(d)
            for d in [*deps[name], *producers]
        ],
    }
    guarded = job.if_ is not None and rule is None
    only = buildyard_only(job)
    if guarded or only:
        if only:
            notes.add(name, "", f"{', '.join(only)}: done by '{BUILDYARD_RUN} {name}' (needs buildyard)")
        out["script"] = [f"{BUILDYARD_RUN} {name}"]
    else:
        out["script"] = _script(pipeline, name, job, notes)
    env = {k: _env_value(name, v, notes) for k, v in job.env.items()}
    if env:
        out["variables"] = env
    for secret in job.secrets:
        notes.add(
            name,
            "secrets",
            f"secret {secret}: define it as a masked CI/CD variable (Settings > CI/CD > Variables)",
        )
    when = job.when
    approval = job.environment is not None and job.environment.approval == "required"
    if approval:
        when = When.MANUAL
    condition = conditions_of[name]
    if condition:
        entry: dict[str, Any] = {"if": condition}
        if when is not When.ON_SUCCESS:
            entry["when"] = str(when)
        out["rules"] = [entry]
    elif when is not When.ON_SUCCESS:
        out["when"] = str(when)
    if approval:
        out["allow_failure"] = False  # a blocking manual job: the pipeline waits for the approval
    elif isinstance(job.allow_failure, bool):
        if job.allow_failure:
            out["allow_failure"] = True
    elif job.allow_failure.exit_codes:
        out["allow_failure"] = {"exit_codes": list(job.allow_failure.exit_codes)}
    timeout = job_timeout(pipeline, job)
    if timeout is not None:
        out["timeout"] = gitlab_duration(timeout)
    _retry(name, job, out, notes)
    _matrix(job, out, name, notes)
    _artifacts(job, out)
    if isinstance(job.cache, list):
        out["cache"] = [_cache(name, c, notes) for c in job.cache]
    _environment(name, job, out, notes)
    if job.runs_on and job.runs_on != "local":
        out["tags"] = [job.runs_on] if isinstance(job.runs_on, str) else list(job.runs_on)
    note_not_carried(name, job, notes)
    if job.resources.cpus > 1 or job.resources.mem:
        notes.add(name, "resources", "resources: pick a runner of that size with tags")
    return out


def _produces(pipeline: Pipeline, name: str) -> bool:
    job = pipeline.jobs.get(name)
    return job is not None and bool(job.artifacts.paths)


def _conditions(
    pipeline: Pipeline, deps: dict[str, list[str]], rules: dict[str, str | None]
) -> dict[str, str | None]:
    """Each job's rule and those of the jobs it waits for: buildyard skips a job whose dependency
    was skipped (GitLab would refuse a ``needs`` on a job its rules left out), except a job that runs
    ``always``/``on_failure``, which keeps only its own rule and needs those jobs optionally."""
    parts: dict[str, list[str]] = {}
    for name in topological_order({k: list(v) for k, v in deps.items()}):
        own = [r] if (r := rules.get(name)) else []
        job = pipeline.jobs.get(name)
        if job is not None and job.when in (When.ALWAYS, When.ON_FAILURE):
            parts[name] = own
        else:
            parts[name] = list(dict.fromkeys([*own, *(p for d in deps[name] for p in parts[d])]))
    return {
        name: (" && ".join(f"({p})" if "||" in p else p for p in kept) if len(kept) > 1 else kept[0])
        if kept
        else None
        for name, kept in parts.items()
    }


def _env_value(name: str, value: str, notes: Notes) -> str | dict[str, Any]:
    try:
        return _variable(conditions.interpolate_gitlab(value))
    except Untranslatable as exc:
        notes.add(name, "env", str(exc))
        return _variable(value)


def _script(pipeline: Pipeline, name: str, job: Job, notes: Notes) -> list[str]:
    lines: list[str] = []
    directory = job.working_directory or pipeline.defaults.working_directory
    if directory:
        lines.append(f"cd {_quote(directory)}")
    if job.shell and job.shell != pipeline.defaults.shell:
        notes.add(name, "shell", f"shell {job.shell!r}: the script runs in the runner's shell")
    for i, step in enumerate(job.all_steps):
        try:
            run = conditions.interpolate_gitlab(step.run)
        except Untranslatable as exc:
            notes.add(name, f"steps.{i}", str(exc))
            run = step.run
        if step.timeout is not None:
            notes.add(name, f"steps.{i}.timeout", "a step's timeout: GitLab times out the whole job only")
        if step.env or step.continue_on_error:
            exports = "".join(f"export {k}={_quote(v)}\n" for k, v in step.env.items())
            body = f"(\n{exports}{run.rstrip()}\n)"
            if step.continue_on_error:
                body += f" || echo 'step {i + 1} failed (continue_on_error)'"
            lines.append(body)
        else:
            lines.append(run.rstrip("\n"))
    return lines


def _quote(value: str) -> str:
    return "'" + value.replace("'", "'\"'\"'") + "'"


def _retry(name: str, job: Job, out: dict[str, Any], notes: Notes) -> None:
    retry = job.retry
    if retry.max <= 0:
        return
    if retry.max > 2:
        notes.add(name, "retry.max", f"retry max {retry.max}: GitLab retries at most 2 times")
    entry: dict[str, Any] = {"max": min(retry.max, 2)}
    codes = [c for c in retry.when if isinstance(c, int)]
    if "timeout" in retry.when:
        entry["when"] = ["job_execution_timeout", *(["script_failure"] if codes else [])]
    if codes:
        entry["exit_codes"] = codes
    out["retry"] = entry if len(entry) > 1 else entry["max"]
    if retry.backoff != 1.0 or retry.max_backoff != 60.0:
        notes.add(name, "retry.backoff", "retry backoff: GitLab retries at once")


def _matrix(job: Job, out: dict[str, Any], name: str, notes: Notes) -> None:
    if job.matrix is None:
        return
    combos = expand_matrix(job)
    if not combos:
        notes.add(name, "matrix", "the matrix has no combination: the job is left out")
        out["rules"] = [{"when": "never"}]
        return
    out["parallel"] = {"matrix": [dict(c) for c in combos]}


def _artifacts(job: Job, out: dict[str, Any]) -> None:
    paths = [p for p in job.artifacts.paths if not p.startswith("!")]
    exclude = [p[1:] for p in job.artifacts.paths if p.startswith("!")]
    if paths:
        out["artifacts"] = {"paths": paths, **({"exclude": exclude} if exclude else {})}


def _cache(name: str, cache: DependencyCacheSpec, notes: Notes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(cache.key, str):
        out["key"] = cache.key
    else:
        files = list(cache.key.files)
        if len(files) > _MAX_KEY_FILES:
            notes.add(
                name,
                "cache.key.files",
                f"GitLab keys a cache on at most {_MAX_KEY_FILES} files: "
                f"{', '.join(files[_MAX_KEY_FILES:])} not in the key",
            )
            files = files[:_MAX_KEY_FILES]
        out["key"] = {"files": files, **({"prefix": cache.key.prefix} if cache.key.prefix else {})}
    out["paths"] = list(cache.paths)
    if cache.policy != "pull-push":
        out["policy"] = cache.policy
    if cache.restore_keys:
        out["fallback_keys"] = list(cache.restore_keys)[:5]
    return out


def _environment(name: str, job: Job, out: dict[str, Any], notes: Notes) -> None:
    env = job.environment
    if env is None:
        return
    out["environment"] = {"name": env.name, **({"url": env.url} if env.url else {})}
    if env.approval == "required":
        notes.add(name, "environment.approval", "approval: a manual job someone starts in GitLab")
    if env.artifact:
        notes.add(name, "environment.artifact", "the deployed artifact comes from the job's needs")


# -- on: -> workflow: rules --


def _regex(patterns: list[str]) -> str:
    return "/" + "|".join(f"(?:{compile_pattern(p).pattern})" for p in patterns).replace("/", "\\/") + "/"


def _filter_rules(source: str, base: str, flt: EventFilter, notes: Notes, what: str) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    refs: list[tuple[str, str]] = []  # (variable, condition)
    branch_var = "$CI_COMMIT_BRANCH" if source == "push" else "$CI_MERGE_REQUEST_TARGET_BRANCH_NAME"
    for key, var in (("branches", branch_var), ("tags", "$CI_COMMIT_TAG")):
        if key == "tags" and source != "push":
            continue
        given: list[str] | None = getattr(flt, key)
        ignored: list[str] | None = getattr(flt, f"{key}_ignore")
        if given is not None and any(p.startswith("!") for p in given):
            notes.add(None, f"on.{what}.{key}", f"'!' patterns in {key}: not carried")
            given = [p for p in given if not p.startswith("!")]
        if given is not None:
            refs.append((var, f"{var} =~ {_regex(given)}"))
        elif ignored is not None:
            refs.append((var, f"{var} !~ {_regex(ignored)}"))
    if not refs:
        refs = [("", base)]
    changes = None
    if flt.paths is not None:
        changes = [p for p in flt.paths if not p.startswith("!")]
    elif flt.paths_ignore is not None:
        notes.add(None, f"on.{what}.paths_ignore", "paths_ignore: GitLab rules have no negated changes")
    for var, cond in refs:
        text = cond if var == "" else f"{base} && {cond}"
        rule: dict[str, Any] = {"if": text}
        if changes:
            rule["changes"] = changes
        rules.append(rule)
    return rules


def _workflow(pipeline: Pipeline, notes: Notes) -> list[dict[str, Any]]:
    on = pipeline.on
    if on is None:
        return []
    rules: list[dict[str, Any]] = []
    if on.push is not None:
        rules += _filter_rules("push", '$CI_PIPELINE_SOURCE == "push"', on.push, notes, "push")
    if on.pull_request is not None:
        rules += _filter_rules(
            "merge_request_event",
            '$CI_PIPELINE_SOURCE == "merge_request_event"',
            on.pull_request,
            notes,
            "pull_request",
        )
    if on.schedule:
        rules.append({"if": '$CI_PIPELINE_SOURCE == "schedule"'})
        for i, sched in enumerate(on.schedule):
            notes.add(
                None,
                f"on.schedule.{i}",
                f"schedule {sched.cron!r} ({sched.timezone}): "
                "create it in GitLab (Build > Pipeline schedules)",
            )
    if on.manual is not None:
        rules.append({"if": '$CI_PIPELINE_SOURCE == "web"'})
        if on.manual.inputs:
            notes.add(
                None, "on.manual.inputs", "manual inputs: set them as variables when running the pipeline"
            )
    return rules
