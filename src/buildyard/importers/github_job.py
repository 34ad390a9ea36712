"""One GitHub Actions job -> one buildyard job per matrix combination, each running the step runner.

Owns the job keywords: ``needs``, ``if`` (decided now when it reads only ``github``/``vars``/``inputs``
and status functions; by the runner when it reads ``needs``), ``strategy`` (matrix expanded here with
GitHub's ``include``/``exclude``; ``fail-fast`` and ``max-parallel`` applied by the runner across the
combinations), ``continue-on-error`` (``allow_failure``), ``timeout-minutes``, ``outputs``, ``env``,
``defaults.run``, ``environment``, ``services``/``container`` (notes), and which ``uses:`` it can run.
``actions/cache`` becomes the job's dependency cache; ``actions/upload-artifact`` a declared output.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from buildyard.importers import github_expr as gx
from buildyard.importers.github_context import (
    SKIP_EXIT,
    STATE_DIR,
    MatrixError,
    artifact_dir,
    expand_matrix,
    instance_suffix,
    result_path,
    runner_context,
)

if TYPE_CHECKING:
    from buildyard.importers.github import Converter
    from buildyard.spec.yamlpos import Path as FieldPath

JOB_KEYS = frozenset(
    {
        "name",
        "permissions",
        "needs",
        "if",
        "runs-on",
        "environment",
        "concurrency",
        "outputs",
        "env",
        "defaults",
        "steps",
        "timeout-minutes",
        "strategy",
        "continue-on-error",
        "container",
        "services",
        "uses",
        "with",
        "secrets",
    }
)
STEP_KEYS = frozenset(
    {
        "id",
        "if",
        "name",
        "uses",
        "run",
        "working-directory",
        "shell",
        "with",
        "env",
        "continue-on-error",
        "timeout-minutes",
    }
)
#: Actions the runner does natively (owner/name, lower case).
NATIVE_ACTIONS = frozenset(
    {
        "actions/checkout",
        "actions/setup-python",
        "actions/setup-node",
        "actions/setup-go",
        "actions/setup-java",
        "actions/cache",
        "actions/cache/restore",
        "actions/cache/save",
        "actions/upload-artifact",
        "actions/download-artifact",
    }
)
#: Contexts a job-level ``if`` may read (GitHub's table of context availability).
JOB_IF_CONTEXTS = frozenset({"github", "needs", "vars", "inputs"})
_MARK = "\x00HASHFILES\x00"
DELIMITER = "BUILDYARD_GITHUB_JOB"
SECRET = re.compile(r"\bsecrets\.([A-Za-z_][A-Za-z0-9_]*)")
#: Secrets GitHub makes itself: empty in a local run, never required.
UNDECLARED_SECRETS = frozenset({"GITHUB_TOKEN"})
#: The command of a converted job's only step (the job's JSON follows on its stdin).
RUNNER = '"${GITHUB_STEPS_PYTHON:-python3}" -m buildyard.importers.github_steps'


def action_name(uses: str) -> str:
    """``actions/setup-python@v5`` -> ``actions/setup-python`` (lower case)."""
    return uses.split("@", 1)[0].strip().lower()


class JobConverter:
    """Converts every job of a workflow; ``instances`` maps GitHub job ids to buildyard job names."""

    def __init__(
        self, c: Converter, jobs: dict[str, Any], env: dict[str, Any], defaults: dict[str, str]
    ) -> None:
        self.c = c
        self.jobs = jobs
        self.env = env
        self.defaults = defaults
        self.instances: dict[str, list[str]] = {}
        self.combos: dict[str, list[dict[str, Any] | None]] = {}
        self.static = c.static_context()

    def convert(self) -> dict[str, Any]:
        """Every job's instances, in the workflow's order."""
        ok: dict[str, dict[str, Any]] = {}
        taken: set[str] = set()
        for job_id, raw in self.jobs.items():
            path: FieldPath = ("jobs", job_id)
            if not isinstance(raw, dict):
                self.c.problem(path, f"job '{job_id}' must be a mapping with 'runs-on' and 'steps'")
                continue
            if not self.c.unknown_keys(raw, JOB_KEYS, path, f"job '{job_id}'"):
                continue
            combos = self.matrix(job_id, raw)
            if combos is None:
                continue
            names: list[str] = []
            matrix = (
                (raw.get("strategy") or {}).get("matrix") if isinstance(raw.get("strategy"), dict) else None
            )
            axes = (
                tuple(k for k in matrix if k not in ("include", "exclude"))
                if isinstance(matrix, dict)
                else ()
            )
            for combo in combos:
                base = job_id if combo is None else f"{job_id}-{instance_suffix(combo, axes)}"
                name, n = base, 2
                while name in taken or (name != job_id and name in self.jobs):
                    name, n = f"{base}-{n}", n + 1
                taken.add(name)
                names.append(name)
            self.instances[job_id] = names
            self.combos[job_id] = combos
            ok[job_id] = raw
        out: dict[str, Any] = {}
        for job_id, raw in ok.items():
            for index, (name, combo) in enumerate(
                zip(self.instances[job_id], self.combos[job_id], strict=True)
            ):
                job = self.job(job_id, raw, name, combo, index)
                if job is not None:
                    out[name] = job
        return out

    def matrix(self, job_id: str, raw: dict[str, Any]) -> list[dict[str, Any] | None] | None:
        """The job's matrix combinations (``[None]`` without a matrix), or ``None`` after a problem."""
        strategy = raw.get("strategy")
        if strategy is None:
            return [None]
        path: FieldPath = ("jobs", job_id, "strategy")
        if not isinstance(strategy, dict):
            self.c.problem(path, "strategy takes a mapping (matrix, fail-fast, max-parallel)")
            return None
        self.c.unknown_keys(strategy, frozenset({"matrix", "fail-fast", "max-parallel"}), path, "strategy")
        matrix = strategy.get("matrix")
        if matrix is None:
            return [None]
        if isinstance(matrix, str):
            self.c.problem(
                (*path, "matrix"),
                "a matrix computed by an expression cannot be expanded before the run",
                "write the matrix's values in the workflow",
            )
            return None
        if not isinstance(matrix, dict):
            self.c.problem((*path, "matrix"), "matrix takes a mapping of axes (and include/exclude)")
            return None
        try:
            matrix = gx.value_of(matrix, self.static)
            combos = expand_matrix(matrix)
        except (MatrixError, gx.ExprError) as exc:
            self.c.problem((*path, "matrix"), str(exc))
            return None
        if not combos:
            self.c.problem((*path, "matrix"), "the matrix makes no job (everything was excluded)")
            return None
        return list(combos)

    # -- one instance --

    def job(
        self, job_id: str, raw: dict[str, Any], name: str, combo: dict[str, Any] | None, index: int
    ) -> dict[str, Any] | None:
        """One buildyard job for one matrix combination."""
        c = self.c
        path: FieldPath = ("jobs", job_id)
        out_path: FieldPath = ("jobs", name)
        c.locate(out_path, path)
        c.smap.keys[out_path] = c.src.key_pos(path)
        ctx = {**self.static, "matrix": combo or {}}
        needs_raw = raw.get("needs", [])
        needs_list = [needs_raw] if isinstance(needs_raw, str) else needs_raw
        if not isinstance(needs_list, list) or not all(isinstance(n, str) for n in needs_list):
            c.problem((*path, "needs"), "needs takes a job id or a list of job ids")
            return None
        needs: dict[str, list[str]] = {}
        for i, need in enumerate(needs_list):
            if need not in self.jobs:
                close = [n for n in self.jobs if n.lower() == need.lower()]
                c.problem(
                    (*path, "needs", i),
                    f"needs '{need}', which is not a job of this workflow",
                    f"did you mean '{close[0]}'?" if close else "",
                )
                return None
            if need in self.instances:
                needs[need] = self.instances[need]
        job: dict[str, Any] = {}
        display = raw.get("name")
        try:
            shown = gx.interpolate(str(display), ctx) if display is not None else None
        except gx.ExprError as exc:
            c.problem((*path, "name"), str(exc))
            return None
        if combo is not None and shown is None:
            shown = f"{job_id} ({', '.join(gx.to_string(v) for v in combo.values())})"
        if shown:
            job["description"] = shown
        job["needs"] = [inst for names in needs.values() for inst in names]
        c.locate((*out_path, "needs"), (*path, "needs"))
        runtime_if = self.condition(raw, path, out_path, job, ctx, bool(needs))
        if runtime_if is False:
            return None
        steps = raw.get("steps")
        if "uses" in raw:
            c.note((*path, "uses"), f"reusable workflow '{raw['uses']}': not run; the job fails")
            message = f"reusable workflows are not supported: {raw['uses']}"
            job["steps"] = [
                {
                    "name": "uses",
                    "run": f"echo {json.dumps(message)} >&2\nexit 1",
                }
            ]
            return job
        if not isinstance(steps, list) or not steps:
            c.problem(path, f"job '{job_id}' needs 'steps' (a list)", at_key=True)
            return None
        env = raw.get("env", {})
        if not isinstance(env, dict):
            c.problem((*path, "env"), "env takes a mapping of NAME: value")
            return None
        from buildyard.importers.github import _run_defaults  # noqa: PLC0415 - shared helper

        defaults = _run_defaults(raw.get("defaults"))
        if defaults is None:
            c.problem((*path, "defaults"), "defaults takes {run: {shell, working-directory}}")
            return None
        caches: list[dict[str, Any]] = []
        uploads: list[str] = []
        for i, step in enumerate(steps):
            if not self.step(job_id, i, step, ctx, caches, uploads, index == 0):
                return None
        strategy: dict[str, Any] = raw["strategy"] if isinstance(raw.get("strategy"), dict) else {}
        try:
            fail_fast = gx.truthy(gx.value_of(strategy.get("fail-fast", True), ctx))
            max_parallel = gx.value_of(strategy.get("max-parallel", 0), ctx)
            allow = gx.value_of(raw.get("continue-on-error", False), ctx)
            minutes = gx.value_of(raw.get("timeout-minutes"), ctx)
        except gx.ExprError as exc:
            c.problem(path, str(exc))
            return None
        if gx.truthy(allow):
            job["allow_failure"] = True
            c.locate((*out_path, "allow_failure"), (*path, "continue-on-error"))
        if minutes is not None:
            try:
                job["timeout"] = float(minutes) * 60
            except (TypeError, ValueError):
                c.problem((*path, "timeout-minutes"), f"timeout-minutes must be a number, not {minutes!r}")
                return None
            c.locate((*out_path, "timeout"), (*path, "timeout-minutes"))
        self.notes(job_id, raw, index == 0)
        spec = {
            "workflow": self.c.document_name(),
            "file": c.src.file,
            "job": job_id,
            "instance": name,
            "name": shown or job_id,
            "matrix": combo,
            "strategy": {
                "fail-fast": fail_fast,
                "job-index": index,
                "job-total": len(self.instances[job_id]),
                "max-parallel": int(max_parallel)
                if isinstance(max_parallel, int | float) and max_parallel
                else 0,
            },
            "env": [self.env, env],
            "defaults": {**self.defaults, **defaults},
            "steps": [
                {**s, "_at": f"{c.src.file}:{c.src.value_pos(('jobs', job_id, 'steps', i)).line}"}
                for i, s in enumerate(steps)
            ],
            "outputs": raw.get("outputs") or {},
            "needs": needs,
            "if": runtime_if,
            "continue-on-error": gx.truthy(allow),
            "inputs": {
                k: {"type": v.get("type", "string"), "default": v.get("default")}
                for k, v in _inputs(self.c.data).items()
            },
            "vars": sorted(self.c.ctx.variables),
        }
        if not isinstance(spec["outputs"], dict):
            c.problem((*path, "outputs"), "outputs takes a mapping of name: expression")
            return None
        # buildyard interpolates ``${{ }}`` in a step's script: the workflow's own expressions are the
        # runner's, so '{' after '$' is written as its JSON escape (the runner's json.loads restores it).
        body = json.dumps(spec, indent=1, default=str, ensure_ascii=True).replace("${", "$\\u007b")
        job["steps"] = [
            {
                "name": "github-steps",
                "run": f"{RUNNER} <<'{DELIMITER}'\n{body}\n{DELIMITER}",
            }
        ]
        c.locate((*out_path, "steps"), (*path, "steps"))
        paths = [f"{STATE_DIR}/.gitignore", result_path(name), *uploads]
        job["artifacts"] = {"paths": paths}
        if runtime_if is not None:
            # the runner decides the if (it reads needs): false exits SKIP_EXIT, a skipped job
            job["skip_exit_codes"] = [SKIP_EXIT]
            c.locate((*out_path, "skip_exit_codes"), (*path, "if"))
        # secrets the job reads are buildyard secrets: injected by the engine, masked in its log
        secrets = sorted(set(SECRET.findall(body)) - UNDECLARED_SECRETS)
        if secrets:
            job["secrets"] = secrets
        if caches:
            job["cache"] = caches
        return job

    def condition(
        self,
        raw: dict[str, Any],
        path: FieldPath,
        out_path: FieldPath,
        job: dict[str, Any],
        ctx: dict[str, Any],
        has_needs: bool,
    ) -> str | bool | None:
        """Decide the job's ``if``: set ``when``/``if`` in ``job``; return the text the runner decides
        (``None``: nothing left to decide at run time)."""
        c = self.c
        if "if" not in raw:
            return None
        cond = raw["if"]
        text = ("true" if cond else "false") if isinstance(cond, bool) else gx.strip_wrapper(str(cond))
        try:
            names = gx.names(text)
            funcs = gx.called(text)
        except gx.ExprError as exc:
            c.problem((*path, "if"), str(exc))
            return False
        bad = sorted(names - JOB_IF_CONTEXTS)
        if bad:
            c.problem(
                (*path, "if"),
                f"a job's if cannot read '{bad[0]}'",
                "a job's if can read github, needs, vars and inputs",
            )
            return False
        status = funcs & gx.STATUS_FUNCTIONS
        c.locate((*out_path, "when"), (*path, "if"))
        c.locate((*out_path, "if"), (*path, "if"))
        if "needs" in names:
            job["when"] = "always" if status - {"success"} else "on_success"
            return text
        effective = text if status else f"success() && ({text})"

        def world(ok: bool) -> bool:
            fns = {
                "success": lambda: ok,
                "failure": lambda: not ok,
                "always": lambda: True,
                "cancelled": lambda: False,
            }
            return gx.truthy(gx.evaluate(effective, ctx, functions=fns))

        try:
            on_ok = world(True)
            on_fail = world(False) if has_needs else False
        except gx.ExprError as exc:
            c.problem((*path, "if"), str(exc))
            return False
        if on_ok and on_fail:
            job["when"] = "always"
        elif on_fail:
            job["when"] = "on_failure"
        elif not on_ok:
            job["if"] = "false"
        return None

    def step(
        self,
        job_id: str,
        i: int,
        step: Any,
        ctx: dict[str, Any],
        caches: list[dict[str, Any]],
        uploads: list[str],
        first: bool,
    ) -> bool:
        """Check one step; collect its dependency cache and uploaded artifact; False after a problem."""
        c = self.c
        path: FieldPath = ("jobs", job_id, "steps", i)
        if not isinstance(step, dict):
            c.problem(path, "a step is a mapping with 'run' or 'uses'")
            return False
        if not c.unknown_keys(step, STEP_KEYS, path, "a step"):
            return False
        if ("run" in step) == ("uses" in step):
            c.problem(path, "a step needs exactly one of 'run' or 'uses'")
            return False
        for key in ("env", "with"):
            if key in step and not isinstance(step[key], dict):
                c.problem((*path, key), f"{key} takes a mapping of NAME: value")
                return False
        if "run" in step:
            return True
        uses = str(step["uses"])
        name = action_name(uses)
        if uses.startswith("./"):
            folder = (c.ctx.project / uses).resolve()
            if not any((folder / f).is_file() for f in ("action.yml", "action.yaml")):
                c.problem(
                    (*path, "uses"),
                    f"local action '{uses}' has no action.yml",
                    "the path is relative to the repository root",
                )
                return False
            return True
        if name not in NATIVE_ACTIONS:
            if first:
                c.note(
                    (*path, "uses"),
                    f"uses: {uses}: buildyard does not download actions; the job fails at this step",
                )
            return True
        with_ = step.get("with") or {}
        if not isinstance(with_, dict):
            c.problem((*path, "with"), "with takes a mapping of inputs")
            return False
        if name == "actions/cache":
            cache = self.cache(path, with_, ctx, first)
            if cache is not None:
                caches.append(cache)
        elif name == "actions/upload-artifact":
            try:
                artifact = gx.to_string(gx.value_of(with_.get("name", "artifact"), ctx)) or "artifact"
            except gx.ExprError as exc:
                c.problem((*path, "with", "name"), str(exc))
                return False
            uploads.append(artifact_dir(artifact))
        elif name in ("actions/cache/restore", "actions/cache/save") and first:
            c.note(
                (*path, "uses"), f"{name}: done by the job's own cache (restore before, save after success)"
            )
        return True

    def cache(
        self, path: FieldPath, with_: Mapping[str, Any], ctx: dict[str, Any], first: bool
    ) -> dict[str, Any] | None:
        """``actions/cache`` -> a dependency cache of the job (``hashFiles`` -> ``key: {files}``)."""
        c = self.c
        files: list[str] = []

        def hash_files(*patterns: Any) -> str:
            files.extend(gx.to_string(p) for p in patterns)
            return _MARK

        literal_env = {
            k: v for e in (self.env,) for k, v in e.items() if not (isinstance(v, str) and "${{" in v)
        }
        try:
            key = gx.to_string(
                gx.value_of(
                    with_.get("key", ""),
                    {**ctx, "runner": runner_context(), "env": literal_env},
                    functions={"hashfiles": hash_files},
                )
            )
            restore = gx.to_string(
                gx.value_of(
                    with_.get("restore-keys", ""), {**ctx, "runner": runner_context(), "env": literal_env}
                )
            )
        except gx.ExprError as exc:
            if first:
                c.note(
                    (*path, "with", "key"), f"actions/cache key known only at run time ({exc}): not cached"
                )
            return None
        paths = [p.strip() for p in gx.to_string(with_.get("path", "")).splitlines() if p.strip()]
        outside = [p for p in paths if p.startswith(("~", "/", "$")) or ".." in p.split("/")]
        if outside or not paths or not key:
            if first:
                what = f"path {outside[0]!r} is outside the project" if outside else "it needs key and path"
                c.note((*path, "with"), f"actions/cache: {what}: not cached")
            return None
        out: dict[str, Any] = {"paths": paths}
        if _MARK in key:
            prefix = key.replace(_MARK, "")
            out["key"] = {"files": files, "prefix": re.sub(r"[^A-Za-z0-9_.-]+", "-", prefix).strip("-")}
        else:
            out["key"] = key
        keys = [k.strip() for k in restore.splitlines() if k.strip()]
        if keys:
            out["restore_keys"] = keys
        return out

    def notes(self, job_id: str, raw: dict[str, Any], first: bool) -> None:
        """What the job sets that buildyard does not carry (once per job, not per combination)."""
        if not first:
            return
        c = self.c
        path: FieldPath = ("jobs", job_id)
        services = raw.get("services")
        if services:
            shown = ", ".join(str(s) for s in services) if isinstance(services, dict) else str(services)
            c.unsupported(
                (*path, "services"),
                f"services ({shown}) need a container engine: the job runs in the shell without them",
            )
        if raw.get("container"):
            c.unsupported(
                (*path, "container"), "container needs a container engine: the job runs in the shell"
            )
        for key in ("concurrency", "permissions"):
            if key in raw:
                c.note((*path, key), f"{key}: not applied by buildyard")
        environment = raw.get("environment")
        if environment:
            target = environment.get("name") if isinstance(environment, dict) else environment
            c.note(
                (*path, "environment"),
                f"environment '{target}': protection rules and environment secrets are not applied",
            )
        runs_on = raw.get("runs-on")
        text = json.dumps(runs_on, default=str).lower()
        if runs_on is not None and ("windows" in text or "macos" in text):
            c.note((*path, "runs-on"), f"runs-on {text}: runs on this machine")


def _inputs(data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    from buildyard.importers.github import dispatch_inputs  # noqa: PLC0415 - shared helper

    return dispatch_inputs(data)
