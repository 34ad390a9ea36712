"""The root command group. Subcommands are loaded lazily from the modules listed in ``COMMANDS``.

A command module exposes a ``click.Command``/``click.Group`` under the attribute named here. Nothing
is imported until a command is actually invoked.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import click

from buildyard import __version__

#: command name → (module, attribute, one-line help shown by ``--help`` without importing).
COMMANDS: dict[str, tuple[str, str, str]] = {
    "run": ("buildyard.cli.run", "run", "Run the pipeline as a DAG on this machine and record it."),
    "import": (
        "buildyard.cli.imports",
        "import_",
        "Convert a .gitlab-ci.yml into buildyard.yml; list what it could not carry.",
    ),
    "init": (
        "buildyard.cli.init",
        "init",
        "Look at the repository and write a buildyard.yml that passes on it first time.",
    ),
    "export": (
        "buildyard.cli.export",
        "export",
        "Write the pipeline as a .gitlab-ci.yml or GitHub Actions workflow; list what is not carried.",
    ),
    "design": (
        "buildyard.cli.design",
        "design",
        "Design buildyard.yml and its design document from a build_requirements file.",
    ),
    "report": (
        "buildyard.cli.report",
        "report",
        "Print the build_output document: artifacts, deployments, build time, success rate.",
    ),
    "validate": ("buildyard.cli.run", "validate", "Check the pipeline file; print every problem."),
    "schema": ("buildyard.cli.run", "schema", "Print the JSON Schema of buildyard.yml."),
    "history": ("buildyard.cli.history", "history", "List recent runs."),
    "show": ("buildyard.cli.history", "show", "Show one run: jobs, statuses, timings, resources."),
    "logs": ("buildyard.cli.history", "logs", "Print the (masked) logs of a run or job."),
    "explain": (
        "buildyard.cli.history",
        "explain",
        "Why a job ran instead of being restored from the cache.",
    ),
    "config": ("buildyard.cli.config", "config", "Show every setting, its value and where it came from."),
    "cache": ("buildyard.cli.cache", "app", "Inspect, verify, prune and serve the content-addressed cache."),
    "tests": ("buildyard.cli.tests", "app", "Test analytics: flaky, slowest, history of a test."),
    "gates": ("buildyard.cli.gates", "gates", "Check quality gates against existing report files."),
    "deps": ("buildyard.cli.deps", "app", "Dependency inventory, vulnerabilities, licenses, SBOM."),
    "scan": ("buildyard.cli.scan", "app", "Scan the project for committed secrets."),
    "artifacts": (
        "buildyard.cli.artifacts",
        "app",
        "Versioned, signed artifacts: push, pull, verify, promote, prune.",
    ),
    "keys": ("buildyard.cli.keys", "app", "Ed25519 keys that sign artifacts; keys trusted to verify them."),
    "daemon": ("buildyard.cli.daemon", "app", "The warm daemon that serves commands: start, stop, status."),
    "approve": ("buildyard.cli.deploy", "approve", "Approve a deployment job waiting for approval."),
    "reject": ("buildyard.cli.deploy", "reject", "Reject a deployment job waiting for approval."),
    "deploy": ("buildyard.cli.deploy", "app", "Deployments per environment: history, rollback."),
    "backup": ("buildyard.cli.backup", "app", "Back up, verify and restore history, artifacts, keys, logs."),
    "clean": ("buildyard.cli.backup", "clean", "Remove rebuildable state (caches); never keys or artifacts."),
    "serve": (
        "buildyard.cli.serve",
        "serve",
        "Serve projects: run queue, runners, REST API, dashboard, /metrics.",
    ),
    "trigger": ("buildyard.cli.serve", "trigger", "Queue a run on the buildyard server."),
    "user": ("buildyard.cli.serve", "user_app", "Server users and roles: create, list, rm."),
    "token": ("buildyard.cli.serve", "token_app", "Server API tokens: create, list, revoke."),
    "secrets": ("buildyard.cli.serve", "secrets_app", "Project secrets kept by the server: set, list, rm."),
    "agent": ("buildyard.cli.cluster", "agent", "Start an agent (a Dask worker running buildyard jobs)."),
    "cluster": ("buildyard.cli.cluster", "app", "A Dask cluster of agents: start one here, see its agents."),
}


def _load(module_name: str, attribute: str) -> click.Command:
    obj: Any = getattr(importlib.import_module(module_name), attribute)
    if not isinstance(obj, click.Command):
        raise TypeError(f"{module_name}.{attribute} is not a click command")
    return obj


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """All command names, without importing them."""
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """Import the command's module when it is asked for."""
        if cmd_name in COMMANDS:
            module_name, attribute, _ = COMMANDS[cmd_name]
            return _load(module_name, attribute)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List commands with their registered one-line help (no imports)."""
        rows = [(name, COMMANDS[name][2]) for name in sorted(COMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"buildyard {__version__}")
        ctx.exit(0)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-C",
    "--directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(),
    help="Project directory (default: current).",
)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_version,
    help="Print the version and exit.",
)
@click.pass_context
def root(ctx: click.Context, directory: Path) -> None:
    """Run buildyard.yml pipelines as a DAG on this machine: cached, gated and recorded."""
    ctx.obj = directory
