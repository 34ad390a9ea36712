"""``buildyard backup create|verify|restore`` and ``buildyard clean``: presentation only."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from buildyard.cli._common import db_option, json_option, print_json, project_dir


def _passphrase(*, confirm: bool) -> str | None:
    """From ``BUILDYARD_BACKUP_PASSPHRASE``, else a prompt on a terminal (never a CLI argument)."""
    from buildyard.settings import load  # noqa: PLC0415 - lazy: fast CLI start

    given = load().backup_passphrase  # environment only: never a file, never an argument
    if given is not None:
        return given
    if sys.stdin.isatty():
        value: str = click.prompt("Backup passphrase", hide_input=True, confirmation_prompt=confirm)
        return value
    return None


def _render(summary: dict[str, object], verb: str) -> None:
    mib = int(str(summary["bytes"])) / (1 << 20)
    runs = summary["runs"] if summary["runs"] is not None else "-"
    click.echo(
        f"{verb} {summary['path']}: {summary['files']} files, {mib:.1f} MiB, "
        f"history {summary['history'] or '-'} "
        f"({runs} runs), {summary['artifact_versions']} artifact versions, {summary['keys']} keys "
        f"in {summary['seconds']} s"
    )


@click.group(name="backup")
def app() -> None:
    """Back up, verify and restore the history, artifact repository, keys and logs."""


@app.command()
@click.argument("dest", type=click.Path(path_type=Path))
@db_option
@click.option("--no-logs", is_flag=True, help="Leave the job logs out.")
@click.option("--no-history", is_flag=True, help="Leave the history database out.")
@json_option
@click.pass_context
def create(
    ctx: click.Context, dest: Path, db: str | None, no_logs: bool, no_history: bool, as_json: bool
) -> None:
    """Write a consistent backup to DEST: a new directory, or a FILE.tar / FILE.tar.zst (keys encrypted
    with the passphrase from BUILDYARD_BACKUP_PASSPHRASE or a prompt)."""
    from buildyard.backup import create as create_backup  # noqa: PLC0415 - lazy
    from buildyard.backup import sources_for  # noqa: PLC0415 - lazy

    sources = sources_for(project_dir(ctx), db_url=db)
    summary = create_backup(
        sources, dest, passphrase=_passphrase(confirm=True), logs=not no_logs, history=not no_history
    ).as_dict()
    if as_json:
        print_json(summary)
    else:
        _render(summary, "backed up to")


@app.command()
@click.argument("backup", type=click.Path(path_type=Path))
@json_option
def verify(backup: Path, as_json: bool) -> None:
    """Check every digest, the seal, the key bundle and the history copy of BACKUP. Exit 1 on problems."""
    from buildyard.backup import BadBackupError  # noqa: PLC0415 - lazy
    from buildyard.backup import verify as verify_backup  # noqa: PLC0415 - lazy

    summary = verify_backup(backup, passphrase=_passphrase(confirm=False))
    data = summary.as_dict()
    if as_json:
        print_json(data)
    else:
        _render(data, "checked")
        for problem in summary.problems:
            click.echo(f"problem  {problem}")
    if summary.problems:
        raise BadBackupError(f"{backup}: {len(summary.problems)} problems (first: {summary.problems[0]})")


@app.command()
@click.argument("backup", type=click.Path(path_type=Path))
@click.option(
    "--to",
    "target",
    type=click.Path(file_okay=False, path_type=Path),
    help="Home directory to restore everything into (default: the project's $BUILDYARD_HOME, "
    "$BUILDYARD_KEYS_DIR, $BUILDYARD_ARTIFACTS).",
)
@db_option
@click.option("--force", is_flag=True, help="Replace a non-empty target (and a non-empty database's tables).")
@json_option
@click.pass_context
def restore(
    ctx: click.Context, backup: Path, target: Path | None, db: str | None, force: bool, as_json: bool
) -> None:
    """Verify BACKUP, then restore it into an empty home directory (atomically: built beside, renamed)."""
    from buildyard.backup import restore as restore_backup  # noqa: PLC0415 - lazy
    from buildyard.backup import sources_for  # noqa: PLC0415 - lazy

    # --to: one self-contained home; else where this project's home, keys and repository live
    places = sources_for(project_dir(ctx), db_url=db)
    summary = restore_backup(
        backup,
        target or places.home,
        passphrase=_passphrase(confirm=False),
        force=force,
        db_url=db,
        keys_dir=None if target else places.keys_dir,
        repo_root=None if target else places.repo_root,
    ).as_dict()
    if as_json:
        print_json(summary)
    else:
        _render(summary, "restored into")


@click.command(name="clean")
@click.option(
    "--logs-older-than",
    type=click.IntRange(min=0),
    metavar="DAYS",
    help="Also remove the logs of runs older than DAYS days.",
)
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
@json_option
@click.pass_context
def clean(ctx: click.Context, logs_older_than: int | None, dry_run: bool, as_json: bool) -> None:
    """Remove rebuildable state (caches, deploy scratch dirs); never keys, artifacts or history."""
    from buildyard.artifacts.repo import buildyard_home  # noqa: PLC0415 - lazy
    from buildyard.backup import clean as clean_home  # noqa: PLC0415 - lazy

    age = None if logs_older_than is None else logs_older_than * 86400.0
    report = clean_home(buildyard_home(project_dir(ctx)), logs_older_than_s=age, dry_run=dry_run)
    if as_json:
        print_json({"removed": report.removed, "bytes": report.bytes, "dry_run": dry_run})
        return
    verb = "would remove" if dry_run else "removed"
    for path in report.removed:
        click.echo(f"{verb}  {path}")
    click.echo(f"{verb} {len(report.removed)} entries, {report.bytes / (1 << 20):.1f} MiB")
