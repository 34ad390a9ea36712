"""``.gitlab-ci.yml`` -> buildyard's raw document + a source map into the GitLab file(s) -> ``Pipeline``.

Owns the meaning of GitLab's job keywords. GitLab decides ``workflow``, ``rules`` and ``only``/``except``
when it creates a pipeline, so they are decided here against the trigger (branch, tag, source,
variables, changed files): a job they exclude is not in the pipeline at all, as in GitLab. What is
carried: stages (``.pre``/``.post``, a job waits for every job of earlier stages, except manual
jobs that may fail and ``on_failure`` jobs), ``needs`` (``optional``, ``needs: []``), scripts
(``before_script`` + ``script`` in one ``bash -eo pipefail`` shell; ``after_script`` in its own shell,
also after a failure, with ``CI_JOB_STATUS``), variables (global, job, rule; ``$VAR``/``${VAR}``
expanded by the job's shell, ``expand: false`` kept literal), predefined ``CI_*`` variables (set
from the run's commit, branch, tag and event by a short prelude), ``when``, ``allow_failure``
(``exit_codes`` too), ``retry``, ``timeout``, ``parallel`` (count and matrix), ``artifacts``
(``paths``, ``exclude``; JUnit and coverage reports become non-blocking gates), ``cache``.
Everything else that GitLab would honour and buildyard cannot is returned as a located note
(``image``/``services`` are errors with ``strict``), never dropped silently.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from buildyard.errors import Diagnostic, SpecError
from buildyard.gitinfo import read_git
from buildyard.importers.gitlab_fields import FieldConverter
from buildyard.importers.gitlab_load import GLOBAL_KEYS, GitLabDocument, glob_regex, read
from buildyard.importers.gitlab_rules import RuleError, Trigger, evaluate_rules, only_except
from buildyard.importers.gitlab_values import (
    PRELUDE,
    SOURCES,
    WHEN,
    expand,
    flatten,
    parse_gitlab_duration,
    scalar,
    shell_value,
    variables,
)
from buildyard.spec.models import Pipeline
from buildyard.spec.yamlpos import Path as FieldPath
from buildyard.spec.yamlpos import SourceMap

DEFAULT_STAGES = ("build", "test", "deploy")
#: The keys ``default:`` may set (each job without its own takes it, no merge).
DEFAULT_KEYS = frozenset(
    {
        "after_script",
        "artifacts",
        "before_script",
        "cache",
        "hooks",
        "id_tokens",
        "image",
        "interruptible",
        "retry",
        "services",
        "tags",
        "timeout",
    }
)
JOB_KEYS = frozenset(
    {
        *DEFAULT_KEYS,
        "script",
        "stage",
        "needs",
        "dependencies",
        "rules",
        "only",
        "except",
        "when",
        "start_in",
        "allow_failure",
        "parallel",
        "environment",
        "variables",
        "extends",
        "resource_group",
        "coverage",
        "release",
        "trigger",
        "inherit",
        "secrets",
        "pages",
        "manual_confirmation",
        "identity",
        "dast_configuration",
        "description",
    }
)


@dataclass(frozen=True)
class Context:
    """The trigger a GitLab pipeline is created for."""

    event: str = "push"
    branch: str = ""
    tag: str = ""
    sha: str = ""
    variables: Mapping[str, str] = field(default_factory=dict)
    default_branch: str = "main"
    #: Files the push changed (``None``: unknown, ``changes`` rules match).
    changed: tuple[str, ...] | None = None
    project: Path = Path()
    #: ``image``/``services`` become errors instead of warnings.
    strict: bool = False


@dataclass
class Conversion:
    """The converted document, its map into the GitLab file, and everything not carried."""

    document: dict[str, Any]
    source_map: SourceMap
    notes: list[Diagnostic]
    #: GitLab job name -> buildyard job name (they differ when GitLab's has spaces, ':' or '/').
    names: dict[str, str]


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
    git = read_git(project)
    branch = git.branch if branch is None else branch
    if not branch and not tag and not git.tag:  # no commit yet: the branch HEAD names
        branch = (_git(project, "symbolic-ref", "--short", "HEAD") or "").strip()
    tag = git.tag if tag is None else tag
    return Context(
        event="tag" if tag and event == "push" else event,
        branch=branch,
        tag=tag,
        sha=git.sha,
        variables=dict(variables or {}),
        default_branch=_default_branch(project) or "main",
        changed=_changed_files(project),
        project=project,
        strict=strict,
    )


def _git(project: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=project, capture_output=True, text=True, check=False, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def _default_branch(project: Path) -> str | None:
    head = _git(project, "symbolic-ref", "--short", "refs/remotes/origin/HEAD")
    if head:
        return head.strip().removeprefix("origin/")
    return None


#: Most repository paths ``rules:exists`` looks at (GitLab's limit of file checks).
MAX_EXISTS_CHECKS = 50_000
#: Most changed paths considered by ``changes`` (beyond: every ``changes`` rule matches).
MAX_CHANGED = 10_000


def _changed_files(project: Path) -> tuple[str, ...] | None:
    """Files the last commit changed plus uncommitted ones; ``None`` without a parent (a new branch)."""
    committed = _git(project, "diff", "--name-only", "HEAD~1", "HEAD")
    if committed is None:
        return None
    pending = _git(project, "status", "--porcelain", "--untracked-files=all") or ""
    paths = [p for p in committed.splitlines() if p]
    paths += [line[3:].split(" -> ")[-1] for line in pending.splitlines() if len(line) > 3]
    return tuple(paths) if len(paths) <= MAX_CHANGED else None


def load(path: Path, context: Context) -> tuple[Pipeline, Conversion]:
    """Read, convert and validate a GitLab CI file; raise a ``SpecError`` located in it."""
    from buildyard.spec.load import from_raw  # noqa: PLC0415 - the validator, only once converted

    conversion = convert(read(path, context.project), context)
    pipeline = from_raw(conversion.document, conversion.source_map)
    # The engine resolves the file against the project (the job cache does not hash it as an input).
    return msgspec.structs.replace(pipeline, file=str(path)), conversion


class _Converter(FieldConverter):
    """The whole pipeline: trigger variables, workflow, defaults, stages, jobs, then the edges."""

    def __init__(self, doc: GitLabDocument, ctx: Context) -> None:
        super().__init__(doc, strict=ctx.strict)
        self.ctx = ctx

    def predefined(self) -> dict[str, str]:
        """GitLab's predefined variables as the rules see them (this trigger)."""
        c = self.ctx
        source = SOURCES.get(c.event, c.event)
        ref = c.tag or c.branch
        out = {
            "CI": "true",
            "GITLAB_CI": "true",
            "CI_SERVER": "yes",
            "CI_COMMIT_SHA": c.sha,
            "CI_COMMIT_SHORT_SHA": c.sha[:8],
            "CI_COMMIT_REF_NAME": ref,
            "CI_COMMIT_REF_SLUG": re.sub(r"[^a-z0-9]", "-", ref.lower())[:63].strip("-"),
            "CI_PIPELINE_SOURCE": source,
            "CI_DEFAULT_BRANCH": c.default_branch,
            "CI_PROJECT_DIR": str(c.project.resolve()),
            "CI_PROJECT_NAME": c.project.resolve().name,
            "CI_PIPELINE_ID": "0",
        }
        if c.tag:
            out["CI_COMMIT_TAG"] = c.tag
        elif source == "merge_request_event":
            out |= {
                "CI_MERGE_REQUEST_IID": "1",
                "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": c.branch,
                "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": c.default_branch,
                "CI_MERGE_REQUEST_EVENT_TYPE": "detached",
            }
        else:
            out["CI_COMMIT_BRANCH"] = c.branch
        return out

    def trigger(self) -> Trigger:
        """What the rules need to know: source, ref, changed files, files that exist."""
        project = self.ctx.project.resolve()
        cache: dict[str, bool] = {}

        def exists(pattern: str) -> bool:
            if pattern not in cache:
                rx = glob_regex(pattern)
                found = False
                for checked, path in enumerate(project.rglob("*")):
                    if checked >= MAX_EXISTS_CHECKS:
                        found = True  # GitLab: beyond its limit of checks, exists matches
                        break
                    if ".git" in path.parts or ".buildyard" in path.parts:
                        continue
                    if rx.fullmatch(str(path.relative_to(project))):
                        found = True
                        break
                cache[pattern] = found
            return cache[pattern]

        return Trigger(
            variables=self.ctx.variables,
            source=SOURCES.get(self.ctx.event, self.ctx.event),
            branch=self.ctx.branch,
            tag=self.ctx.tag,
            changed=self.ctx.changed
            if self.ctx.event in ("push", "pull_request") and not self.ctx.tag
            else None,
            exists=exists,
        )

    # -- the pipeline --

    def convert(self) -> Conversion:
        """The whole document: workflow, defaults, stages, every job, then the edges."""
        data = self.doc.data
        trigger = self.trigger()
        predefined = self.predefined()
        try:
            global_vars = variables(data.get("variables"))
        except ValueError as exc:
            self.problem("variables", (), str(exc))
            global_vars = {}
        workflow = data.get("workflow")
        if isinstance(workflow, dict) and "rules" in workflow:
            env = self.rule_env(predefined, global_vars, {})
            decision, problems = evaluate_rules(_rules(workflow["rules"]), env, trigger, "always")
            for i, message in problems:
                self.problem("workflow", ("rules", i) if i >= 0 else ("rules",), message)
            if not problems and decision.when == "never":
                raise SpecError(
                    [
                        self.doc.diag(
                            "workflow",
                            ("rules",),
                            f"workflow:rules create no pipeline for this trigger "
                            f"({'tag ' + self.ctx.tag if self.ctx.tag else 'branch ' + self.ctx.branch}, "
                            f"source {trigger.source})",
                            "run with --branch/--tag/--event/--var that a workflow rule accepts",
                        )
                    ]
                )
            try:
                global_vars |= variables(decision.variables)
            except ValueError as exc:
                self.problem("workflow", ("rules",), str(exc))
        defaults = dict(data.get("default") or {}) if isinstance(data.get("default"), dict) else {}
        if "default" in data and not isinstance(data["default"], dict):
            self.problem("default", (), "default takes a mapping of job keywords")
        for key in ("image", "services", "cache", "before_script", "after_script"):
            if key in data and key not in defaults:
                defaults[key] = data[key]  # deprecated global keywords: the same as under default:
        for key in defaults:
            if key not in DEFAULT_KEYS:
                self.problem(
                    "default",
                    (key,),
                    f"'{key}' cannot be set in default:",
                    f"allowed: {', '.join(sorted(DEFAULT_KEYS))}",
                )
        stages = data.get("stages", list(DEFAULT_STAGES))
        if not isinstance(stages, list) or not all(isinstance(s, str) for s in stages):
            self.problem("stages", (), "stages takes a list of stage names")
            stages = list(DEFAULT_STAGES)
        stages = [".pre", *[s for s in stages if s not in (".pre", ".post")], ".post"]

        jobs: dict[str, dict[str, Any]] = {}
        for name, raw in data.items():
            if name in GLOBAL_KEYS or name.startswith("."):
                continue
            if not isinstance(raw, dict):
                self.problem(
                    name,
                    (),
                    f"job '{name}' must be a mapping with a 'script'",
                    "hidden templates start with '.'",
                )
                continue
            job = self.job(name, raw, defaults, global_vars, predefined, stages, trigger)
            if job is not None:
                jobs[name] = job
        self.link(jobs, stages)
        if self.problems:
            raise SpecError(self.problems)
        if not jobs:
            raise SpecError(
                [
                    Diagnostic(
                        self.doc.main.file,
                        1,
                        1,
                        "",
                        "no job of this file runs for this trigger "
                        f"({'tag ' + self.ctx.tag if self.ctx.tag else 'branch ' + self.ctx.branch})",
                        "check the jobs' rules/only/except",
                    )
                ]
            )
        document: dict[str, Any] = {"name": self.ctx.project.resolve().name or "gitlab-ci"}
        literal = {k: v for k, (v, e) in global_vars.items() if not (e and "$" in v)}
        document["variables"] = {
            **literal,
            "GITLAB_CI": "true",
            "CI_SERVER": "yes",
            "CI_DEFAULT_BRANCH": self.ctx.default_branch,
            "CI_PROJECT_NAME": predefined["CI_PROJECT_NAME"],
        }
        self.locate(("variables",), "variables")
        used = {j["stage"] for j in jobs.values()}
        document["stages"] = [s for s in stages if s in used]
        self.locate(("stages",), "stages")
        document["jobs"] = {}
        for name, job in jobs.items():
            out = self.names[name]
            job.pop("_when_raw", None)
            job.pop("_blocking", None)
            document["jobs"][out] = job
        return Conversion(document, self.smap, self.notes, dict(self.names))

    def rule_env(
        self, predefined: Mapping[str, str], *layers: Mapping[str, tuple[str, bool]]
    ) -> dict[str, str]:
        """The variables a rule sees: predefined, then YAML layers (expanded), then the trigger's."""
        env = dict(predefined)
        for layer in layers:
            for name, (value, do_expand) in layer.items():
                env[name] = expand(value, env) if do_expand else value
        env.update(self.ctx.variables)
        return env

    # -- one job --

    def job(
        self,
        name: str,
        raw: dict[str, Any],
        defaults: dict[str, Any],
        global_vars: dict[str, tuple[str, bool]],
        predefined: dict[str, str],
        stages: list[str],
        trigger: Trigger,
    ) -> dict[str, Any] | None:
        """One job converted, or ``None`` when its rules leave it out (or it has a problem)."""
        for key in raw:
            if key not in JOB_KEYS:
                import difflib  # noqa: PLC0415 - error path only

                close = difflib.get_close_matches(str(key), sorted(JOB_KEYS), n=1)
                hint = f"did you mean '{close[0]}'?" if close else "see GitLab's CI/CD YAML reference"
                self.problem(name, (key,), f"unknown key '{key}'", hint, at_key=True)
                return None
        if "trigger" in raw:
            self.note(name, ("trigger",), f"job '{name}' triggers a downstream pipeline: not run here")
            return None
        inherit = raw.get("inherit") or {}
        job = dict(raw)
        inherit_default = inherit.get("default", True) if isinstance(inherit, dict) else True
        for key, value in defaults.items():
            wanted = inherit_default is True or (isinstance(inherit_default, list) and key in inherit_default)
            if key not in job and wanted:
                job[key] = value
        inherit_vars = inherit.get("variables", True) if isinstance(inherit, dict) else True
        if inherit_vars is False:
            global_vars = {}
        elif isinstance(inherit_vars, list):
            global_vars = {k: v for k, v in global_vars.items() if k in inherit_vars}
        try:
            job_vars = variables(job.get("variables"))
        except ValueError as exc:
            self.problem(name, ("variables",), str(exc))
            return None
        stage = job.get("stage", "test")
        if not isinstance(stage, str) or stage not in stages:
            self.problem(
                name,
                ("stage",) if "stage" in job else (),
                f"stage '{stage}' is not in stages",
                f"stages: {', '.join(stages[1:-1])}",
            )
            return None
        ci = {
            "CI_JOB_NAME": name,
            "CI_JOB_NAME_SLUG": re.sub(r"[^a-z0-9]", "-", name.lower())[:63],
            "CI_JOB_STAGE": stage,
        }
        env = self.rule_env({**predefined, **ci}, global_vars, job_vars)

        when = job.get("when", "on_success")
        allow_failure = job.get("allow_failure")
        start_in = job.get("start_in")
        needs = job.get("needs")
        rule_vars: dict[str, tuple[str, bool]] = {}
        if "rules" in job:
            if "only" in job or "except" in job:
                self.problem(name, ("rules",), "rules cannot be used with only/except", "keep one of them")
                return None
            decision, problems = evaluate_rules(_rules(job["rules"]), env, trigger, str(when))
            for i, message in problems:
                self.problem(name, ("rules", i) if i >= 0 else ("rules",), message)
            if problems or decision.when == "never":
                return None
            when = decision.when
            if decision.allow_failure is not None:
                allow_failure = decision.allow_failure
            elif when == "manual" and "allow_failure" not in job:
                allow_failure = False  # GitLab: a manual job from rules blocks unless it says otherwise
            start_in = decision.start_in or start_in
            needs = decision.needs if decision.needs is not None else needs
            try:
                rule_vars = variables(decision.variables)
            except ValueError as exc:
                self.problem(name, ("rules", decision.index or 0, "variables"), str(exc))
                return None
        else:
            try:
                keep = only_except(job.get("only"), job.get("except"), env, trigger)
            except RuleError as exc:
                self.problem(name, ("only",) if "only" in job else ("except",), str(exc))
                return None
            if not keep:
                return None
        if when not in WHEN:
            self.problem(name, ("when",), f"unknown when '{when}'", f"one of: {', '.join(WHEN)}")
            return None
        if when == "never":
            return None
        if allow_failure is None:
            allow_failure = when == "manual"

        out_name = self.name_for(name)
        base: FieldPath = ("jobs", out_name)
        self.locate(base, name)
        self.smap.keys[base] = self.doc.key_pos(name)
        out: dict[str, Any] = {"stage": stage, "_when_raw": when}
        self.locate((*base, "stage"), name, ("stage",))
        if out_name != name:
            out["description"] = f"GitLab job '{name}'"

        # variables: literal ones in env (globals are the pipeline's), references expanded by the shell
        effective: dict[str, tuple[str, bool]] = {**global_vars, **job_vars, **rule_vars}
        job_env: dict[str, str] = {"CI_JOB_NAME": name, "CI_JOB_STAGE": stage}
        exports: list[str] = []
        for var, (value, do_expand) in effective.items():
            if var in self.ctx.variables:
                continue  # a pipeline variable (--var) wins over the YAML's, as in GitLab
            refs = do_expand and "$" in value
            if refs:
                exports.append(f"export {var}={shell_value(value, True)}")
            elif (
                var in job_vars
                or var in rule_vars
                or (var in global_vars and global_vars[var] != (value, do_expand))
            ):
                job_env[var] = value
        script = self.script(name, job)
        if script is None:
            return None
        parts = [PRELUDE, *exports]
        delay = 0
        if when == "delayed":
            if start_in is None:
                self.problem(name, ("when",), "when: delayed needs start_in", "e.g. start_in: 30 minutes")
                return None
            try:
                delay = parse_gitlab_duration(start_in)
            except ValueError as exc:
                self.problem(name, ("start_in",), str(exc))
                return None
            parts.append(f"sleep {delay}  # when: delayed, start_in: {scalar(start_in)}")
            when = "on_success"
        exit_codes = self.allow_failure_codes(name, allow_failure)
        parts.append(self.body(script, job.get("after_script"), name))
        out["steps"] = [{"name": "script", "run": "\n".join(parts)}]
        self.locate((*base, "steps"), name, ("script",))
        self.locate((*base, "steps", 0), name, ("script",))
        out["env"] = job_env
        self.locate((*base, "env"), name, ("variables",))
        out["when"] = when
        self.locate((*base, "when"), name, ("when",))
        if exit_codes:
            out["allow_failure"] = {"exit_codes": exit_codes}
        else:
            out["allow_failure"] = bool(allow_failure)
        self.locate((*base, "allow_failure"), name, ("allow_failure",))
        out["_blocking"] = not (when == "manual" and out["allow_failure"] is True)
        if needs is not None:
            out["needs"] = needs  # resolved once every job is known (link)
        self.timeout(name, job, out, base)
        self.retry(name, job, out, base)
        self.parallel(name, job, out, base)
        self.artifacts(name, job, out, base)
        self.cache(name, job, out, base, env)
        self.environment(name, job, out, base, env)
        self.unsupported(name, job)
        return out

    def link(self, jobs: dict[str, dict[str, Any]], stages: list[str]) -> None:
        """``needs`` resolved to buildyard names; a job without them waits for earlier stages."""
        rank = {s: i for i, s in enumerate(stages)}
        for name, job in jobs.items():
            base: FieldPath = ("jobs", self.names[name])
            if "needs" not in job:
                mine = rank[job["stage"]]
                job["needs"] = [
                    self.names[other]
                    for other, o in jobs.items()
                    if rank[o["stage"]] < mine and o["_blocking"] and o["_when_raw"] != "on_failure"
                ]
                continue
            raw = job["needs"]
            if not isinstance(raw, list):
                self.problem(name, ("needs",), "needs takes a list of jobs")
                continue
            resolved: list[str] = []
            self.locate((*base, "needs"), name, ("needs",))
            for i, item in enumerate(raw):
                target, optional = item, False
                if isinstance(item, dict):
                    if "pipeline" in item or "project" in item:
                        self.problem(
                            name, ("needs", i), "needs from another pipeline or project is not supported"
                        )
                        continue
                    target, optional = item.get("job"), bool(item.get("optional", False))
                    if "parallel" in item:
                        self.note(name, ("needs", i), "needs parallel:matrix: waits for every instance")
                    if item.get("artifacts") is False:
                        self.note(
                            name,
                            ("needs", i),
                            "needs artifacts: false: outputs are in the shared project directory anyway",
                        )
                if not isinstance(target, str):
                    self.problem(name, ("needs", i), "each need is a job name or {job, optional, artifacts}")
                    continue
                if target in jobs:
                    resolved.append(self.names[target])
                    self.locate((*base, "needs", len(resolved) - 1), name, ("needs", i))
                elif not optional:
                    exists = target in self.doc.data and not target.startswith(".")
                    why = (
                        "is not in this pipeline (its rules exclude it)"
                        if exists
                        else "is not a job of this file"
                    )
                    self.problem(
                        name,
                        ("needs", i),
                        f"needs '{target}', which {why}",
                        "make the need optional: {job: ..., optional: true}",
                    )
            job["needs"] = resolved


def _rules(value: Any) -> Any:
    """Rules with the lists ``!reference [.tpl, rules]`` inserts flattened, as GitLab does."""
    return flatten(value) if isinstance(value, list) else value


def convert(doc: GitLabDocument, ctx: Context) -> Conversion:
    """Convert a read GitLab document for the trigger ``ctx``; raise a located ``SpecError``."""
    return _Converter(doc, ctx).convert()
