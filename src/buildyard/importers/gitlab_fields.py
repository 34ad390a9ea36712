"""The job keywords of GitLab that map field by field: scripts (``after_script`` in its own shell),
``allow_failure``, ``timeout``, ``retry``, ``parallel``, ``artifacts`` (reports become gates), ``cache``,
``environment``, and the notes about keywords buildyard does not carry."""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Mapping
from typing import Any

from buildyard.errors import Diagnostic
from buildyard.importers.gitlab_load import GitLabDocument
from buildyard.importers.gitlab_values import expand, flatten, parse_gitlab_duration, scalar
from buildyard.spec.yamlpos import Path as FieldPath
from buildyard.spec.yamlpos import SourceMap

_BAD_NAME = re.compile(r"[^A-Za-z0-9_.-]+")
_ENV_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
#: GitLab's limit of jobs one ``parallel`` makes.
MAX_PARALLEL = 200


class FieldConverter:
    """Converts one job's fields, collecting located problems (errors) and notes (not carried)."""

    def __init__(self, doc: GitLabDocument, *, strict: bool = False) -> None:
        self.doc = doc
        self.strict = strict
        self.smap = SourceMap(doc.main.file)
        self.problems: list[Diagnostic] = []
        self.notes: list[Diagnostic] = []
        self.names: dict[str, str] = {}

    def problem(
        self, key: str, sub: FieldPath, message: str, hint: str = "", *, at_key: bool = False
    ) -> None:
        """Record an error located at ``key``'s field ``sub``."""
        self.problems.append(self.doc.diag(key, sub, message, hint, at_key=at_key))

    def note(self, key: str, sub: FieldPath, message: str) -> None:
        """Record something GitLab would honour that buildyard does not carry."""
        self.notes.append(self.doc.diag(key, sub, message))

    def locate(self, out: FieldPath, key: str, sub: FieldPath = ()) -> None:
        """Map the converted path ``out`` to where ``key``'s field ``sub`` was written."""
        self.smap.values[out] = self.doc.pos(key, sub)
        self.smap.keys[out] = self.doc.key_pos(key, sub)

    # -- the trigger's variables --

    def name_for(self, name: str) -> str:
        """The buildyard name of GitLab job ``name`` (invalid characters become '-'), noted."""
        if name in self.names:
            return self.names[name]
        out = _BAD_NAME.sub("-", name).strip("-.") or "job"
        taken = set(self.names.values())
        candidate, n = out, 2
        while candidate in taken or (candidate != name and candidate in self.doc.data):
            candidate, n = f"{out}-{n}", n + 1
        self.names[name] = candidate
        if candidate != name:
            self.note(
                name,
                (),
                f"job '{name}' is named '{candidate}' in buildyard "
                "(names allow only letters, digits, '_', '-', '.')",
            )
        return candidate

    def script(self, name: str, job: dict[str, Any]) -> str | None:
        """``before_script`` + ``script`` as one shell text (nested lists flattened)."""
        if "script" not in job:
            self.problem(
                name,
                (),
                f"job '{name}' has no script",
                "add 'script:' (or start its name with '.' to make it a template)",
            )
            return None
        lines: list[str] = []
        for key in ("after_script",):
            items = flatten(job.get(key) or [])
            if not all(isinstance(i, str | int | float) and not isinstance(i, bool) for i in items):
                self.problem(name, (key,), f"{key} takes a command or a list of commands")
                return None
        for key in ("before_script", "script"):
            value = job.get(key)
            if value is None:
                continue
            items = flatten(value)
            if not all(isinstance(i, str | int | float) and not isinstance(i, bool) for i in items):
                self.problem(name, (key,), f"{key} takes a command or a list of commands")
                return None
            lines += [str(i) for i in items]
        if not any(line.strip() for line in lines):
            self.problem(name, ("script",), "script is empty")
            return None
        return "\n".join(lines)

    def body(self, script: str, after: Any, name: str) -> str:
        """The job's commands; with ``after_script``, that runs in its own shell whatever the outcome."""
        if after is None or flatten(after) == []:
            return script
        after_text = "\n".join(str(i) for i in flatten(after))
        return "\n".join(
            [
                "by_status=0",
                f"bash -eo pipefail -c {shlex.quote(script)} || by_status=$?",
                'CI_JOB_STATUS=success; [ "$by_status" = 0 ] || CI_JOB_STATUS=failed; export CI_JOB_STATUS',
                f"bash -eo pipefail -c {shlex.quote(after_text)} "
                '|| echo "after_script exited with $? (ignored, as in GitLab)" >&2',
                'exit "$by_status"',
            ]
        )

    def allow_failure_codes(self, name: str, value: Any) -> list[int]:
        """The exit codes of ``allow_failure: {exit_codes}`` (empty for a boolean)."""
        if isinstance(value, dict):
            codes = value.get("exit_codes")
            codes = [codes] if isinstance(codes, int) else codes
            if (
                set(value) != {"exit_codes"}
                or not isinstance(codes, list)
                or not all(isinstance(c, int) and not isinstance(c, bool) for c in codes)
            ):
                self.problem(
                    name, ("allow_failure",), "allow_failure takes true, false or {exit_codes: [codes]}"
                )
                return []
            return list(codes)
        if value is not None and not isinstance(value, bool):
            self.problem(name, ("allow_failure",), "allow_failure takes true, false or {exit_codes: [codes]}")
        return []

    def timeout(self, name: str, job: dict[str, Any], out: dict[str, Any], base: FieldPath) -> None:
        """``timeout`` in seconds."""
        if job.get("timeout") is None:
            return
        try:
            out["timeout"] = parse_gitlab_duration(job["timeout"])
        except ValueError as exc:
            self.problem(name, ("timeout",), str(exc))
            return
        self.locate((*base, "timeout"), name, ("timeout",))

    def retry(self, name: str, job: dict[str, Any], out: dict[str, Any], base: FieldPath) -> None:
        """``retry``: max, and ``when`` reasons mapped to exit codes and 'timeout'."""
        raw = job.get("retry")
        if raw is None:
            return
        self.locate((*base, "retry"), name, ("retry",))
        if isinstance(raw, int) and not isinstance(raw, bool):
            raw = {"max": raw}
        if not isinstance(raw, dict) or not isinstance(raw.get("max", 0), int):
            self.problem(name, ("retry",), "retry takes a number (0-2) or {max, when, exit_codes}")
            return
        maximum = raw.get("max", 0)
        if not 0 <= maximum <= 2:
            self.problem(
                name, ("retry", "max"), f"retry max must be 0, 1 or 2 (GitLab's limit), got {maximum}"
            )
            return
        reasons = raw.get("when", ["always"])
        reasons = [reasons] if isinstance(reasons, str) else reasons
        codes = raw.get("exit_codes", [])
        codes = [codes] if isinstance(codes, int) else codes
        when: list[int | str] = []
        if any(r in ("always", "script_failure", "unknown_failure") for r in reasons):
            when = [] if not codes else list(codes)
        else:
            if "stuck_or_timeout_failure" in reasons or "job_execution_timeout" in reasons:
                when.append("timeout")
            when += list(codes)
            others = [r for r in reasons if r not in ("stuck_or_timeout_failure", "job_execution_timeout")]
            if others:
                self.note(
                    name,
                    ("retry", "when"),
                    f"retry when {', '.join(map(str, others))}: runner and API failures do not happen here",
                )
            if not when:
                maximum = 0
        out["retry"] = {"max": maximum, "when": when}

    def parallel(self, name: str, job: dict[str, Any], out: dict[str, Any], base: FieldPath) -> None:
        """``parallel``: a count or a matrix, as buildyard matrix instances."""
        raw = job.get("parallel")
        if raw is None:
            return
        self.locate((*base, "matrix"), name, ("parallel",))
        env = out["env"]
        if isinstance(raw, int) and not isinstance(raw, bool):
            if not 1 <= raw <= MAX_PARALLEL:
                self.problem(name, ("parallel",), f"parallel must be between 1 and {MAX_PARALLEL}, got {raw}")
                return
            out["matrix"] = {"CI_NODE_INDEX": [str(i) for i in range(1, raw + 1)]}
            env["CI_NODE_INDEX"] = "${{ matrix.CI_NODE_INDEX }}"
            env["CI_NODE_TOTAL"] = str(raw)
            env["CI_JOB_NAME"] = f"{name} ${{{{ matrix.CI_NODE_INDEX }}}}/{raw}"  # GitLab's "job 2/3"
            return
        entries = raw.get("matrix") if isinstance(raw, dict) else None
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            self.problem(name, ("parallel",), "parallel takes a count or {matrix: [{VAR: [values]}, ...]}")
            return
        combos: list[dict[str, str]] = []
        for entry in entries:
            axes = [
                (str(k), [scalar(x) for x in (v if isinstance(v, list) else [v])]) for k, v in entry.items()
            ]
            size = len(combos) + math.prod(len(values) for _, values in axes)
            if size > MAX_PARALLEL:  # counted before expanding: a few long lists must not exhaust memory
                self.problem(
                    name, ("parallel", "matrix"), f"parallel:matrix makes more than {MAX_PARALLEL} jobs"
                )
                return
            product: list[dict[str, str]] = [{}]
            for key, values in axes:
                product = [{**p, key: v} for p in product for v in values]
            combos += product
        keys = list(dict.fromkeys(k for c in combos for k in c))  # in the order they are written
        out["matrix"] = {"include": [{k: c.get(k, "") for k in keys} for c in combos]}
        for key in keys:
            env[key] = "${{ matrix." + key + " }}"
        env["CI_NODE_TOTAL"] = str(len(combos))
        shown = ", ".join("${{ matrix." + key + " }}" for key in keys)
        env["CI_JOB_NAME"] = f"{name}: [{shown}]"  # GitLab's "job: [aws, eu]"

    def artifacts(self, name: str, job: dict[str, Any], out: dict[str, Any], base: FieldPath) -> None:
        """``artifacts``: paths and exclude as outputs, reports as non-blocking gates."""
        raw = job.get("artifacts")
        if raw is None:
            return
        if not isinstance(raw, dict):
            self.problem(
                name, ("artifacts",), "artifacts takes a mapping (paths, exclude, when, expire_in, reports)"
            )
            return
        paths = [str(p) for p in raw.get("paths") or []]
        paths += ["!" + str(p) for p in raw.get("exclude") or []]
        if paths:
            out["artifacts"] = {"paths": paths}
            self.locate((*base, "artifacts"), name, ("artifacts",))
        reports = raw.get("reports") or {}
        gates: list[dict[str, Any]] = []
        if isinstance(reports, dict):
            for kind, value in reports.items():
                if kind == "junit":
                    files = [str(v) for v in (value if isinstance(value, list) else [value])]
                    gates.append({"tests": {"junit": files, "min_tests": 0, "allow_failure": True}})
                elif kind == "coverage_report" and isinstance(value, dict):
                    fmt = str(value.get("coverage_format", "cobertura"))
                    gate: dict[str, Any] = {"report": [str(value.get("path", ""))], "allow_failure": True}
                    if fmt in ("cobertura", "jacoco"):
                        gate["format"] = fmt
                    gates.append({"coverage": gate})
                else:
                    self.note(
                        name,
                        ("artifacts", "reports", kind),
                        f"artifacts:reports:{kind} is not read by buildyard",
                    )
        if gates:
            out["gates"] = gates
            self.locate((*base, "gates"), name, ("artifacts", "reports"))
        when = raw.get("when", "on_success")
        if when != "on_success":
            self.note(
                name,
                ("artifacts", "when"),
                f"artifacts:when {when}: outputs are collected when the job succeeds",
            )
        for key in sorted(set(raw) - {"paths", "exclude", "reports", "when"}):
            what = (
                "outputs are kept with the run (buildyard's retention)"
                if key == "expire_in"
                else "not carried"
            )
            self.note(name, ("artifacts", key), f"artifacts:{key}: {what}")

    def cache(
        self, name: str, job: dict[str, Any], out: dict[str, Any], base: FieldPath, env: Mapping[str, str]
    ) -> None:
        """``cache``: each entry a dependency cache (key or key files, paths, policy)."""
        raw = job.get("cache")
        if raw is None or not raw:
            return
        items = raw if isinstance(raw, list) else [raw]
        caches: list[dict[str, Any]] = []
        for i, item in enumerate(items):
            sub: FieldPath = ("cache", i) if isinstance(raw, list) else ("cache",)
            if not isinstance(item, dict):
                self.problem(name, sub, "cache takes a mapping (key, paths, policy)")
                continue
            paths = [str(p) for p in item.get("paths") or []]
            if not paths:
                self.note(name, sub, "cache without paths: nothing to cache")
                continue
            key = item.get("key", "default")
            if isinstance(key, dict):
                files = key.get("files") or []
                key_out: Any = {
                    "files": [str(f) for f in files],
                    "prefix": expand(scalar(key.get("prefix", "")), env),
                }
            else:
                key_out = expand(scalar(key), env) or "default"
            policy = str(item.get("policy", "pull-push"))
            if policy not in ("pull", "push", "pull-push"):
                self.problem(
                    name, (*sub, "policy"), f"cache policy must be pull, push or pull-push, not {policy!r}"
                )
                continue
            entry: dict[str, Any] = {"key": key_out, "paths": paths, "policy": policy}
            if item.get("fallback_keys"):
                entry["restore_keys"] = [expand(scalar(k), env) for k in item["fallback_keys"]]
            caches.append(entry)
            for extra in sorted(set(item) - {"key", "paths", "policy", "fallback_keys"}):
                self.note(name, (*sub, extra), f"cache:{extra} is not carried")
        if caches:
            out["cache"] = caches
            self.locate((*base, "cache"), name, ("cache",))

    def environment(
        self, name: str, job: dict[str, Any], out: dict[str, Any], base: FieldPath, env: Mapping[str, str]
    ) -> None:
        """``environment``: a deployment of the commit (``action: start``) recorded in buildyard's
        deployment history when its name is one buildyard allows; the variables in any case."""
        raw = job.get("environment")
        if raw is None:
            return
        spec = raw if isinstance(raw, dict) else {"name": raw}
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            self.problem(name, ("environment",), "environment takes a name or {name, url, action}")
            return
        target = expand(spec["name"], env)
        url = expand(scalar(spec.get("url", "")), env)
        action = scalar(spec.get("action", "start"))
        out["env"]["CI_ENVIRONMENT_NAME"] = target
        out["env"]["CI_ENVIRONMENT_SLUG"] = re.sub(r"[^a-z0-9]", "-", target.lower())[:24]
        if url:
            out["env"]["CI_ENVIRONMENT_URL"] = url
        out["env"]["CI_ENVIRONMENT_ACTION"] = action
        if action == "start" and _ENV_NAME.match(target) and "matrix" not in out:
            deployment: dict[str, Any] = {"name": target, "redeploy": "always", "wait_for_gates": False}
            if url.startswith(("http://", "https://")):
                deployment["url"] = url
            out["environment"] = deployment
            self.locate((*base, "environment"), name, ("environment",))
            for extra in sorted(set(spec) - {"name", "url", "action"}):
                self.note(name, ("environment", extra), f"environment:{extra} is not carried")
            return
        why = (
            f"action {action}: not a deployment"
            if action != "start"
            else f"'{target}' is not a buildyard environment name (letters, digits, '_', '-', '.')"
            if not _ENV_NAME.match(target)
            else "a parallel job is not one deployment"
        )
        self.note(
            name,
            ("environment",),
            f"environment '{target}' ({why}): the job runs with CI_ENVIRONMENT_* set, "
            "no deployment is recorded",
        )

    def unsupported(self, name: str, job: dict[str, Any]) -> None:
        """Notes (or, with strict, errors) for keywords buildyard does not carry."""
        for key in ("image", "services"):
            if job.get(key):
                value = job[key]
                shown = value.get("name") if isinstance(value, dict) else value
                if isinstance(value, list):
                    shown = ", ".join(str(v.get("name") if isinstance(v, dict) else v) for v in value)
                message = f"{key} {shown}: no container engine here, the job runs in the shell"
                if self.strict:
                    self.problem(name, (key,), message, "remove it, or run without --strict")
                else:
                    self.note(name, (key,), message)
        simple = {
            "resource_group": "jobs of one resource group are not serialised",
            "interruptible": "a local run is never auto-cancelled by a newer pipeline",
            "tags": "runner tags select nothing here",
            "coverage": "the coverage regex is not read from the log",
            "release": "no GitLab release is created",
            "secrets": "external secrets are not fetched (use buildyard secrets)",
            "id_tokens": "no ID tokens are issued",
            "hooks": "runner hooks are not run",
            "pages": "GitLab Pages are not deployed",
            "dependencies": "artifacts are shared through the project directory; not restricted",
            "manual_confirmation": "no confirmation is asked",
            "identity": "not carried",
            "dast_configuration": "not carried",
        }
        for key, why in simple.items():
            if key in job and job[key] not in (None, [], False):
                self.note(name, (key,), f"{key}: {why}")

    # -- edges --
