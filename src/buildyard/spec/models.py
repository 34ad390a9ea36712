"""The typed, immutable model of ``buildyard.yml`` (msgspec Structs, unknown keys forbidden).

These classes are the contract between the pipeline file and everything downstream: after
``spec.load`` nothing handles raw dicts. Shorthands users may write (a step as a string, ``retry: 2``,
``script: "…"``, numbers as env values, ``"10m"`` durations) are normalized by the loader before
conversion, so consumers see one shape.

msgspec instead of pydantic (the design's first pick) because importing pydantic and building these
models costs ~270 ms on our CI machine, and ``buildyard validate`` must start in under 150 ms.
"""

from __future__ import annotations

import functools
import re
from typing import Any, ClassVar

import msgspec

from buildyard.model import CatchUp, EnvMode, InputType, NotifyWhen, Redeploy, When, WorkspaceMode
from buildyard.versioning import VersionFormatError, to_semver

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
JOB_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
MAX_MATRIX = 256
#: Most bytes of pipeline variables (names and values): they are stored with every run in the history.
MAX_VARIABLES_BYTES = 64 * 1024
#: Name of the DAG node that evaluates the pipeline-level gates (jobs may ``needs: [gates]``).
GATES_NODE = "gates"


class Spec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Base of spec structs. Class attributes tell the loader how to normalize raw values."""

    #: Fields holding durations ("30s", "10m", 90).
    durations: ClassVar[tuple[str, ...]] = ()
    #: Fields holding ``{NAME: scalar}`` maps whose values become strings.
    env_maps: ClassVar[tuple[str, ...]] = ()
    #: Field accepting a bare string for a one-element shape: (field, how).
    shorthand: ClassVar[dict[str, str]] = {}

    def check(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Cross-field problems as ``(relative path, message)``."""
        return []


class Step(Spec, frozen=True, kw_only=True):
    """One step: a shell script run in its own shell process, in order."""

    durations: ClassVar[tuple[str, ...]] = ("timeout",)
    env_maps: ClassVar[tuple[str, ...]] = ("env",)

    run: str
    name: str | None = None
    env: dict[str, str] = msgspec.field(default_factory=dict)
    timeout: float | None = None
    continue_on_error: bool = False


class Retry(Spec, frozen=True, kw_only=True):
    """Retries with exponential backoff: ``backoff``, then 2×, 4×… up to ``max_backoff``."""

    durations: ClassVar[tuple[str, ...]] = ("backoff", "max_backoff")

    max: int = 0
    backoff: float = 1.0
    max_backoff: float = 60.0
    when: list[int | str] = msgspec.field(default_factory=list)

    def check(self) -> list[tuple[tuple[str | int, ...], str]]:
        """``max`` within 0..10; ``when`` holds exit codes or 'timeout'."""
        out: list[tuple[tuple[str | int, ...], str]] = []
        if not 0 <= self.max <= 10:
            out.append((("max",), f"retry.max must be between 0 and 10, got {self.max}"))
        for i, item in enumerate(self.when):
            if isinstance(item, str) and item != "timeout":
                out.append((("when", i), f"retry.when accepts exit codes and 'timeout', not {item!r}"))
        return out


class Artifacts(Spec, frozen=True, kw_only=True):
    """Files a job produces (globs relative to the project), passed to jobs that need it."""

    paths: list[str] = msgspec.field(default_factory=list)


class AllowFailure(Spec, frozen=True, kw_only=True):
    """``allow_failure: {exit_codes: [...]}``: a failure with one of these exit codes is allowed."""

    #: Empty: no failure is allowed (as ``allow_failure: false``).
    exit_codes: list[int] = msgspec.field(default_factory=list)


_MEM = re.compile(r"^[0-9]+(?:\.[0-9]+)?\s*[KMGTkmgt]?i?[Bb]?$")


class Resources(Spec, frozen=True, kw_only=True):
    """How many ``-j`` slots a job occupies (and, on a cluster, the agent's cpus and memory it takes)."""

    cpus: int = 1
    #: Memory the job takes on a cluster agent (``512M``, ``8G``); counted against its ``--resources mem``.
    mem: str | None = None

    def check(self) -> list[tuple[tuple[str | int, ...], str]]:
        """At least one slot; a size for memory."""
        out: list[tuple[tuple[str | int, ...], str]] = []
        if self.cpus < 1:
            out.append((("cpus",), "resources.cpus must be at least 1"))
        if self.mem is not None and not _MEM.match(self.mem):
            out.append((("mem",), f"resources.mem must be a size such as 512M or 8G, not {self.mem!r}"))
        return out


class Matrix(Spec, frozen=True, kw_only=True):
    """Axes (name → values) plus GitHub-style ``include``/``exclude`` lists."""

    axes: dict[str, list[str]] = msgspec.field(default_factory=dict)
    include: list[dict[str, str]] = msgspec.field(default_factory=list)
    exclude: list[dict[str, str]] = msgspec.field(default_factory=list)

    def check(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Axis names are identifiers with at least one value; exclude names known axes."""
        out: list[tuple[tuple[str | int, ...], str]] = []
        for name, values in self.axes.items():
            if not ENV_NAME.match(name):
                out.append(((name,), f"matrix axis name {name!r} must be an identifier"))
            elif not values:
                out.append(((name,), f"matrix axis {name!r} has no values"))
        for i, entry in enumerate(self.exclude):
            for axis in entry:
                if axis not in self.axes:
                    out.append(
                        (
                            ("exclude", i, axis),
                            f"'{axis}' is not a matrix axis (axes: {', '.join(self.axes)})",
                        )
                    )
        return out


class CacheKeySpec(Spec, frozen=True, kw_only=True):
    """A dependency-cache key from files (like actions/cache ``hashFiles`` or GitLab ``key: files``)."""

    files: list[str]
    prefix: str = ""


class DependencyCacheSpec(Spec, frozen=True, kw_only=True):
    """A directory restored before the job and saved after it succeeds (``.venv/``, ``node_modules/``)."""

    key: str | CacheKeySpec
    paths: list[str]
    restore_keys: list[str] = msgspec.field(default_factory=list)
    policy: str = "pull-push"

    def check(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Policy is one of pull, push, pull-push; at least one path."""
        out: list[tuple[tuple[str | int, ...], str]] = []
        if self.policy not in ("pull", "push", "pull-push"):
            out.append((("policy",), f"cache policy must be pull, push or pull-push, not {self.policy!r}"))
        if not self.paths:
            out.append((("paths",), "a dependency cache needs at least one path"))
        return out


ARTIFACT_TYPES = ("application", "library", "container", "docs", "config", "report")


class PublishSpec(Spec, frozen=True, kw_only=True):
    """Push the job's files as a signed, versioned artifact when it succeeds (and its gates pass)."""

    name: str
    paths: list[str]
    version: str | dict[str, str] = "from_git_tag"
    type: str = "application"
    key: str = "default"

    def check(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Known type; version is a literal, from_git_tag, or {from_file: FILE}."""
        out: list[tuple[tuple[str | int, ...], str]] = []
        if self.type not in ARTIFACT_TYPES:
            out.append(
                (("type",), f"artifact type must be one of {', '.join(ARTIFACT_TYPES)}, not {self.type!r}")
            )
        if isinstance(self.version, dict) and set(self.version) != {"from_file"}:
            out.append((("version",), "version must be from_git_tag, a version, or {from_file: FILE}"))
        elif isinstance(self.version, str) and self.version != "from_git_tag":
            try:
                to_semver(self.version)
            except VersionFormatError as exc:
                out.append((("version",), f"version {exc}"))
        if not self.paths:
            out.append((("paths",), "publish needs at least one path"))
        return out


APPROVALS = ("none", "required")
#: Keys of ``environment:`` users sometimes write at the job level.
ENVIRONMENT_KEYS = frozenset({"health_check", "rollback", "auto_rollback", "approval", "approval_timeout"})


class HealthCheck(Spec, frozen=True, kw_only=True):
    """After a deployment: a command (exit 0) or an HTTP URL (2xx), polled every ``interval`` until
    healthy or ``timeout``."""

    durations: ClassVar[tuple[str, ...]] = ("timeout", "interval")

    run: str | None = None
    url: str | None = None
    timeout: float = 60.0
    interval: float = 2.0

    def check(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Exactly one of run/url; an http(s) URL; positive timings."""
        out: list[tuple[tuple[str | int, ...], str]] = []
        if (self.run is None) == (self.url is None):
            out.append(((), "a health_check needs exactly one of 'run' (a command) or 'url'"))
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            out.append((("url",), f"health_check.url must start with http:// or https://, not {self.url!r}"))
        if self.interval <= 0:
            out.append((("interval",), "health_check.interval must be positive"))
        if self.timeout <= 0:
            out.append((("timeout",), "health_check.timeout must be positive"))
        return out


class EnvironmentSpec(Spec, frozen=True, kw_only=True):
    """What makes a job a deployment: the environment it deploys an artifact to, and how."""

    durations: ClassVar[tuple[str, ...]] = ("approval_timeout",)

    name: str
    url: str | None = None
    approval: str = "none"
    approval_timeout: float = 86400.0
    #: ``NAME``, ``NAME@VERSION`` or ``NAME@CHANNEL``; default: the artifact a needed job publishes.
    artifact: str | None = None
    health_check: HealthCheck | None = None
    rollback: str | None = None
    auto_rollback: bool = False
    promote: bool = True
    #: Wait for the pipeline's gates (the ``gates`` node, else every job that has gates) before deploying.
    #: ``false`` is an explicit opt-out: the deployment may run before a failed gate is known.
    wait_for_gates: bool = True
    #: ``if_changed`` (default): a deployment of the version (or commit) the environment already runs
    #: successfully is skipped with a reason; ``always`` deploys again (``run --force`` does it once).
    redeploy: Redeploy = Redeploy.IF_CHANGED

    def check(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Well-formed name and artifact; known approval; auto_rollback has a health check to react to."""
        out: list[tuple[tuple[str | int, ...], str]] = []
        if not JOB_NAME.match(self.name):
            out.append(
                (("name",), f"environment name {self.name!r} may only contain letters, digits, '_', '-', '.'")
            )
        if self.approval not in APPROVALS:
            out.append((("approval",), f"approval must be 'required' or 'none', not {self.approval!r}"))
        if self.approval_timeout <= 0:
            out.append((("approval_timeout",), "approval_timeout must be positive"))
        if self.artifact is not None:
            name, _, selector = self.artifact.partition("@")
            if not name or ("@" in self.artifact and not selector):
                out.append(
                    (
                        ("artifact",),
                        f"artifact must be NAME, NAME@VERSION or NAME@CHANNEL, not {self.artifact!r}",
                    )
                )
        if self.auto_rollback and self.health_check is None:
            out.append(
                (("auto_rollback",), "auto_rollback reacts to a failed health check: add a health_check")
            )
        return out


#: Most characters of a concurrency group's name (after interpolation).
MAX_GROUP = 400


class Concurrency(Spec, frozen=True, kw_only=True):
    """GitHub's ``concurrency:``: at most one run (or job) of ``group`` executes at a time.

    ``group`` may interpolate ``${{ }}`` (branch, event, vars… and, for a job, matrix). A newer member
    of the group cancels the one in progress (``cancel_in_progress``) or waits for it to end; of the
    waiting ones only the newest is kept (an older waiting one is cancelled, with the reason).
    ``concurrency: NAME`` is ``{group: NAME}``.
    """

    group: str
    cancel_in_progress: bool = False

    def check(self) -> list[tuple[tuple[str | int, ...], str]]:
        """A group name that is not blank nor too long."""
        if not self.group.strip():
            return [(("group",), "a concurrency group needs a name (e.g. '${{ branch }}')")]
        if len(self.group) > MAX_GROUP:
            return [(("group",), f"a concurrency group name is at most {MAX_GROUP} characters")]
        return []


class Job(Spec, frozen=True, kw_only=True):
    """One job of the pipeline (a template when it has a matrix)."""

    durations: ClassVar[tuple[str, ...]] = ("timeout",)
    env_maps: ClassVar[tuple[str, ...]] = ("env",)

    stage: str | None = None
    needs: list[str] | None = None
    steps: list[Step] = msgspec.field(default_factory=list)
    script: list[str] | None = None
    env: dict[str, str] = msgspec.field(default_factory=dict)
    secrets: list[str] = msgspec.field(default_factory=list)
    if_: str | None = msgspec.field(default=None, name="if")
    when: When = When.ON_SUCCESS
    #: ``true``: a failure does not fail the run or block dependents; ``{exit_codes}``: only those exits.
    allow_failure: bool | AllowFailure = False
    #: An exit with one of these codes ends the job as skipped (it decided at run time that it has
    #: nothing to do), not failed: its dependents are skipped as after any skipped job.
    skip_exit_codes: list[int] = msgspec.field(default_factory=list)
    timeout: float | None = None
    retry: Retry = msgspec.field(default_factory=Retry)
    matrix: Matrix | None = None
    artifacts: Artifacts = msgspec.field(default_factory=Artifacts)
    resources: Resources = msgspec.field(default_factory=Resources)
    #: Labels an agent must all have to run the job (on a cluster); ``local``: on the orchestrator.
    runs_on: list[str] | str | None = None
    shell: str | None = None
    working_directory: str | None = None
    #: ``isolated``: run in a fresh copy of the project's files (``buildyard.engine.workspace``);
    #: unset: ``defaults.workspace``, else shared (isolated automatically for matrix outputs that collide).
    workspace: WorkspaceMode | None = None
    description: str | None = None
    inputs: list[str] | None = None
    key_commands: list[str] = msgspec.field(default_factory=list)
    #: Machine environment variables (names or ``*`` patterns) this job sees in ``env_mode: strict``.
    pass_env: list[str] = msgspec.field(default_factory=list)
    cache: bool | list[DependencyCacheSpec] = True
    #: Quality gates evaluated when this job succeeds (validated by ``buildyard.spec.gates``).
    gates: list[Any] = msgspec.field(default_factory=list)
    publish: PublishSpec | None = None
    #: Makes the job a deployment to this environment (``environment: production`` is ``{name: production}``).
    environment: EnvironmentSpec | None = None
    #: At most one job of this group at a time across the runs of the project (see ``Concurrency``).
    concurrency: Concurrency | None = None

    def check(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Exactly one of steps/script; secrets are environment variable names; a deployment has no matrix."""
        out: list[tuple[tuple[str | int, ...], str]] = []
        if self.steps and self.script:
            out.append(((), "use either 'steps' or 'script', not both"))
        elif not self.steps and not self.script:
            out.append(((), "a job needs 'steps' or 'script'"))
        for i, name in enumerate(self.secrets):
            if not ENV_NAME.match(name):
                out.append((("secrets", i), f"secret name {name!r} must be an environment variable name"))
        if self.environment is not None and self.matrix is not None:
            out.append((("environment",), "a deployment job cannot have a matrix (one job per environment)"))
        for i, code in enumerate(self.skip_exit_codes):
            if not 1 <= code <= 255:
                out.append((("skip_exit_codes", i), f"exit code {code} is not between 1 and 255"))
        return out

    @property
    def allowed_failure(self) -> bool:
        """True when any failure is allowed (``allow_failure: true``)."""
        return self.allow_failure is True

    @property
    def allow_failure_codes(self) -> tuple[int, ...]:
        """The exit codes whose failure is allowed (``allow_failure: {exit_codes}``)."""
        return tuple(self.allow_failure.exit_codes) if isinstance(self.allow_failure, AllowFailure) else ()

    @property
    def cached(self) -> bool:
        """False when the job opted out of the job cache (``cache: false``)."""
        return self.cache is not False

    @property
    def dependency_caches(self) -> list[DependencyCacheSpec]:
        """The dependency caches declared with ``cache: {key, paths, …}`` (or a list of them)."""
        return self.cache if isinstance(self.cache, list) else []

    @property
    def all_steps(self) -> list[Step]:
        """Steps in a single shape: a ``script`` list is one step running its lines in one shell."""
        if self.script is not None:
            return [Step(run="\n".join(self.script), name="script")]
        return list(self.steps)


class Defaults(Spec, frozen=True, kw_only=True):
    """Values every job inherits unless it sets its own."""

    durations: ClassVar[tuple[str, ...]] = ("timeout",)

    shell: str = "bash -eo pipefail"
    timeout: float | None = None
    working_directory: str | None = None
    #: Workspace of every job that sets none (``shared`` unless set; see ``Job.workspace``).
    workspace: WorkspaceMode | None = None


class EventFilter(Spec, frozen=True, kw_only=True):
    """Which pushes or pull requests start the pipeline (GitHub's ``on.push`` / ``on.pull_request``).

    Patterns use GitHub's glob semantics (``buildyard.spec.filters``). ``branches`` of a pull request
    name its base branch. Each list and its ``*_ignore`` counterpart exclude each other.
    """

    branches: list[str] | None = None
    branches_ignore: list[str] | None = None
    tags: list[str] | None = None
    tags_ignore: list[str] | None = None
    paths: list[str] | None = None
    paths_ignore: list[str] | None = None

    def check(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Every pattern compiles; a list and its ignore list are not both given."""
        from buildyard.spec.filters import check_patterns  # noqa: PLC0415 - only with on:

        out: list[tuple[tuple[str | int, ...], str]] = []
        for key in ("branches", "tags", "paths"):
            given = getattr(self, key)
            ignored = getattr(self, f"{key}_ignore")
            if given is not None and ignored is not None:
                out.append(
                    (
                        (f"{key}_ignore",),
                        f"use either '{key}' or '{key}_ignore', not both (use '!' in '{key}')",
                    )
                )
            for name, patterns, negation in ((key, given, True), (f"{key}_ignore", ignored, False)):
                for i, message in check_patterns(patterns or [], negation=negation):
                    out.append(((name, i), message))
        return out


class ScheduleSpec(Spec, frozen=True, kw_only=True):
    """A cron schedule: 5 fields, evaluated in ``timezone`` (an IANA name)."""

    cron: str
    timezone: str = "UTC"
    catch_up: CatchUp = CatchUp.LATEST

    def check(self) -> list[tuple[tuple[str | int, ...], str]]:
        """A valid cron expression and a known time zone."""
        from buildyard.spec.filters import check_cron, check_timezone  # noqa: PLC0415 - only with on:

        out: list[tuple[tuple[str | int, ...], str]] = []
        if (problem := check_cron(self.cron)) is not None:
            out.append((("cron",), problem))
        if (problem := check_timezone(self.timezone)) is not None:
            out.append((("timezone",), problem))
        return out


class ManualInput(Spec, frozen=True, kw_only=True):
    """One typed input of a manual trigger (filled in by the UI form or ``--input NAME=VALUE``)."""

    type: InputType = InputType.STRING
    description: str = ""
    required: bool = False
    default: str | bool | None = None
    options: list[str] = msgspec.field(default_factory=list)

    def check(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Choices have options and a default among them; a boolean's default is a boolean."""
        out: list[tuple[tuple[str | int, ...], str]] = []
        if self.type is InputType.CHOICE:
            if not self.options:
                out.append((("options",), "a choice input needs options"))
            elif self.default is not None and self.default not in self.options:
                out.append((("default",), f"default {self.default!r} is not one of the options"))
        elif self.options:
            out.append((("options",), f"options are for choice inputs, not {self.type.value}"))
        if self.type is InputType.BOOLEAN and self.default is not None and not isinstance(self.default, bool):
            out.append((("default",), "the default of a boolean input is true or false"))
        if self.type is not InputType.BOOLEAN and isinstance(self.default, bool):
            out.append((("default",), f"the default of a {self.type.value} input is text (quote it)"))
        return out


class ManualSpec(Spec, frozen=True, kw_only=True):
    """The pipeline may be started by hand (``buildyard trigger``, the UI), with these inputs."""

    inputs: dict[str, ManualInput] = msgspec.field(default_factory=dict)

    def check(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Input names are identifiers."""
        return [
            (("inputs", name), f"input name {name!r} must be an identifier (letters, digits, '_')")
            for name in self.inputs
            if not ENV_NAME.match(name)
        ]


class OnSpec(Spec, frozen=True, kw_only=True):
    """Which events start the pipeline by themselves (GitHub's ``on:``); absent: every push and PR."""

    push: EventFilter | None = None
    pull_request: EventFilter | None = None
    schedule: list[ScheduleSpec] = msgspec.field(default_factory=list)
    manual: ManualSpec | None = None


def _url_problem(url: str) -> str | None:
    if not url.startswith(("http://", "https://")):
        return f"url must start with http:// or https://, not {url[:100]!r}"
    return None


class WebhookChannel(Spec, frozen=True, kw_only=True):
    """A JSON POST, signed (``X-Buildyard-Signature-256``) with the secret named ``secret``."""

    url: str
    secret: str | None = None

    def check(self) -> list[tuple[tuple[str | int, ...], str]]:
        """An http(s) URL; the secret is a secret's name."""
        out: list[tuple[tuple[str | int, ...], str]] = []
        if (problem := _url_problem(self.url)) is not None:
            out.append((("url",), problem))
        if self.secret is not None and not ENV_NAME.match(self.secret):
            out.append((("secret",), "secret names a secret (an environment variable name), not its value"))
        return out


class SlackChannel(Spec, frozen=True, kw_only=True):
    """A Slack-compatible incoming webhook; its URL is a secret (named here)."""

    url_secret: str

    def check(self) -> list[tuple[tuple[str | int, ...], str]]:
        """The URL is named by a secret (it carries the credential)."""
        if not ENV_NAME.match(self.url_secret):
            return [(("url_secret",), "url_secret names a secret holding the webhook URL")]
        return []


class EmailChannel(Spec, frozen=True, kw_only=True):
    """Email over SMTP (STARTTLS when the server offers it)."""

    to: list[str]
    sender: str = msgspec.field(default="buildyard@localhost", name="from")
    host: str = "localhost"
    port: int = 25
    username: str | None = None
    password_secret: str | None = None

    def check(self) -> list[tuple[tuple[str | int, ...], str]]:
        """At least one address; a port; a password only by a secret's name."""
        out: list[tuple[tuple[str | int, ...], str]] = []
        if not self.to:
            out.append((("to",), "email needs at least one address"))
        for i, address in enumerate(self.to):
            if "@" not in address or any(c in address for c in "\r\n,;<>"):
                out.append((("to", i), f"not an email address: {address[:100]!r}"))
        if not 0 < self.port < 65536:
            out.append((("port",), f"port must be 1-65535, not {self.port}"))
        if self.password_secret is not None and not ENV_NAME.match(self.password_secret):
            out.append((("password_secret",), "password_secret names a secret"))
        return out


class CommitStatusChannel(Spec, frozen=True, kw_only=True):
    """Commit statuses in the GitHub or GitLab API shape (pending/success/failure, a link to the run)."""

    provider: str
    repository: str
    token_secret: str
    api: str | None = None
    context: str = "buildyard"

    def check(self) -> list[tuple[tuple[str | int, ...], str]]:
        """A known provider, a token by a secret's name, an http(s) API URL."""
        out: list[tuple[tuple[str | int, ...], str]] = []
        if self.provider not in ("github", "gitlab"):
            out.append((("provider",), f"provider must be github or gitlab, not {self.provider!r}"))
        if not ENV_NAME.match(self.token_secret):
            out.append((("token_secret",), "token_secret names a secret holding the API token"))
        if self.api is not None and (problem := _url_problem(self.api)) is not None:
            out.append((("api",), problem))
        return out


class NotifySpec(Spec, frozen=True, kw_only=True):
    """One notification: when (``on``), for which branches, through exactly one channel."""

    on: list[NotifyWhen] = msgspec.field(default_factory=lambda: [NotifyWhen.FAILURE, NotifyWhen.FIXED])
    branches: list[str] | None = None
    webhook: WebhookChannel | None = None
    slack: SlackChannel | None = None
    email: EmailChannel | None = None
    commit_status: CommitStatusChannel | None = None

    def check(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Exactly one channel; branch patterns compile."""
        from buildyard.spec.filters import check_patterns  # noqa: PLC0415 - only with notify:

        out: list[tuple[tuple[str | int, ...], str]] = []
        channels = [c for c in ("webhook", "slack", "email", "commit_status") if getattr(self, c) is not None]
        if len(channels) != 1:
            out.append(((), "a notification needs exactly one of webhook, slack, email, commit_status"))
        for i, message in check_patterns(self.branches or []):
            out.append((("branches", i), message))
        return out


#: An executor name, optionally with a target: ``local``, ``dask://host:8786``.
EXECUTOR = re.compile(r"^[a-z][a-z0-9_-]{0,31}(://[A-Za-z0-9_.:\[\]/-]{1,255})?$")


class Pipeline(Spec, frozen=True, kw_only=True):
    """A whole ``buildyard.yml``."""

    env_maps: ClassVar[tuple[str, ...]] = ("variables",)

    name: str = "pipeline"
    variables: dict[str, str] = msgspec.field(default_factory=dict)
    stages: list[str] | None = None
    defaults: Defaults = msgspec.field(default_factory=Defaults)
    cache_inputs: list[str] = msgspec.field(default_factory=list)
    #: ``loose``: jobs see the machine's environment; ``strict``: only a base set (PATH, HOME, locale…),
    #: ``pass_env`` and what the pipeline declares — undeclared variables cannot leak into cached outputs.
    env_mode: EnvMode = EnvMode.LOOSE
    #: Machine environment variables (names or ``*`` patterns) every job sees in ``env_mode: strict``.
    pass_env: list[str] = msgspec.field(default_factory=list)
    #: Pipeline gates: the ``gates`` node of the DAG, after every job that does not need it.
    gates: list[Any] = msgspec.field(default_factory=list)
    #: Dependency policy (``licenses: {allow, deny, exceptions, fail_on_unknown}``), read by the deps service.
    deps: dict[str, Any] = msgspec.field(default_factory=dict)
    #: Events that start the pipeline by themselves (``None``: no ``on:`` — every push and pull request).
    on: OnSpec | None = None
    #: Notifications when runs finish (or wait for an approval), sent through the outbox.
    notify: list[NotifySpec] = msgspec.field(default_factory=list)
    #: Where jobs run by default (``local``, ``pool``, ``dask://HOST:PORT``, ``tls://HOST:PORT``):
    #: ``--executor`` and ``BUILDYARD_EXECUTOR`` override it.
    executor: str | None = None
    #: At most one run of this group at a time per project on a server (see ``Concurrency``).
    concurrency: Concurrency | None = None
    jobs: dict[str, Job]
    file: str = "buildyard.yml"
    positions: dict[str, tuple[int, int]] = msgspec.field(default_factory=dict)

    def check(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Variable and job names are well formed."""
        out: list[tuple[tuple[str | int, ...], str]] = []
        for name in self.variables:
            if not ENV_NAME.match(name):
                out.append(
                    (("variables", name), f"variable name {name!r} must be an environment variable name")
                )
        size = variables_size(self.variables)
        if size > MAX_VARIABLES_BYTES:
            out.append(
                (
                    ("variables",),
                    f"variables take {size / 1024:.0f} KiB, more than the limit of "
                    f"{MAX_VARIABLES_BYTES // 1024} KiB stored with every run "
                    "(keep large values in files the jobs read)",
                )
            )
        if self.executor is not None and not EXECUTOR.match(self.executor):
            out.append(
                (
                    ("executor",),
                    f"executor {self.executor!r}: use local, pool, dask://HOST:PORT or tls://HOST:PORT",
                )
            )
        for name in self.jobs:
            if name == GATES_NODE and self.gates:
                out.append((("jobs", name), f"'{GATES_NODE}' is the pipeline's gate check; rename this job"))
            if not JOB_NAME.match(name):
                out.append(
                    (("jobs", name), f"job name {name!r} may only contain letters, digits, '_', '-' and '.'")
                )
        return out

    def position(self, job: str) -> tuple[int, int]:
        """``(line, col)`` where ``job`` is defined (1, 1 when unknown)."""
        return self.positions.get(job, (1, 1))


def variables_size(variables: dict[str, str]) -> int:
    """Bytes of ``variables`` as stored with a run (names and values, UTF-8)."""
    return sum(len(k.encode()) + len(v.encode()) for k, v in variables.items())


#: Keys the loader fills itself; users may not write them.
INTERNAL_FIELDS = frozenset({"file", "positions"})


@functools.cache
def field_names(cls: type[Spec]) -> list[str]:
    """The keys users may write for ``cls``."""
    return [f.encode_name for f in msgspec.structs.fields(cls) if f.encode_name not in INTERNAL_FIELDS]


def normalize_raw(cls: type[Spec], raw: Any) -> Any:
    """Shorthands → full shapes, before conversion."""
    if cls is NotifySpec and isinstance(raw, dict) and isinstance(raw.get("on"), str):
        raw = {**raw, "on": [raw["on"]]}
    if cls is OnSpec:
        # GitHub's shorthands: ``on: push``, ``on: [push, pull_request]``, ``push:`` with no filter
        if isinstance(raw, str):
            raw = {raw: None}
        elif isinstance(raw, list) and all(isinstance(item, str) for item in raw):
            raw = dict.fromkeys(raw)
        if isinstance(raw, dict):
            raw = {
                k: ({} if v is None and k in ("push", "pull_request", "manual") else v)
                for k, v in raw.items()
            }
        return raw
    if cls is Concurrency and isinstance(raw, str):
        return {"group": raw}
    if cls is Step and isinstance(raw, str):
        return {"run": raw}
    if cls is Retry and isinstance(raw, int) and not isinstance(raw, bool):
        return {"max": raw}
    if cls is Matrix and isinstance(raw, dict) and "axes" not in raw:
        axes = {k: v for k, v in raw.items() if k not in ("include", "exclude")}
        return {"axes": axes, **{k: v for k, v in raw.items() if k in ("include", "exclude")}}
    if cls is Job and isinstance(raw, dict):
        if isinstance(raw.get("script"), str):
            raw = {**raw, "script": [raw["script"]]}
        if isinstance(raw.get("cache"), dict):
            raw = {**raw, "cache": [raw["cache"]]}
        if isinstance(raw.get("environment"), str):
            raw = {**raw, "environment": {"name": raw["environment"]}}
    return raw
