"""The step runner of converted GitHub Actions jobs: ``python -m buildyard.importers.github_steps``.

A converted job's only buildyard step runs this module with the GitHub job as JSON on stdin (written
by ``buildyard.importers.github_job``; see ``buildyard.importers.github`` for the design). It gives
the steps GitHub's semantics, inside the job's process (so the engine's timeout, cancellation and
log capture apply to it as to any job):

- the job's ``if`` when it reads ``needs`` (results and outputs of the jobs it needs: their status in
  this run from ``BUILDYARD_NEEDS``, then their result files when they ran or were restored in this
  run); a false condition ends the job at once, without running a step, with ``SKIP_EXIT`` (the
  converted job's ``skip_exit_codes``: the engine records it skipped);
- ``env`` of the workflow, the job and each step (expressions evaluated), then ``$GITHUB_ENV``
  (``NAME=value`` and ``NAME<<DELIMITER`` blocks) and ``$GITHUB_PATH`` carried to later steps;
  ``$GITHUB_OUTPUT`` as ``steps.<id>.outputs``; ``$GITHUB_STEP_SUMMARY`` printed at the end;
- step ``if`` (default ``success()``), ``continue-on-error`` (outcome vs conclusion),
  ``timeout-minutes`` (the step's process group is killed), ``shell`` (bash, sh, python or a
  ``cmd {0}`` template) and ``working-directory`` (step, then ``defaults.run``);
- ``uses:`` local composite actions and the native actions of ``github_actions``; any other action
  fails the step, naming it (nothing is downloaded);
- ``strategy``: with ``fail-fast``, a failed combination makes the ones not yet finished fail at their
  next step; ``max-parallel`` bounds the combinations running at once (a lock file per slot);
- the job's ``outputs`` and result written to ``.buildyard-github/results/<job>.json`` (a declared
  output of the job), the exit status 1 when the job failed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from buildyard.errors import BuildyardError
from buildyard.importers import github_expr as gx
from buildyard.importers.github_context import (
    SKIP_EXIT,
    STATE_DIR,
    github_context,
    result_path,
    runner_context,
    safe_name,
)

#: Most bytes read from one env file a step wrote ($GITHUB_OUTPUT, $GITHUB_ENV...): GitHub's 1 MiB.
MAX_FILE = 1024 * 1024
#: Most bytes of a job's JSON on stdin.
MAX_SPEC = 16 * 1024 * 1024
#: Deepest nesting of composite actions (GitHub's limit is 10).
MAX_COMPOSITE_DEPTH = 10
KILL_GRACE = 5.0


class StepFailure(BuildyardError):
    """A step cannot run (bad expression, missing tool, unknown action): the message says why, in the
    job's log; the step fails (never a traceback)."""


def parse_env_file(text: str) -> dict[str, str]:
    """``NAME=value`` lines and ``NAME<<DELIMITER`` … ``DELIMITER`` blocks, in order."""
    out: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i].rstrip("\r")
        i += 1
        if not line.strip():
            continue
        eq, heredoc = line.find("="), line.find("<<")
        if heredoc > 0 and (eq < 0 or heredoc < eq):
            name, delimiter = line[:heredoc], line[heredoc + 2 :]
            body: list[str] = []
            while i < len(lines) and lines[i].rstrip("\r") != delimiter:
                body.append(lines[i].rstrip("\r"))
                i += 1
            if i >= len(lines):
                raise StepFailure(f"matching delimiter {delimiter!r} not found for {name!r}")
            i += 1
            out[name] = "\n".join(body)
        elif eq > 0:
            out[line[:eq]] = line[eq + 1 :]
        else:
            raise StepFailure(f"invalid line in an environment file: {line[:80]!r} (expected NAME=value)")
    return out


def _read_bounded(path: Path) -> str:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_FILE + 1)
    except FileNotFoundError:
        return ""
    if len(data) > MAX_FILE:
        raise StepFailure(f"{path.name} is larger than {MAX_FILE // 1024} KiB")
    return data.decode("utf-8", "replace")


class Scope:
    """The steps of the job, or of one composite action: their ``steps`` context and ``inputs``."""

    def __init__(
        self, inputs: Mapping[str, Any] | None = None, action_path: str = "", depth: int = 0
    ) -> None:
        self.steps: dict[str, dict[str, Any]] = {}
        self.inputs = dict(inputs) if inputs is not None else None
        self.action_path = action_path
        self.depth = depth
        self.failed = False


class JobRun:
    """One converted job's steps, run with GitHub's semantics."""

    def __init__(self, spec: dict[str, Any], environ: Mapping[str, str]) -> None:
        self.spec = spec
        self.environ = dict(environ)
        self.project = Path(environ.get("BUILDYARD_PROJECT_DIR") or Path.cwd()).resolve()
        run_id = environ.get("BUILDYARD_RUN_ID", "local")
        self.scratch = Path(tempfile.mkdtemp(prefix="buildyard-gh-"))
        self.shared = (
            Path(tempfile.gettempdir())
            / f"buildyard-github-{safe_name(run_id)}"
            / safe_name(str(spec["job"]))
        )
        # GitHub: only a workflow_dispatch run has inputs
        self.inputs = self._inputs() if environ.get("BUILDYARD_EVENT") == "manual" else {}
        github = github_context(
            event=environ.get("BUILDYARD_EVENT", "push"),
            branch=environ.get("BUILDYARD_BRANCH", ""),
            tag=environ.get("BUILDYARD_TAG", ""),
            sha=environ.get("BUILDYARD_COMMIT_SHA", ""),
            workspace=str(self.project),
            repository=self.project.name,
            inputs=self.inputs if environ.get("BUILDYARD_EVENT") == "manual" else None,
            run_id=run_id,
            run_number=environ.get("BUILDYARD_RUN_NUMBER", "0"),
        )
        github["job"] = spec["job"]
        github["workflow"] = spec.get("workflow", "")
        self.github = github
        self.runner = runner_context(str(self.scratch))
        # the job declares the secrets it reads (github_job): the engine put them in the environment
        self.secrets = {n: environ.get(n, "") for n in _secret_names(json.dumps(spec))}
        self.vars = {n: environ.get(n, "") for n in spec.get("vars", [])}
        self.needs = self._needs()
        self.env: dict[str, str] = {}
        self.path_prefix: list[str] = []
        self.summary: list[str] = []
        self.job_status = "success"
        #: The current step's own ``env`` (evaluated): in its ``env`` context.
        self.step_vars: dict[str, str] = {}

    # -- contexts --

    def _inputs(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, spec in (self.spec.get("inputs") or {}).items():
            value: Any = self.environ.get(name, spec.get("default"))
            if spec.get("type") == "boolean":
                value = value if isinstance(value, bool) else str(value).lower() == "true"
            elif value is None:
                value = ""
            out[name] = value
        return out

    def _needs(self) -> dict[str, dict[str, Any]]:
        statuses = _engine_statuses(self.environ.get("BUILDYARD_NEEDS"))
        out: dict[str, dict[str, Any]] = {}
        for job, instances in (self.spec.get("needs") or {}).items():
            results: list[str] = []
            outputs: dict[str, Any] = {}
            for inst in instances:
                one, own = self._need_result(inst, statuses)
                results.append(one)
                outputs.update(own)
            result: str | None = next((r for r in ("failure", "cancelled") if r in results), None)
            if result is None:
                result = "success" if results and all(r == "success" for r in results) else "skipped"
            out[job] = {"result": result, "outputs": outputs if result != "skipped" else {}}
        return out

    def _need_result(self, inst: str, statuses: Mapping[str, str] | None) -> tuple[str, dict[str, str]]:
        """GitHub's result and the outputs of the needed instance ``inst`` in this run.

        The engine's status (``BUILDYARD_NEEDS``) says whether ``inst`` ran in this run: a job it
        skipped or cancelled left no result of this run (a file there is an earlier run's); a job it
        ran wrote its file in this run (stamped with the run's id); a job restored from the cache had
        its file restored in this run.
        """
        status = statuses.get(inst, "") if statuses is not None else None
        if status in ("skipped", "manual", "", "pending"):
            return "skipped", {}
        if status == "cancelled":
            return "cancelled", {}
        path = self.project / result_path(inst)
        try:
            data = json.loads(_read_bounded(path) or "null")
        except (ValueError, StepFailure):
            data = None
        ran = status in ("success", "failed", "timed_out")
        if ran and isinstance(data, dict) and data.get("run") != self.environ.get("BUILDYARD_RUN_ID"):
            data = None  # an earlier run's file: the job did not get to write one in this run
        if not isinstance(data, dict):
            if status is None:
                return "skipped", {}
            return ("success" if status in ("success", "cached") else "failure"), {}
        outputs = data.get("outputs")
        own = {str(k): gx.to_string(v) for k, v in outputs.items()} if isinstance(outputs, dict) else {}
        return str(data.get("result", "failure")), own

    def context(self, scope: Scope, step_env: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Every context a step's expressions may read (``env``: what the workflow, job, ``$GITHUB_ENV``
        and the step itself set, not the machine's environment)."""
        ctx: dict[str, Any] = {
            "github": {**self.github, "action_path": scope.action_path},
            "env": {**self.env, **(step_env or {})},
            "vars": self.vars,
            "secrets": self.secrets,
            "matrix": self.spec.get("matrix") or {},
            "needs": self.needs,
            "steps": scope.steps,
            "job": {"status": self.job_status, "container": {}, "services": {}},
            "runner": self.runner,
            "strategy": self.spec.get("strategy") or {},
            "inputs": scope.inputs if scope.inputs is not None else self.inputs,
        }
        return ctx

    def status_functions(self, scope: Scope) -> dict[str, gx.Function]:
        """``success()`` etc. as a step sees them: by the job's (or composite's) steps so far."""

        def failed() -> bool:
            return scope.failed or self.job_status == "failure"

        return {
            "success": lambda: not failed(),
            "failure": failed,
            "always": lambda: True,
            "cancelled": lambda: False,
            "hashfiles": self.hash_files,
        }

    def hash_files(self, *patterns: Any) -> str:
        """GitHub's ``hashFiles``: SHA-256 over the SHA-256 of each matched file, '' if none match."""
        import glob  # noqa: PLC0415
        import hashlib  # noqa: PLC0415

        included: set[str] = set()
        excluded: set[str] = set()
        for pattern in (gx.to_string(p) for p in patterns):
            target = excluded if pattern.startswith("!") else included
            body = pattern.lstrip("!")
            if body.startswith(("/", "~")) or ".." in Path(body).parts:
                raise StepFailure(f"hashFiles: {body!r} is outside the workspace")
            for match in glob.glob(body, root_dir=self.project, recursive=True, include_hidden=True):  # noqa: PTH207
                if (self.project / match).is_file() and ".git" not in Path(match).parts:
                    target.add(match)
        files = sorted(included - excluded)
        if not files:
            return ""
        total = hashlib.sha256()
        for rel in files:
            digest = hashlib.sha256()
            with (self.project / rel).open("rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
            total.update(digest.digest())
        return total.hexdigest()

    # -- the job --

    def run(self) -> int:
        """Run the job; 0 when it succeeded (or was allowed to fail a step), 1 when it failed,
        ``SKIP_EXIT`` when its ``if`` was false (the converted job declares it in ``skip_exit_codes``)."""
        state = self.project / STATE_DIR
        (state / "results").mkdir(parents=True, exist_ok=True)
        gitignore = state / ".gitignore"
        if not gitignore.exists():
            gitignore.write_text("*\n")
        # a failure until the job says otherwise: a job killed at any instant (its timeout, a cancel)
        # reads as failed to the jobs that need it, as in GitHub
        self.write_result("failure", {}, final=False)
        outputs: dict[str, str] = {}
        try:
            if not self.job_condition():
                self.log(f"job skipped: if: {self.spec['if']} is false")
                self.write_result("skipped", {})
                return SKIP_EXIT
            with self.slot():
                self.job_env()
                self.run_steps(self.spec["steps"], Scope())
            outputs = self.job_outputs()
        except StepFailure as exc:
            self.log(f"::error::{exc}")
            self.job_status = "failure"
        finally:
            shutil.rmtree(self.scratch, ignore_errors=True)
        if self.summary:
            print("--- job summary ---\n" + "".join(self.summary), flush=True)
        if self.job_status != "success" and (self.spec.get("strategy") or {}).get("fail-fast"):
            self.shared.mkdir(parents=True, exist_ok=True)
            (self.shared / "failed").write_text(self.spec["instance"])
        # GitHub: a job that may fail (continue-on-error) is a success for the jobs that need it
        allowed = self.job_status == "failure" and self.spec.get("continue-on-error")
        self.write_result("success" if allowed else self.job_status, outputs)
        return 0 if self.job_status == "success" else 1

    def write_result(self, result: str, outputs: Mapping[str, str], *, final: bool = True) -> None:
        """The job's result file (atomically: a later job never reads half of it); ``final`` is false
        while the job runs."""
        from buildyard.fsutil import atomic_write_text  # noqa: PLC0415

        data: dict[str, Any] = {
            "job": self.spec["job"],
            # the run that wrote it (a job restored from the cache keeps the run that made it)
            "run": self.environ.get("BUILDYARD_RUN_ID", ""),
            "result": result,
            "outputs": dict(outputs),
            "final": final,
        }
        if self.summary:
            data["summary"] = "".join(self.summary)[:MAX_FILE]
        atomic_write_text(
            self.project / result_path(self.spec["instance"]), json.dumps(data, indent=1, sort_keys=True)
        )

    def job_condition(self) -> bool:
        """The job's ``if`` left to run time (it reads ``needs``)."""
        text = self.spec.get("if")
        if not text:
            return True
        results = [n["result"] for n in self.needs.values()]
        fns: dict[str, gx.Function] = {
            "success": lambda: all(r == "success" for r in results),
            "failure": lambda: any(r == "failure" for r in results),
            "always": lambda: True,
            "cancelled": lambda: False,
        }
        if not gx.called(text) & gx.STATUS_FUNCTIONS:
            text = f"success() && ({text})"
        ctx = {"github": self.github, "needs": self.needs, "vars": self.vars, "inputs": self.inputs}
        try:
            return gx.truthy(gx.evaluate(text, ctx, functions=fns))
        except gx.ExprError as exc:
            raise StepFailure(f"job if: {exc}") from None

    def job_env(self) -> None:
        """Workflow then job ``env``, each value's expressions evaluated in order."""
        for layer in self.spec.get("env") or []:
            for name, raw in (layer or {}).items():
                ctx = self.context(Scope())
                try:
                    self.env[str(name)] = gx.to_string(gx.value_of(raw, ctx))
                except gx.ExprError as exc:
                    raise StepFailure(f"env {name}: {exc}") from None

    def job_outputs(self) -> dict[str, str]:
        """The job's ``outputs``, evaluated against its steps."""
        out: dict[str, str] = {}
        scope = self._job_scope
        for name, raw in (self.spec.get("outputs") or {}).items():
            try:
                out[str(name)] = gx.to_string(gx.value_of(raw, self.context(scope)))
            except gx.ExprError as exc:
                raise StepFailure(f"outputs.{name}: {exc}") from None
        return out

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """With ``max-parallel``: hold one of its lock files while the steps run."""
        limit = int((self.spec.get("strategy") or {}).get("max-parallel") or 0)
        if limit <= 0:
            yield
            return
        self.shared.mkdir(parents=True, exist_ok=True)
        while True:
            for i in range(limit):
                fd = os.open(self.shared / f"slot-{i}", os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                try:
                    yield
                finally:
                    os.close(fd)
                return
            time.sleep(0.05)

    # -- steps --

    _job_scope: Scope

    def run_steps(self, steps: list[dict[str, Any]], scope: Scope) -> None:
        """Run ``steps`` in order; the scope records their results."""
        if scope.depth == 0:
            self._job_scope = scope
        for index, step in enumerate(steps):
            self.step(step, index, scope)

    def step(self, step: dict[str, Any], index: int, scope: Scope) -> None:
        """One step: decide its ``if``, run it, record outcome, conclusion and outputs."""
        label = step.get("name") or step.get("uses") or str(step.get("run", "")).split("\n", 1)[0][:60]
        sid = str(step.get("id") or f"__step{index}")
        ctx = self.context(scope)
        if step.get("name"):
            with contextlib.suppress(gx.ExprError):
                label = gx.interpolate(str(step["name"]), ctx)
        fns = self.status_functions(scope)
        cond = step.get("if")
        text = (
            "success()"
            if cond is None
            else (("true" if cond else "false") if isinstance(cond, bool) else gx.strip_wrapper(str(cond)))
        )
        try:
            if not gx.called(text) & gx.STATUS_FUNCTIONS:
                text = f"success() && ({text})"
            run = gx.truthy(gx.evaluate(text, ctx, functions=fns))
        except gx.ExprError as exc:
            self.log(f"::error::step {label} ({step.get('_at', '')}): if: {exc}")
            scope.failed = True
            self.job_status = "failure"
            scope.steps[sid] = {"outcome": "failure", "conclusion": "failure", "outputs": {}}
            return
        if not run:
            self.log(f"--- step skipped: {label}")
            scope.steps[sid] = {"outcome": "skipped", "conclusion": "skipped", "outputs": {}}
            return
        if (self.shared / "failed").exists() and (self.spec.get("strategy") or {}).get("fail-fast"):
            other = (self.shared / "failed").read_text()
            if other != self.spec["instance"]:
                raise StepFailure(f"cancelled: matrix job {other} failed (strategy.fail-fast)")
        self.log(f"--- step: {label}")
        outputs: dict[str, str] = {}
        try:
            ok, outputs = self.execute(step, scope, fns)
        except StepFailure as exc:
            self.log(f"::error::{label} ({step.get('_at', '')}): {exc}")
            ok = False
        try:
            allowed = gx.truthy(gx.value_of(step.get("continue-on-error", False), ctx))
        except gx.ExprError:
            allowed = False
        outcome = "success" if ok else "failure"
        conclusion = "success" if ok or allowed else "failure"
        if not ok and allowed:
            self.log(f"--- step failed, continue-on-error: {label}")
        if conclusion == "failure":
            scope.failed = True
            self.job_status = "failure"
        scope.steps[sid] = {"outcome": outcome, "conclusion": conclusion, "outputs": outputs}

    def step_env(self, step: dict[str, Any], scope: Scope, fns: Mapping[str, gx.Function]) -> dict[str, str]:
        """The environment of a step's process: the job's, GitHub's variables, then the step's env."""
        env = dict(self.environ)
        env.update(
            {
                "CI": "true",
                "GITHUB_ACTIONS": "true",
                "GITHUB_WORKSPACE": str(self.project),
                "GITHUB_SHA": self.github["sha"],
                "GITHUB_REF": self.github["ref"],
                "GITHUB_REF_NAME": self.github["ref_name"],
                "GITHUB_REF_TYPE": self.github["ref_type"],
                "GITHUB_EVENT_NAME": self.github["event_name"],
                "GITHUB_HEAD_REF": self.github["head_ref"],
                "GITHUB_BASE_REF": self.github["base_ref"],
                "GITHUB_JOB": str(self.spec["job"]),
                "GITHUB_RUN_ID": self.github["run_id"],
                "GITHUB_RUN_NUMBER": self.github["run_number"],
                "GITHUB_RUN_ATTEMPT": "1",
                "GITHUB_REPOSITORY": self.github["repository"],
                "GITHUB_REPOSITORY_OWNER": "local",
                "GITHUB_ACTOR": "buildyard",
                "GITHUB_WORKFLOW": self.github["workflow"],
                "GITHUB_SERVER_URL": self.github["server_url"],
                "GITHUB_ACTION": str(step.get("id") or "run"),
                "RUNNER_OS": self.runner["os"],
                "RUNNER_ARCH": self.runner["arch"],
                "RUNNER_TEMP": str(self.scratch),
                "RUNNER_TOOL_CACHE": str(self.scratch),
            }
        )
        if scope.action_path:
            env["GITHUB_ACTION_PATH"] = scope.action_path
        env.update(self.env)
        own: dict[str, str] = {}
        for name, raw in (step.get("env") or {}).items():
            try:
                own[str(name)] = gx.to_string(gx.value_of(raw, self.context(scope, own), functions=fns))
            except gx.ExprError as exc:
                raise StepFailure(f"env {name}: {exc}") from None
        env.update(own)
        self.step_vars = own
        if self.path_prefix:
            env["PATH"] = os.pathsep.join([*reversed(self.path_prefix), env.get("PATH", "")])
        return env

    def execute(
        self, step: dict[str, Any], scope: Scope, fns: Mapping[str, gx.Function]
    ) -> tuple[bool, dict[str, str]]:
        """Run a ``run`` or ``uses`` step; ``(succeeded, outputs)``."""
        if ("run" in step) == ("uses" in step):
            raise StepFailure("a step needs exactly one of 'run' or 'uses'")
        for key in ("env", "with"):
            if not isinstance(step.get(key) or {}, dict):
                raise StepFailure(f"{key} takes a mapping of NAME: value")
        files = {
            name: self.scratch / f"{name.lower()}-{time.monotonic_ns()}"
            for name in ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_PATH", "GITHUB_STEP_SUMMARY")
        }
        for path in files.values():
            path.touch()
        env = self.step_env(step, scope, fns)
        env.update({k: str(v) for k, v in files.items()})
        if "uses" in step:
            from buildyard.importers.github_actions import run_action  # noqa: PLC0415

            ok, outputs = run_action(self, step, scope, env, fns)
        else:
            ok = self.run_script(step, scope, env, fns)
            outputs = {}
        outputs.update(parse_env_file(_read_bounded(files["GITHUB_OUTPUT"])))
        self.env.update(parse_env_file(_read_bounded(files["GITHUB_ENV"])))
        self.path_prefix += [
            line.strip() for line in _read_bounded(files["GITHUB_PATH"]).splitlines() if line.strip()
        ]
        summary = _read_bounded(files["GITHUB_STEP_SUMMARY"])
        if summary:
            self.summary.append(summary if summary.endswith("\n") else summary + "\n")
        return ok, outputs

    def shell_command(self, shell: str | None, script_path: Path) -> list[str]:
        """GitHub's shells on Linux: unset is ``bash -e``; ``bash`` adds ``--noprofile --norc -o
        pipefail``."""
        if shell is None:
            return (
                ["bash", "-e", str(script_path)] if shutil.which("bash") else ["sh", "-e", str(script_path)]
            )
        if shell == "bash":
            return ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script_path)]
        if shell == "sh":
            return ["sh", "-e", str(script_path)]
        if shell == "python":
            return [shutil.which("python") or shutil.which("python3") or sys.executable, str(script_path)]
        if shell in ("pwsh", "powershell", "cmd"):
            if shell == "pwsh" and shutil.which("pwsh"):
                return ["pwsh", "-command", f". '{script_path}'"]
            raise StepFailure(f"shell {shell} is not available on this machine")
        if "{0}" not in shell:
            raise StepFailure(f"unknown shell {shell!r} (bash, sh, python, or a command with {{0}})")
        return [part.replace("{0}", str(script_path)) for part in shlex.split(shell)]

    def run_script(
        self, step: dict[str, Any], scope: Scope, env: dict[str, str], fns: Mapping[str, gx.Function]
    ) -> bool:
        """A ``run`` step in its shell, in its working directory, within its timeout."""
        ctx = self.context(scope, self.step_vars)
        try:
            script = gx.interpolate(str(step["run"]), ctx, functions=fns)
        except gx.ExprError as exc:
            raise StepFailure(str(exc)) from None
        defaults = self.spec.get("defaults") or {}
        shell = step.get("shell") or (defaults.get("shell") if scope.depth == 0 else None)
        suffix = ".py" if shell == "python" else ".sh"
        script_path = self.scratch / f"step-{time.monotonic_ns()}{suffix}"
        script_path.write_text(script)
        workdir = step.get("working-directory") or (
            defaults.get("working-directory") if scope.depth == 0 else None
        )
        cwd = self.project / gx.interpolate(str(workdir), ctx) if workdir else self.project
        if not cwd.is_dir():
            raise StepFailure(f"working-directory {workdir!r} does not exist")
        minutes = step.get("timeout-minutes")
        try:
            timeout = float(gx.value_of(minutes, ctx)) * 60 if minutes is not None else None
        except (TypeError, ValueError, gx.ExprError):
            raise StepFailure(f"timeout-minutes must be a number, not {minutes!r}") from None
        return self.spawn(self.shell_command(shell, script_path), cwd, env, timeout)

    def spawn(self, argv: list[str], cwd: Path, env: dict[str, str], timeout: float | None) -> bool:
        """Run one process in its own process group; kill the group on timeout or when we are stopped."""
        sys.stdout.flush()
        try:
            proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, process_group=0)
        except OSError as exc:
            raise StepFailure(f"cannot start {argv[0]}: {exc.strerror}") from None

        def stop(signum: int, _frame: object) -> None:
            _kill_group(proc)
            raise SystemExit(128 + signum)

        previous = signal.signal(signal.SIGTERM, stop)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.log(
                f"::error::the step timed out after {timeout / 60:g} minutes" if timeout else "timed out"
            )
            _kill_group(proc)
            return False
        finally:
            signal.signal(signal.SIGTERM, previous)
        if proc.returncode != 0:
            self.log(f"::error::Process completed with exit code {proc.returncode}.")
        return proc.returncode == 0

    @staticmethod
    def log(line: str) -> None:
        """One line into the job's log."""
        print(line, flush=True)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=KILL_GRACE)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _engine_statuses(raw: str | None) -> dict[str, str] | None:
    """``BUILDYARD_NEEDS`` (needed job -> its status in this run), ``None`` when unset or unreadable
    (then a result file is taken as found)."""
    if not raw:
        return None
    try:
        data = json.loads(raw[:MAX_FILE])
    except ValueError:
        return None
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else None


def _secret_names(text: str) -> set[str]:
    import re  # noqa: PLC0415

    return {m.group(1) for m in re.finditer(r"secrets\.([A-Za-z_][A-Za-z0-9_]*)", text, re.IGNORECASE)}


def main() -> int:
    """Read the job from stdin, run it, return the exit status."""
    data = sys.stdin.read(MAX_SPEC + 1)
    if len(data) > MAX_SPEC:
        print("buildyard github steps: the job's definition is too large", file=sys.stderr)
        return 2
    try:
        spec = json.loads(data)
    except ValueError as exc:
        print(f"buildyard github steps: the job's definition is not JSON ({exc})", file=sys.stderr)
        return 2
    return JobRun(spec, os.environ).run()


if __name__ == "__main__":
    sys.exit(main())
