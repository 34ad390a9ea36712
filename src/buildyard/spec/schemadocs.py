"""What every key of ``buildyard.yml`` means, with an example: the text editors show from the schema.

Kept beside the schema generator (not in the structs) so that the models stay readable; a test
checks that every property the schema has is described here, so a new key cannot ship undocumented.
"""

from __future__ import annotations

from typing import Any

#: ``(definition, key) → (description, example)``.
DOCS: dict[tuple[str, str], tuple[str, Any]] = {
    # --- the pipeline -----------------------------------------------------------------------------
    ("Pipeline", "name"): ("Name of the pipeline in the history (runs are numbered per pipeline).", "shop"),
    ("Pipeline", "variables"): (
        "Variables every job sees in its environment and expressions see as vars.NAME (--var overrides).",
        {"PYTHON": "3.12"},
    ),
    ("Pipeline", "stages"): (
        "Ordered stages: a job without 'needs' waits for every job of earlier stages (GitLab semantics).",
        ["build", "test", "deploy"],
    ),
    ("Pipeline", "defaults"): ("Values every job inherits unless it sets its own.", {"timeout": "20m"}),
    ("Pipeline", "cache_inputs"): (
        "Files (globs) that enter every job's cache key, such as lockfiles.",
        ["uv.lock", "package-lock.json"],
    ),
    ("Pipeline", "env_mode"): (
        "loose: jobs see this machine's environment; strict: only a base set plus pass_env and what the "
        "pipeline declares (nothing undeclared can leak into cached outputs).",
        "strict",
    ),
    ("Pipeline", "pass_env"): (
        "Machine environment variables (names or * patterns) every job sees in env_mode: strict; their "
        "values enter cache keys as salted digests.",
        ["HOME", "LANG", "AWS_*"],
    ),
    ("Pipeline", "gates"): (
        "Quality gates of the whole pipeline: the 'gates' node, after every job that does not need it. "
        "Deployments wait for it unless they set wait_for_gates: false.",
        [
            {"tests": {"junit": "reports/junit.xml", "max_failures": 0}},
            {"coverage": {"report": "coverage.xml", "min_line": 80}},
        ],
    ),
    ("Pipeline", "deps"): (
        "Dependency policy read by the scanners, e.g. the allowed and denied licenses.",
        {"licenses": {"deny": ["GPL-3.0-only"], "fail_on_unknown": True}},
    ),
    ("Pipeline", "on"): (
        "Events that start the pipeline by themselves (GitHub-like): push, pull_request, schedule, manual. "
        "Without it, every push and pull request does.",
        {"push": {"branches": ["main"], "paths_ignore": ["docs/**"]}, "schedule": [{"cron": "0 3 * * *"}]},
    ),
    ("Pipeline", "notify"): (
        "Notifications when runs fail, are fixed, succeed, finish or wait for an approval.",
        [{"on": ["failure", "fixed"], "branches": ["main"], "slack": {"url_secret": "SLACK_WEBHOOK_URL"}}],
    ),
    ("Pipeline", "executor"): (
        "Where jobs run unless --executor or BUILDYARD_EXECUTOR says otherwise: local, pool, "
        "dask://HOST:PORT (a cluster on this machine's loopback) or tls://HOST:PORT (a TLS cluster).",
        "tls://ci-scheduler.example:8786",
    ),
    ("Pipeline", "concurrency"): (
        "On a server, at most one run of this group per project at a time: a newer run cancels the "
        "one in progress (cancel_in_progress) or waits for it (only the newest waiting run is kept). "
        "A name, or {group, cancel_in_progress}.",
        {"group": "${{ branch }}", "cancel_in_progress": True},
    ),
    ("Pipeline", "jobs"): (
        "The jobs, by name (letters, digits, '_', '-', '.').",
        {"test": {"script": ["pytest -q"]}},
    ),
    ("Defaults", "shell"): ("Shell that runs each step's script.", "bash -eo pipefail"),
    ("Defaults", "timeout"): ("Timeout of every job that sets none.", "30m"),
    ("Defaults", "working_directory"): (
        "Directory (relative to the project) jobs run in unless they set their own.",
        "packages/app",
    ),
    ("Defaults", "workspace"): (
        "Workspace of every job that sets none: shared (the project itself) or isolated (a fresh copy of "
        "the project's git-visible files and its needs' outputs; only declared outputs come back).",
        "isolated",
    ),
    # --- a job ------------------------------------------------------------------------------------
    ("Job", "stage"): ("The stage this job belongs to (one of the pipeline's stages).", "test"),
    ("Job", "needs"): (
        "Jobs this one waits for (and whose outputs it receives); [] starts it at once.",
        ["build"],
    ),
    ("Job", "steps"): (
        "Steps run in order, each in its own shell; a string is a step's script.",
        ["make", {"name": "test", "run": "make test", "timeout": "10m"}],
    ),
    ("Job", "script"): (
        "Lines run in one shell (instead of steps), like GitLab's script.",
        ["make", "make test"],
    ),
    ("Job", "env"): ("Environment variables of this job (they enter its cache key).", {"NODE_ENV": "test"}),
    ("Job", "secrets"): (
        "Names of secrets (from the environment or --secrets-file) this job gets; masked in every log "
        "and never part of a cache key.",
        ["PYPI_TOKEN"],
    ),
    ("Job", "if"): (
        "Condition on the trigger (event, branch, tag, vars, matrix, needs.JOB.status); false skips "
        "the job with the reason. An unset vars.X is null.",
        "event == 'push' && branch == 'main'",
    ),
    ("Job", "when"): (
        "When to run relative to the dependencies: on_success, on_failure, always or manual.",
        "on_success",
    ),
    ("Job", "allow_failure"): (
        "A failure of this job does not fail the run or skip its dependents ({exit_codes: [...]}: only a "
        "failure with one of these exit codes).",
        True,
    ),
    ("Job", "skip_exit_codes"): (
        "An exit with one of these codes ends the job as skipped, not failed (the job decided at run "
        "time that it has nothing to do); its dependents are skipped unless when: always.",
        [78],
    ),
    ("Job", "timeout"): ("Kill the job's whole process tree after this long.", "15m"),
    ("Job", "retry"): (
        "Retries with exponential backoff: a count, or max/backoff/max_backoff/when.",
        {"max": 2, "backoff": "5s", "when": [137, "timeout"]},
    ),
    ("Job", "matrix"): (
        "Run one instance per combination of the axes (plus include, minus exclude), GitHub semantics.",
        {"python": ["3.11", "3.12"], "os": ["linux"]},
    ),
    ("Job", "artifacts"): (
        "The files this job produces (its outputs): given to the jobs that need it, stored with the "
        "run and restored on a cache hit.",
        {"paths": ["dist/"]},
    ),
    ("Job", "resources"): ("How many -j slots the job occupies while it runs.", {"cpus": 2}),
    ("Job", "runs_on"): (
        "Labels an agent of the cluster must all have to run this job (run --executor dask://…); "
        "local keeps it on the orchestrator's machine. Ignored without a cluster.",
        ["linux", "gpu"],
    ),
    ("Job", "shell"): ("Shell for this job's steps.", "bash -eo pipefail"),
    ("Job", "working_directory"): (
        "Directory (relative to the project) the job runs in; its output paths are relative to it.",
        "packages/util",
    ),
    ("Job", "workspace"): (
        "shared: run in the project; isolated: run in a fresh copy of its git-visible files plus the "
        "outputs of the jobs it needs, only declared outputs come back (default: defaults.workspace, else "
        "shared; matrix instances declaring the same outputs are isolated automatically).",
        "isolated",
    ),
    ("Job", "description"): ("What the job is for (shown by plan and the dashboard).", "Unit tests"),
    ("Job", "inputs"): (
        "Files (globs, relative to the working directory) whose content enters the cache key; default: "
        "the files under the working directory.",
        ["src/**", "pyproject.toml"],
    ),
    ("Job", "key_commands"): (
        "Commands whose output enters the cache key (a toolchain version, say).",
        ["python3 --version"],
    ),
    ("Job", "pass_env"): (
        "Machine environment variables this job sees in env_mode: strict (names or * patterns).",
        ["CC", "CFLAGS"],
    ),
    ("Job", "cache"): (
        "false: never serve this job from the job cache; or dependency caches restored before it and "
        "saved after it (key from files, paths, restore_keys, policy).",
        [{"key": {"files": ["package-lock.json"]}, "paths": ["node_modules/"]}],
    ),
    ("Job", "gates"): (
        "Quality gates checked when this job succeeds; a failed gate fails the job.",
        [{"coverage": {"report": "coverage.xml", "min_line": 80}}],
    ),
    ("Job", "publish"): (
        "Push files this job made as a signed, versioned artifact to the artifact repository.",
        {"name": "shop-api", "paths": ["dist/*.whl"], "version": {"from_file": "pyproject.toml"}},
    ),
    ("Job", "environment"): (
        "Makes the job a deployment to this environment (a name, or the full mapping); without an "
        "artifact it is a script deployment tracked by commit.",
        {"name": "staging", "url": "https://staging.example.com"},
    ),
    ("Job", "concurrency"): (
        "At most one job of this group at a time across the project's runs (on a server, and local "
        "runs of one checkout): a newer one cancels (cancel_in_progress) or waits for the running one.",
        {"group": "deploy-${{ branch }}", "cancel_in_progress": False},
    ),
    ("Concurrency", "group"): (
        "The group's name; may use ${{ }} (branch, tag, event, sha, vars and, for a job, matrix).",
        "ci-${{ branch }}",
    ),
    ("Concurrency", "cancel_in_progress"): (
        "true: a newer member cancels the one in progress; false (default): it waits for it to end.",
        True,
    ),
    # --- parts of a job ---------------------------------------------------------------------------
    ("Step", "run"): ("The step's script.", "pytest -q"),
    ("Step", "name"): ("Name shown in logs and the history.", "unit tests"),
    ("Step", "env"): ("Environment variables of this step only.", {"PYTEST_ADDOPTS": "-x"}),
    ("Step", "timeout"): ("Kill this step's process tree after this long.", "5m"),
    ("Step", "continue_on_error"): ("A failure of this step does not fail the job.", True),
    ("Retry", "max"): ("Attempts after the first (0 to 10).", 2),
    ("Retry", "backoff"): ("Wait before the first retry; doubled each time.", "5s"),
    ("Retry", "max_backoff"): ("Longest wait between two attempts.", "1m"),
    ("Retry", "when"): ("Retry only on these exit codes (and/or 'timeout'); default: any failure.", [137]),
    ("Matrix", "include"): ("Extra combinations, or extra values for matching ones.", [{"python": "3.13"}]),
    ("Matrix", "exclude"): ("Combinations to leave out.", [{"python": "3.11", "os": "macos"}]),
    ("Artifacts", "paths"): (
        "Files or directories (globs) the job produces, relative to its working directory.",
        ["dist/", "reports/*.xml"],
    ),
    ("AllowFailure", "exit_codes"): (
        "Exit codes whose failure is allowed (GitLab's allow_failure).",
        [3, 137],
    ),
    ("Resources", "cpus"): ("-j slots the job occupies.", 2),
    ("Resources", "mem"): (
        "Memory the job takes on a cluster agent (counted against its --resources mem).",
        "8G",
    ),
    ("DependencyCacheSpec", "key"): (
        "Cache key: a string (expressions allowed) or {files: [...]} hashed like actions/cache hashFiles.",
        {"files": ["uv.lock"], "prefix": "venv"},
    ),
    ("DependencyCacheSpec", "paths"): ("Directories restored and saved.", [".venv/", "node_modules/"]),
    ("DependencyCacheSpec", "restore_keys"): (
        "Prefixes tried in order when the exact key is missing (newest match wins).",
        ["venv-"],
    ),
    ("DependencyCacheSpec", "policy"): ("pull (restore only), push (save only) or pull-push.", "pull-push"),
    ("CacheKeySpec", "files"): ("Files (globs) whose content makes the key.", ["package-lock.json"]),
    ("CacheKeySpec", "prefix"): ("Text put before the digest.", "node"),
    ("PublishSpec", "name"): ("Artifact name in the repository.", "shop-api"),
    ("PublishSpec", "paths"): (
        "Files (globs, relative to the job's working directory, inside the project) pushed as the artifact.",
        ["dist/*"],
    ),
    ("PublishSpec", "version"): (
        "from_git_tag (default), a version (1.4.0, v1.4, 3.7 or PEP 440: normalised to SemVer), or "
        "{from_file: pyproject.toml|package.json} (a dynamic version is read from the published wheel).",
        {"from_file": "pyproject.toml"},
    ),
    ("PublishSpec", "type"): (
        "application, library, container, docs, config or report.",
        "library",
    ),
    ("PublishSpec", "key"): ("Signing key name (made on first use outside CI).", "default"),
    # --- triggers ---------------------------------------------------------------------------------
    ("OnSpec", "push"): (
        "Pushes of branches and tags that start the pipeline (no filter: every push).",
        {"branches": ["main", "release/**"], "tags": ["v*"]},
    ),
    ("OnSpec", "pull_request"): (
        "Pull requests (opened, synchronized, reopened) that start the pipeline; branches name the base.",
        {"branches": ["main"], "paths": ["src/**"]},
    ),
    ("OnSpec", "schedule"): (
        "Cron schedules (5 fields) in an IANA time zone; each due time runs once.",
        [{"cron": "30 2 * * 1-5", "timezone": "Europe/Berlin"}],
    ),
    ("OnSpec", "manual"): (
        "The pipeline may be started by hand (buildyard trigger, the UI), with typed inputs.",
        {"inputs": {"level": {"type": "choice", "options": ["fast", "full"], "default": "fast"}}},
    ),
    ("EventFilter", "branches"): (
        "Branch patterns (GitHub globs: * not across /, **, ?, +, [a-z], ! excludes; the last match "
        "decides) that start the pipeline.",
        ["main", "release/**", "!release/old-*"],
    ),
    ("EventFilter", "branches_ignore"): ("Branch patterns that never start the pipeline.", ["wip/**"]),
    ("EventFilter", "tags"): ("Tag patterns whose pushes start the pipeline.", ["v[0-9]*"]),
    ("EventFilter", "tags_ignore"): ("Tag patterns whose pushes never start the pipeline.", ["*-rc*"]),
    ("EventFilter", "paths"): (
        "Changed-file patterns: the pipeline starts only if at least one changed file matches.",
        ["src/**", "!src/**/*.md"],
    ),
    ("EventFilter", "paths_ignore"): (
        "Changed-file patterns: a change touching only these starts nothing.",
        ["docs/**", "**.md"],
    ),
    ("ScheduleSpec", "cron"): ("5-field cron expression (minute hour day month weekday).", "0 3 * * *"),
    ("ScheduleSpec", "timezone"): (
        "IANA time zone the expression is read in (a skipped hour fires at the next valid minute, a "
        "repeated hour fires once).",
        "Europe/Berlin",
    ),
    ("ScheduleSpec", "catch_up"): (
        "latest: one run at start-up for due times missed while down; none: skip them.",
        "latest",
    ),
    ("ManualSpec", "inputs"): (
        "Typed inputs of a manual run, by name.",
        {"dry_run": {"type": "boolean", "default": True}},
    ),
    ("ManualInput", "type"): ("string, choice or boolean.", "choice"),
    ("ManualInput", "description"): ("What the input means (shown in the form).", "Deploy target"),
    ("ManualInput", "required"): ("A run cannot start without a value (and no default).", True),
    ("ManualInput", "default"): ("Value when none is given.", "staging"),
    ("ManualInput", "options"): ("The values a choice input accepts.", ["staging", "production"]),
    # --- notifications ----------------------------------------------------------------------------
    ("NotifySpec", "on"): (
        "When to notify: failure, fixed (first success after a failure), success, always, approval_needed.",
        ["failure", "fixed"],
    ),
    ("NotifySpec", "branches"): ("Only runs of these branches (patterns as in on.push.branches).", ["main"]),
    ("NotifySpec", "webhook"): (
        "POST a JSON summary, signed with HMAC-SHA256 (X-Buildyard-Signature-256) when a secret is named.",
        {"url": "https://hooks.example.com/ci", "secret": "HOOK_SECRET"},
    ),
    ("NotifySpec", "slack"): (
        "A Slack-compatible incoming webhook (its URL is read from the named secret).",
        {"url_secret": "SLACK_WEBHOOK_URL"},
    ),
    ("NotifySpec", "email"): (
        "Email over SMTP (STARTTLS when offered).",
        {"to": ["team@example.com"], "host": "smtp.example.com", "port": 587},
    ),
    ("NotifySpec", "commit_status"): (
        "Set the commit's status on GitHub or GitLab (pending, success, failure, with a link to the run).",
        {"provider": "github", "repository": "acme/shop", "token_secret": "GITHUB_TOKEN"},
    ),
    ("WebhookChannel", "url"): ("Where to POST (http or https).", "https://hooks.example.com/ci"),
    ("WebhookChannel", "secret"): ("Name of the secret the body is signed with.", "HOOK_SECRET"),
    ("SlackChannel", "url_secret"): ("Name of the secret holding the webhook URL.", "SLACK_WEBHOOK_URL"),
    ("EmailChannel", "to"): ("Recipients.", ["team@example.com"]),
    ("EmailChannel", "from"): ("Sender address.", "ci@example.com"),
    ("EmailChannel", "host"): ("SMTP server.", "smtp.example.com"),
    ("EmailChannel", "port"): ("SMTP port.", 587),
    ("EmailChannel", "username"): ("SMTP user (with password_secret).", "ci"),
    ("EmailChannel", "password_secret"): ("Name of the secret holding the SMTP password.", "SMTP_PASSWORD"),
    ("CommitStatusChannel", "provider"): ("github or gitlab.", "github"),
    ("CommitStatusChannel", "repository"): (
        "owner/name (GitHub) or the project path or id (GitLab).",
        "acme/shop",
    ),
    ("CommitStatusChannel", "token_secret"): ("Name of the secret holding the API token.", "GITHUB_TOKEN"),
    ("CommitStatusChannel", "api"): (
        "API base URL (default https://api.github.com or https://gitlab.com/api/v4).",
        "https://github.example.com/api/v3",
    ),
    ("CommitStatusChannel", "context"): ("Name of the status (GitHub context, GitLab name).", "buildyard/ci"),
    # --- deployments ------------------------------------------------------------------------------
    ("EnvironmentSpec", "name"): ("Environment name (letters, digits, '_', '-', '.').", "production"),
    ("EnvironmentSpec", "url"): (
        "Where the environment is reachable (recorded, shown).",
        "https://example.com",
    ),
    ("EnvironmentSpec", "approval"): (
        "required: the job waits for 'buildyard approve' (holding no slot); none: it starts at once.",
        "required",
    ),
    ("EnvironmentSpec", "approval_timeout"): ("How long to wait for an approval.", "24h"),
    ("EnvironmentSpec", "artifact"): (
        "What to deploy: NAME, NAME@VERSION or NAME@CHANNEL; default: what a job it needs publishes.",
        "shop-api@staging",
    ),
    ("EnvironmentSpec", "health_check"): (
        "After deploying: a command (exit 0) or URL (2xx) polled until healthy or the timeout.",
        {"url": "https://staging.example.com/health", "timeout": "2m"},
    ),
    ("EnvironmentSpec", "rollback"): (
        "Command that deploys the previous good version again (default: the job's own steps).",
        "./deploy.sh --version $BUILDYARD_DEPLOY_VERSION",
    ),
    ("EnvironmentSpec", "auto_rollback"): ("Roll back when the health check fails.", True),
    ("EnvironmentSpec", "promote"): (
        "After a healthy deployment, point the repository channel named like the environment at the "
        "version (when such a channel exists and its policy allows).",
        True,
    ),
    ("EnvironmentSpec", "wait_for_gates"): (
        "Wait for the pipeline's gates before deploying (default); false deploys before a failed gate "
        "is known (validate warns for production).",
        True,
    ),
    ("EnvironmentSpec", "redeploy"): (
        "if_changed: skip a deployment of the version the environment already runs; always: deploy "
        "every time (run --force does it once).",
        "if_changed",
    ),
    ("HealthCheck", "run"): (
        "Command that exits 0 when the deployment is healthy.",
        "curl -fsS localhost:8080/health",
    ),
    ("HealthCheck", "url"): (
        "URL that answers 2xx when the deployment is healthy.",
        "http://127.0.0.1:8080/health",
    ),
    ("HealthCheck", "timeout"): ("Give up (unhealthy) after this long.", "2m"),
    ("HealthCheck", "interval"): ("Time between two checks.", "2s"),
}


def describe(defs: dict[str, Any]) -> None:
    """Add the description and example of every documented key to the schema's definitions."""
    for (name, key), (text, example) in DOCS.items():
        prop = defs.get(name, {}).get("properties", {}).get(key)
        if prop is not None:
            prop["description"] = text
            prop["examples"] = [example]
