"""``buildyard artifacts``: push, pull, verify, export, list, show, diff, promote, prune, fsck."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from buildyard.cli._common import json_option, print_json, project_dir, setting_default

if TYPE_CHECKING:
    from collections.abc import Callable

    from buildyard.artifacts.keys import PublicKey
    from buildyard.artifacts.lifecycle import GateVerdict
    from buildyard.artifacts.model import Manifest
    from buildyard.artifacts.repo import Repository

repo_option = click.option(
    "--repo",
    "repo_dir",
    callback=setting_default("artifacts_dir"),
    type=click.Path(file_okay=False, path_type=Path),
    help="Repository directory (default: the artifacts_dir setting, BUILDYARD_ARTIFACTS).",
)
keys_option = click.option(
    "--keys-dir",
    callback=setting_default("keys_dir"),
    type=click.Path(file_okay=False, path_type=Path),
    help="Key directory (default: the keys_dir setting, BUILDYARD_KEYS_DIR; else <home>/keys).",
)
trusted_option = click.option(
    "--key",
    "key_files",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Trust only this public key file (repeatable; default: the key directory's trusted keys).",
)


@click.group(name="artifacts")
def app() -> None:
    """Versioned, signed artifacts with SBOM and provenance: push, pull, verify, promote, prune."""


def _open(ctx: click.Context, repo_dir: Path | None, keys_dir: Path | None) -> Repository:
    from buildyard.artifacts.api import open_repository  # noqa: PLC0415 - lazy: fast CLI start

    return open_repository(project_dir(ctx), repo_dir, keys_dir=keys_dir)


def _load_keys(files: tuple[Path, ...]) -> list[PublicKey]:
    from buildyard.artifacts.errors import KeyRingError  # noqa: PLC0415 - lazy
    from buildyard.artifacts.keys import load_public_key  # noqa: PLC0415 - lazy

    keys = []
    for path in files:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise KeyRingError(f"{path}: cannot read public key ({exc.strerror})") from None
        keys.append(load_public_key(data, name=path.stem, source=str(path)))
    return keys


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


@app.command()
@click.argument("name")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--version", "version", help="A SemVer (1.4.0, 1.4.0+build.57.abc) or 'from_git_tag'.")
@click.option("--version-from-file", type=click.Path(dir_okay=False), help="Read the version from this file.")
@click.option(
    "--type",
    "artifact_type",
    default="application",
    type=click.Choice(["application", "library", "container", "docs", "config", "report"]),
    help="Kind of artifact.",
)
@click.option("--signing-key", default="default", show_default=True, help="Name of the signing key.")
@click.option("--build-number", type=int, help="CI build number (goes into the build metadata).")
@click.option("--run-id", help="Pipeline run id.")
@click.option("--job-id", help="Pipeline job id.")
@click.option("--no-sbom", is_flag=True, help="Do not attach the project's SBOM.")
@repo_option
@keys_option
@json_option
@click.pass_context
def push(
    ctx: click.Context,
    name: str,
    paths: tuple[Path, ...],
    version: str | None,
    version_from_file: str | None,
    artifact_type: str,
    signing_key: str,
    build_number: int | None,
    run_id: str | None,
    job_id: str | None,
    no_sbom: bool,
    repo_dir: Path | None,
    keys_dir: Path | None,
    as_json: bool,
) -> None:
    """Push PATHS as the signed artifact NAME at a version (atomic; unchanged files are not rewritten)."""
    from buildyard.artifacts.api import RunContext, publish  # noqa: PLC0415 - lazy
    from buildyard.artifacts.model import ArtifactType  # noqa: PLC0415 - lazy
    from buildyard.errors import UsageError  # noqa: PLC0415 - lazy

    if (version is None) == (version_from_file is None):
        raise UsageError("give exactly one of --version and --version-from-file")
    setting: str | dict[str, str] = version if version is not None else {"from_file": str(version_from_file)}
    project = project_dir(ctx)
    result = publish(
        project,
        name=name,
        paths=list(paths),
        version=setting,
        artifact_type=ArtifactType(artifact_type),
        context=RunContext(run_id=run_id, job_id=job_id, build_number=build_number),
        repo=_open(ctx, repo_dir, keys_dir),
        key=signing_key,
        with_sbom=not no_sbom,
    )
    m = result.manifest
    if as_json:
        print_json(
            {
                "name": m.name,
                "version": m.version,
                "created": result.created,
                "files": len(m.files),
                "bytes": m.total_size,
                "blobs_written": result.blobs_written,
            }
        )
        return
    state = "pushed" if result.created else "unchanged (already pushed)"
    click.echo(
        f"{m.ref}  {state}: {len(m.files)} files, {m.total_size} bytes, {result.blobs_written} new blobs"
    )


@app.command()
@click.argument("ref")
@click.option("--dest", required=True, type=click.Path(file_okay=False, path_type=Path), help="Directory.")
@click.option("--force", is_flag=True, help="Replace a non-empty DEST as a whole (atomically).")
@trusted_option
@repo_option
@keys_option
@click.pass_context
def pull(
    ctx: click.Context,
    ref: str,
    dest: Path,
    key_files: tuple[Path, ...],
    repo_dir: Path | None,
    keys_dir: Path | None,
    force: bool,
) -> None:
    """Verify REF (NAME@VERSION|CHANNEL|latest) and make DEST the directory of its files, atomically
    (DEST is left as it was if anything fails; a non-empty DEST needs --force and is replaced whole)."""
    result = _open(ctx, repo_dir, keys_dir).pull(ref, dest, trusted=_load_keys(key_files), force=force)
    m = result.manifest
    click.echo(f"{m.ref}  verified (signed by {result.signer.name}), {len(m.files)} files -> {dest}")


@app.command()
@click.argument("ref", required=False)
@click.option(
    "--bundle", type=click.Path(dir_okay=False, path_type=Path), help="Verify an exported bundle offline."
)
@trusted_option
@repo_option
@keys_option
@json_option
@click.pass_context
def verify(
    ctx: click.Context,
    ref: str | None,
    bundle: Path | None,
    key_files: tuple[Path, ...],
    repo_dir: Path | None,
    keys_dir: Path | None,
    as_json: bool,
) -> None:
    """Check signature, manifest, SBOM and every file digest of REF, or of --bundle FILE with --key."""
    from buildyard.errors import UsageError  # noqa: PLC0415 - lazy

    if (ref is None) == (bundle is None):
        raise UsageError("give either REF or --bundle FILE")
    if bundle is not None:
        from buildyard.artifacts.bundle import verify_bundle  # noqa: PLC0415 - lazy

        if not key_files:
            raise UsageError("offline verification needs the signer's public key: --key FILE")
        verified = verify_bundle(bundle, _load_keys(key_files))
        manifest, signer = verified.manifest, verified.signer
    else:
        result = _open(ctx, repo_dir, keys_dir).verify(str(ref), _load_keys(key_files))
        manifest, signer = result.manifest, result.signer
    if as_json:
        print_json(
            {"ref": manifest.ref, "signer": signer.name, "keyid": signer.keyid, "files": len(manifest.files)}
        )
        return
    click.echo(
        f"{manifest.ref}  OK: signature by {signer.name} ({signer.keyid[:16]}), {len(manifest.files)} files"
    )


@app.command()
@click.argument("ref")
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Bundle file (.tar)."
)
@repo_option
@keys_option
@click.pass_context
def export(ctx: click.Context, ref: str, out: Path, repo_dir: Path | None, keys_dir: Path | None) -> None:
    """Write REF as a self-contained bundle (files, manifest, SBOM, signed provenance)."""
    from buildyard.artifacts.bundle import export_bundle  # noqa: PLC0415 - lazy

    manifest = export_bundle(_open(ctx, repo_dir, keys_dir), ref, out)
    click.echo(f"{manifest.ref}  exported to {out}")


@app.command("import")
@click.argument("bundle", type=click.Path(dir_okay=False, path_type=Path))
@trusted_option
@repo_option
@keys_option
@click.pass_context
def import_(
    ctx: click.Context,
    bundle: Path,
    key_files: tuple[Path, ...],
    repo_dir: Path | None,
    keys_dir: Path | None,
) -> None:
    """Verify an exported BUNDLE and add it to the repository with its original signature."""
    from buildyard.artifacts.audit import current_actor  # noqa: PLC0415 - lazy
    from buildyard.artifacts.bundle import import_bundle  # noqa: PLC0415 - lazy

    repo = _open(ctx, repo_dir, keys_dir)
    manifest, created = import_bundle(repo, bundle, actor=current_actor(), trusted=_load_keys(key_files))
    click.echo(f"{manifest.ref}  {'imported' if created else 'already present'} (signature verified)")


@app.command("list")
@click.argument("name", required=False)
@repo_option
@keys_option
@json_option
@click.pass_context
def list_(
    ctx: click.Context, name: str | None, repo_dir: Path | None, keys_dir: Path | None, as_json: bool
) -> None:
    """List artifact versions in SemVer order, with the channels pointing at them."""
    repo = _open(ctx, repo_dir, keys_dir)
    if name is not None:
        from buildyard.artifacts.names import check_name  # noqa: PLC0415 - lazy

        check_name(name)
    state = repo.channel_state()
    rows = [
        {
            "name": r.artifact,
            "version": r.version,
            "channels": state.channels_of(r.artifact, r.version),
            "pushed_at": _when(r.pushed_at),
            "pushed_by": r.pushed_by,
        }
        for r in repo.records(name)
    ]
    if as_json:
        print_json(rows)
        return
    for row in rows:
        channels = f"  [{', '.join(row['channels'])}]" if row["channels"] else ""
        click.echo(f"{row['pushed_at']}  {row['name']}@{row['version']}{channels}")


@app.command()
@click.argument("ref")
@repo_option
@keys_option
@json_option
@click.pass_context
def show(ctx: click.Context, ref: str, repo_dir: Path | None, keys_dir: Path | None, as_json: bool) -> None:
    """Metadata, files, signature, channels and audit trail of NAME[@VERSION]."""
    import msgspec  # noqa: PLC0415 - lazy

    from buildyard.artifacts.attest import envelope_keyids  # noqa: PLC0415 - lazy
    from buildyard.artifacts.errors import ArtifactError  # noqa: PLC0415 - lazy

    repo = _open(ctx, repo_dir, keys_dir)
    record = repo.resolve(ref)
    manifest = repo.manifest(record)
    try:
        signer = repo.verify_signature(record).signer.name
        signature = f"valid (signed by {signer})"
    except ArtifactError as exc:
        signature = f"INVALID: {exc}"
    state = repo.channel_state()
    events = [
        e.to_json()
        for e in repo.audit.events()
        if e.artifact == record.artifact and e.version == record.version
    ]
    data: dict[str, Any] = {
        "manifest": msgspec.to_builtins(manifest),
        "signature": signature,
        "keyids": envelope_keyids(repo.blob(record.envelope_blob, what=record.name)),
        "channels": state.channels_of(record.artifact, record.version),
        "pushed_at": _when(record.pushed_at),
        "pushed_by": record.pushed_by,
        "audit": events,
    }
    if as_json:
        print_json(data)
        return
    b = manifest.build
    click.echo(f"{manifest.ref}  ({manifest.type.value})")
    click.echo(f"signature  {signature}")
    click.echo(f"channels   {', '.join(data['channels']) or '-'}")
    click.echo(f"pushed     {data['pushed_at']} by {record.pushed_by}")
    click.echo(f"source     commit {b.commit or '-'} branch {b.branch or '-'} tag {b.tag or '-'}")
    click.echo(
        f"build      #{'-' if b.build_number is None else b.build_number} at {b.build_time} by {b.builder}"
    )
    sbom = "attached" if record.sbom_blob else "none"
    click.echo(f"deps       {len(manifest.dependencies)} packages; SBOM {sbom}")
    click.echo(f"files      {len(manifest.files)} ({manifest.total_size} bytes)")
    for f in manifest.files:
        click.echo(f"  {f.size:>12}  {f.sha256[:16]}  {f.path}")
    for e in events:
        where = f" -> {e['channel']}" if e["channel"] else ""
        why = f" ({e['reason']})" if e["reason"] else ""
        click.echo(f"audit      {_when(e['time'])} {e['actor']} {e['action']}{where}{why}")


@app.command()
@click.argument("old")
@click.argument("new")
@repo_option
@keys_option
@json_option
@click.pass_context
def diff(
    ctx: click.Context, old: str, new: str, repo_dir: Path | None, keys_dir: Path | None, as_json: bool
) -> None:
    """Files, dependencies and source metadata that changed from OLD to NEW."""
    from buildyard.artifacts.lifecycle import diff as diff_versions  # noqa: PLC0415 - lazy

    result = diff_versions(_open(ctx, repo_dir, keys_dir), old, new)
    sections = {"files": result.files, "dependencies": result.dependencies, "metadata": result.metadata}
    if as_json:
        print_json(
            {
                "old": result.old,
                "new": result.new,
                **{
                    k: [{"change": c.kind, "key": c.key, "old": c.old, "new": c.new} for c in v]
                    for k, v in sections.items()
                },
            }
        )
        return
    click.echo(f"{result.old} -> {result.new}")
    marks = {"added": "+", "removed": "-", "changed": "~"}
    for section, changes in sections.items():
        click.echo(f"{section}: {len(changes)} changed")
        for c in changes:
            detail = f" {c.old} -> {c.new}" if c.kind == "changed" and section != "files" else ""
            click.echo(f"  {marks[c.kind]} {c.key}{detail}")


def _history_gate_check(ctx: click.Context) -> Callable[[Manifest], GateVerdict]:
    """The verdict of an artifact's source run from the project's run history (opened when asked)."""

    def check(manifest: Manifest) -> GateVerdict:
        from buildyard.engine.deploying import gate_check  # noqa: PLC0415 - lazy
        from buildyard.engine.runner import RunOptions, open_history  # noqa: PLC0415

        store = open_history(RunOptions(project_dir=project_dir(ctx)))
        try:
            return gate_check(store)(manifest)
        finally:
            store.close()

    return check


@app.command()
@click.argument("ref")
@click.option("--to", "channel", required=True, help="Channel to promote to (dev, staging, production...).")
@click.option("--reason", help="Why (recorded in the audit log).")
@repo_option
@keys_option
@json_option
@click.pass_context
def promote(
    ctx: click.Context,
    ref: str,
    channel: str,
    reason: str | None,
    repo_dir: Path | None,
    keys_dir: Path | None,
    as_json: bool,
) -> None:
    """Point CHANNEL at REF after checking its signature and the channel policy."""
    from buildyard.artifacts.audit import current_actor  # noqa: PLC0415 - lazy
    from buildyard.artifacts.lifecycle import promote as promote_version  # noqa: PLC0415 - lazy

    result = promote_version(
        _open(ctx, repo_dir, keys_dir),
        ref,
        channel,
        actor=current_actor(),
        reason=reason,
        gates_check=_history_gate_check(ctx),
    )
    if as_json:
        print_json(
            {
                "name": result.artifact,
                "version": result.version,
                "channel": result.channel,
                "previous": result.previous,
                "changed": result.changed,
            }
        )
        return
    if not result.changed:
        click.echo(f"{result.artifact}@{result.version}  already in {result.channel}")
        return
    was = f" (was {result.previous})" if result.previous else ""
    click.echo(f"{result.artifact}@{result.version}  promoted to {result.channel}{was}")


@app.command()
@click.option("--dry-run", is_flag=True, help="Only list what would be deleted.")
@repo_option
@keys_option
@json_option
@click.pass_context
def prune(
    ctx: click.Context, dry_run: bool, repo_dir: Path | None, keys_dir: Path | None, as_json: bool
) -> None:
    """Delete versions the retention rules drop (never a channel's current or previous version)."""
    from buildyard.artifacts.audit import current_actor  # noqa: PLC0415 - lazy
    from buildyard.artifacts.lifecycle import prune as prune_versions  # noqa: PLC0415 - lazy

    result = prune_versions(_open(ctx, repo_dir, keys_dir), dry_run=dry_run, actor=current_actor())
    if as_json:
        print_json(
            {
                "dry_run": result.dry_run,
                "deleted": [{"ref": i.record.name, "reason": i.reason} for i in result.items],
                "blobs_removed": result.blobs_removed,
                "bytes_freed": result.bytes_freed,
            }
        )
        return
    verb = "would delete" if dry_run else "deleted"
    for item in result.items:
        click.echo(f"{verb}  {item.record.name}  ({item.reason})")
    click.echo(
        f"{len(result.items)} versions {verb}; {result.blobs_removed} blobs, {result.bytes_freed} bytes freed"
    )


@app.command()
@repo_option
@keys_option
@json_option
@click.pass_context
def fsck(ctx: click.Context, repo_dir: Path | None, keys_dir: Path | None, as_json: bool) -> None:
    """Check every version's signature and every blob, and the audit chain. Exit 1 on problems."""
    from buildyard.artifacts.errors import IntegrityError  # noqa: PLC0415 - lazy
    from buildyard.artifacts.lifecycle import fsck as fsck_repo  # noqa: PLC0415 - lazy

    report = fsck_repo(_open(ctx, repo_dir, keys_dir))
    if as_json:
        print_json({"versions": report.versions, "files": report.files, "problems": report.problems})
    else:
        click.echo(
            f"checked {report.versions} versions, {report.files} files: {len(report.problems)} problems"
        )
        for problem in report.problems:
            click.echo(f"problem  {problem}")
    if not report.ok:
        raise IntegrityError(f"{len(report.problems)} problems found (see above)")
