"""A buildyard ``Pipeline`` as a GitHub Actions workflow document.

Jobs keep buildyard's DAG as ``needs`` (GitHub skips a job whose need was skipped, as buildyard does);
conditions become ``if:`` with the ``github`` context (pipeline variables are the defaults of
repository variables of the same name); a matrix becomes ``strategy.matrix`` with the same
``include``/``exclude`` semantics; retries a loop in each step (GitHub has none); outputs
``actions/upload-artifact``/``download-artifact``; dependency caches ``actions/cache``; a deployment
``environment:`` (its reviewers are set in the repository's settings); ``on:`` GitHub's own; secrets
``${{ secrets.X }}`` in the job's ``env``. A job that needs what only buildyard does runs ``buildyard
run JOB`` instead of its steps. Everything not carried is a note.
"""

from __future__ import annotations

import re
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
    job_timeout,
    minutes,
    note_not_carried,
)
from buildyard.model import When
from buildyard.spec.models import GATES_NODE, DependencyCacheSpec, EventFilter, Job, Pipeline, Step

RUNNER = "ubuntu-latest"
CHECKOUT = "actions/checkout@v4"
STANDARD = {
    "BUILDYARD_COMMIT_SHA": "${{ github.sha }}",
    "BUILDYARD_BRANCH": "${{ " + conditions.GITHUB_VALUES["branch"] + " }}",
    "BUILDYARD_TAG": "${{ " + conditions.GITHUB_VALUES["tag"] + " }}",
    "BUILDYARD_REF": "${{ github.ref }}",
    "BUILDYARD_RUN_NUMBER": "${{ github.run_number }}",
    "BUILDYARD_JOB": "${{ github.job }}",
    "BUILDYARD_PROJECT_DIR": "${{ github.workspace }}",
}
_BAD_ID = re.compile(r"[^A-Za-z0-9_-]")


def job_id(name: str) -> str:
    """A GitHub job id (``^[A-Za-z_][A-Za-z0-9_-]*$``) for a buildyard job name."""
    out = _BAD_ID.sub("_", name)
    return out if re.match(r"[A-Za-z_]", out) else f"_{out}"


def export(pipeline: Pipeline, notes: Notes) -> dict[str, Any]:
    """The workflow document (as plain data) for ``pipeline``; what is not carried goes to ``notes``."""
    deps = dependencies(pipeline)
    doc: dict[str, Any] = {"name": pipeline.name, "on": _on(pipeline, notes)}
    env = {k: _interpolated(None, "variables", v, notes) for k, v in pipeline.variables.items()}
    scripts = "\n".join(s.run for j in pipeline.jobs.values() for s in j.all_steps)
    env.update(buildyard_variables(scripts, STANDARD))
    if "BUILDYARD_PIPELINE" in scripts:
        env["BUILDYARD_PIPELINE"] = pipeline.name
    if env:
        doc["env"] = env
    doc["defaults"] = {"run": {"shell": "bash"}}  # bash --noprofile --norc -eo pipefail: buildyard's shell
    notes.add(
        None,
        "",
        "buildyard's content-addressed job cache has no GitHub equivalent: every job runs "
        f"(use '{BUILDYARD_RUN} JOB' in a job to get it)",
    )
    if pipeline.notify:
        notes.add(None, "notify", "notifications: use GitHub's own notifications")
    if pipeline.deps:
        notes.add(None, "deps", f"dependency policy: checked by '{BUILDYARD_RUN}' only")
    if str(pipeline.env_mode) != "loose" or pipeline.pass_env:
        notes.add(None, "env_mode", "env_mode/pass_env: GitHub jobs see the runner's whole environment")
    if pipeline.cache_inputs:
        notes.add(None, "cache_inputs", "cache_inputs belong to buildyard's job cache")
    jobs: dict[str, Any] = {}
    for name in deps:
        if name == GATES_NODE and name not in pipeline.jobs:
            jobs[job_id(GATES_NODE)] = {
                "runs-on": RUNNER,
                "needs": [job_id(d) for d in deps[name]],
                "steps": [{"uses": CHECKOUT}, {"run": f"{BUILDYARD_RUN} {GATES_NODE}"}],
            }
            notes.add(None, "gates", f"pipeline gates: evaluated by '{BUILDYARD_RUN} {GATES_NODE}'")
            continue
        jobs[job_id(name)] = _job(pipeline, name, pipeline.jobs[name], deps, notes)
    doc["jobs"] = jobs
    return doc


def _interpolated(job: str | None, where: str, value: str, notes: Notes) -> str:
    try:
        return conditions.interpolate_github(value)
    except Untranslatable as exc:
        notes.add(job, where, str(exc))
        return value


def _job(pipeline: Pipeline, name: str, job: Job, deps: dict[str, list[str]], notes: Notes) -> dict[str, Any]:
    needs = deps[name]
    out: dict[str, Any] = {}
    if job_id(name) != name:
        out["name"] = name
    out["runs-on"] = RUNNER
    if job.runs_on and job.runs_on != "local":
        labels = [job.runs_on] if isinstance(job.runs_on, str) else list(job.runs_on)
        out["runs-on"] = ["self-hosted", *labels]
    if needs:
        out["needs"] = [job_id(n) for n in needs]
    condition, guarded = _condition(pipeline, name, job, notes)
    if condition:
        out["if"] = condition
    if job.environment is not None:
        deployment = job.environment
        out["environment"] = {"name": deployment.name, **({"url": deployment.url} if deployment.url else {})}
        if deployment.approval == "required" or job.when is When.MANUAL:
            notes.add(
                name,
                "environment.approval",
                f"approval: add required reviewers to the '{deployment.name}' environment in the "
                "repository's settings (Settings > Environments)",
            )
    elif job.when is When.MANUAL:
        out["environment"] = f"manual-{job_id(name)}"
    timeout = job_timeout(pipeline, job)
    if timeout is not None:
        out["timeout-minutes"] = minutes(timeout)
    if job.allow_failure is True:
        out["continue-on-error"] = True
    elif not isinstance(job.allow_failure, bool) and job.allow_failure.exit_codes:
        out["continue-on-error"] = True
        notes.add(name, "allow_failure.exit_codes", "allowed exit codes: any failure is allowed on GitHub")
    if job.matrix is not None:
        matrix: dict[str, Any] = {k: list(v) for k, v in job.matrix.axes.items()}
        if job.matrix.include:
            matrix["include"] = [dict(e) for e in job.matrix.include]
        if job.matrix.exclude:
            matrix["exclude"] = [dict(e) for e in job.matrix.exclude]
        out["strategy"] = {"fail-fast": False, "matrix": matrix}  # buildyard runs every instance
    env = {k: _interpolated(name, "env", v, notes) for k, v in job.env.items()}
    env.update({s: "${{ secrets." + s + " }}" for s in job.secrets})
    if env:
        out["env"] = env
    directory = job.working_directory or pipeline.defaults.working_directory
    if directory:
        out["defaults"] = {"run": {"working-directory": directory}}
    only = buildyard_only(job)
    steps: list[dict[str, Any]] = [{"uses": CHECKOUT}]
    steps += _downloads(pipeline, ancestors(deps, name))
    caches = job.cache if isinstance(job.cache, list) else []
    steps += [_cache(c) for c in caches if c.policy != "push"]
    if only or guarded:
        if only:
            notes.add(name, "", f"{', '.join(only)}: done by '{BUILDYARD_RUN} {name}' (needs buildyard)")
        # from the project's root, where buildyard.yml is, whatever the job's working directory
        steps.append(
            {"name": f"buildyard run {name}", "run": f"{BUILDYARD_RUN} {name}", "working-directory": "."}
        )
    else:
        steps += [_step(pipeline, name, job, i, s, notes) for i, s in enumerate(job.all_steps)]
    steps += [_cache(c, save=True) for c in caches if c.policy == "push"]
    if job.artifacts.paths:
        steps += _upload(name, job)
    out["steps"] = steps
    note_not_carried(name, job, notes)
    if job.resources.cpus > 1 or job.resources.mem:
        notes.add(name, "resources", "resources: choose a larger runner in runs-on")
    return out


def _condition(pipeline: Pipeline, name: str, job: Job, notes: Notes) -> tuple[str | None, bool]:
    """The job's ``if:`` and whether buildyard must decide the condition itself."""
    parts: list[str] = []
    guarded = False
    if job.if_ is not None:
        try:
            parts.append(conditions.to_github(job.if_, pipeline.variables))
        except Untranslatable as exc:
            notes.add(name, "if", f"condition {job.if_!r} ({exc}): decided by '{BUILDYARD_RUN} {name}'")
            guarded = True
    when = job.when
    status = {When.ON_FAILURE: "failure()", When.ALWAYS: "always()"}.get(when)
    if when is When.MANUAL and job.environment is None:
        notes.add(
            name,
            "when",
            f"a manual job: it deploys to the environment 'manual-{job_id(name)}'; add required reviewers "
            "to it in the repository's settings so that the job waits for someone to start it",
        )
    if status:
        parts.insert(0, status)
    if not parts:
        return None, guarded
    if len(parts) == 1:
        return parts[0], guarded
    return " && ".join(f"({p})" for p in parts), guarded


def _retry_script(run: str, job: Job) -> str:
    """The step's script retried like buildyard retries the job (exponential backoff, exit codes)."""
    retry = job.retry
    codes = " ".join(str(c) for c in retry.when if isinstance(c, int))
    check = f'case " {codes} " in *" $code "*) ;; *) exit "$code";; esac\n' if codes else ""
    delimiter = "BUILDYARD_STEP_EOF"
    while delimiter in run:
        delimiter += "_"
    return (
        f'script="$(mktemp)"\ncat > "$script" <<\'{delimiter}\'\n{run.rstrip()}\n{delimiter}\n'
        f"attempt=0; delay={retry.backoff:g}\n"
        f'until bash -eo pipefail "$script"; do\n'
        f"  code=$?; attempt=$((attempt + 1))\n"
        f'  if [ "$attempt" -gt {retry.max} ]; then exit "$code"; fi\n'
        f"  {check}"
        f'  echo "attempt $attempt failed (exit $code); retrying in ${{delay}}s"\n'
        f'  sleep "$delay"; delay=$(awk "BEGIN {{d = $delay * 2; print (d > {retry.max_backoff:g}) '
        f'? {retry.max_backoff:g} : d}}")\n'
        "done\n"
    )


def _step(pipeline: Pipeline, name: str, job: Job, i: int, step: Step, notes: Notes) -> dict[str, Any]:
    run = _interpolated(name, f"steps.{i}", step.run, notes)
    if job.retry.max > 0:
        run = _retry_script(run, job)
        if len(job.all_steps) > 1:
            notes.add(name, "retry", "retry: each step is retried on its own (buildyard retries the job)")
    out: dict[str, Any] = {}
    if step.name:
        out["name"] = step.name
    out["run"] = run
    shell = job.shell or (pipeline.defaults.shell if pipeline.defaults.shell != "bash -eo pipefail" else None)
    if shell and shell != "bash -eo pipefail":
        out["shell"] = f"{shell} {{0}}"
    if step.env:
        out["env"] = {k: _interpolated(name, f"steps.{i}.env", v, notes) for k, v in step.env.items()}
    if step.timeout is not None:
        out["timeout-minutes"] = minutes(step.timeout)
    if step.continue_on_error:
        out["continue-on-error"] = True
    return out


def _cache_key(cache: DependencyCacheSpec) -> str:
    if isinstance(cache.key, str):
        return _interp_safe(cache.key)
    files = ", ".join("'" + f.replace("'", "''") + "'" for f in cache.key.files)
    prefix = f"{_interp_safe(cache.key.prefix)}-" if cache.key.prefix else ""
    return f"{prefix}${{{{ runner.os }}}}-${{{{ hashFiles({files}) }}}}"


def _interp_safe(text: str) -> str:
    try:
        return conditions.interpolate_github(text)
    except Untranslatable:
        return text


def _cache(cache: DependencyCacheSpec, *, save: bool = False) -> dict[str, Any]:
    action = {"pull": "actions/cache/restore@v4", "push": "actions/cache/save@v4"}.get(
        cache.policy, "actions/cache@v4"
    )
    with_: dict[str, Any] = {"path": "\n".join(cache.paths), "key": _cache_key(cache)}
    if cache.restore_keys and not save:
        with_["restore-keys"] = "\n".join(cache.restore_keys)
    return {"uses": action, "with": with_}


def _artifact_name(name: str, job: Job) -> str:
    if job.matrix is None:
        return name
    return f"{name}-${{{{ strategy.job-index }}}}"


def _upload(name: str, job: Job) -> list[dict[str, Any]]:
    marker = f".buildyard-outputs-{job_id(name)}"
    # the marker at the root keeps the paths as they are (upload-artifact strips their common prefix)
    return [
        {"run": f"touch {marker}"},
        {
            "uses": "actions/upload-artifact@v4",
            "with": {
                "name": f"outputs-{_artifact_name(job_id(name), job)}",
                "path": "\n".join([marker, *job.artifacts.paths]),
                "include-hidden-files": True,
            },
        },
    ]


def _downloads(pipeline: Pipeline, needs: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for need in needs:
        other = pipeline.jobs.get(need)
        if other is None or not other.artifacts.paths:
            continue
        out.append(
            {
                "uses": "actions/download-artifact@v4",
                "with": {"pattern": f"outputs-{job_id(need)}*", "merge-multiple": True},
            }
        )
    return out


# -- on: --


def _filter(flt: EventFilter, notes: Notes, what: str) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    for key in ("branches", "branches_ignore", "tags", "tags_ignore", "paths", "paths_ignore"):
        value = getattr(flt, key)
        if value is not None:
            out[key.replace("_", "-")] = list(value)
    return out or None


def _on(pipeline: Pipeline, notes: Notes) -> dict[str, Any]:
    on = pipeline.on
    if on is None:
        return {"push": None, "pull_request": None}
    out: dict[str, Any] = {}
    if on.push is not None:
        out["push"] = _filter(on.push, notes, "push")
    if on.pull_request is not None:
        out["pull_request"] = _filter(on.pull_request, notes, "pull_request")
    if on.schedule:
        out["schedule"] = [{"cron": s.cron} for s in on.schedule]
        for i, sched in enumerate(on.schedule):
            if sched.timezone != "UTC":
                notes.add(None, f"on.schedule.{i}.timezone", f"time zone {sched.timezone}: GitHub uses UTC")
    if on.manual is not None:
        inputs: dict[str, Any] = {}
        for input_name, spec in (on.manual.inputs if on.manual else {}).items():
            entry: dict[str, Any] = {"type": str(spec.type)}
            if spec.description:
                entry["description"] = spec.description
            if spec.required:
                entry["required"] = True
            if spec.default is not None:
                entry["default"] = spec.default
            if spec.options:
                entry["options"] = list(spec.options)
            inputs[input_name] = entry
        out["workflow_dispatch"] = {"inputs": inputs} if inputs else None
    return out
