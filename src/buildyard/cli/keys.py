"""``buildyard keys``: generate, import, export and list Ed25519 signing and trusted keys."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from buildyard.cli._common import json_option, print_json, project_dir, setting_default

if TYPE_CHECKING:
    from buildyard.artifacts.keys import KeyRing

keys_option = click.option(
    "--keys-dir",
    callback=setting_default("keys_dir"),
    type=click.Path(file_okay=False, path_type=Path),
    help="Key directory (default: $BUILDYARD_HOME/keys).",
)
name_option = click.option("--name", default="default", show_default=True, help="Key name.")


@click.group(name="keys")
def app() -> None:
    """Ed25519 keys that sign artifacts, and the public keys trusted to verify them."""


def _ring(ctx: click.Context, keys_dir: Path | None) -> KeyRing:
    from buildyard.artifacts.keys import KeyRing, project_keys_dir  # noqa: PLC0415 - lazy: fast CLI start

    return KeyRing(keys_dir or project_keys_dir(project_dir(ctx)))


@app.command()
@name_option
@keys_option
@click.pass_context
def generate(ctx: click.Context, name: str, keys_dir: Path | None) -> None:
    """Create a signing key pair (private key 0600) and trust its public key."""
    ring = _ring(ctx, keys_dir)
    public = ring.generate(name)
    click.echo(f"generated key {name!r} ({public.keyid[:16]}); private key in {ring.private_dir}")


@app.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@name_option
@keys_option
@click.pass_context
def import_(ctx: click.Context, file: Path, name: str, keys_dir: Path | None) -> None:
    """Import FILE: a public key becomes trusted; a private key becomes a signing key."""
    public, private = _ring(ctx, keys_dir).import_file(file, name)
    kind = "signing key (and its public key, trusted)" if private else "trusted public key"
    click.echo(f"imported {kind} {name!r} ({public.keyid[:16]})")


@app.command()
@name_option
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file.")
@click.option("--private", is_flag=True, help="Export the private key (requires --out; file created 0600).")
@keys_option
@click.pass_context
def export(ctx: click.Context, name: str, out: Path | None, private: bool, keys_dir: Path | None) -> None:
    """Print (or write) the public key NAME; private keys are only ever written to a new 0600 file."""
    from buildyard.artifacts.keys import public_pem  # noqa: PLC0415 - lazy
    from buildyard.errors import UsageError  # noqa: PLC0415 - lazy
    from buildyard.fsutil import atomic_write_bytes  # noqa: PLC0415 - lazy

    ring = _ring(ctx, keys_dir)
    if private:
        if out is None:
            raise UsageError("--private needs --out FILE (private keys are never printed)")
        ring.export_private(name, out)
        click.echo(f"wrote private key {name!r} to {out} (mode 0600)")
        return
    pem = public_pem(ring.public_key(name).key)
    if out is None:
        click.echo(pem.decode(), nl=False)
    else:
        atomic_write_bytes(out, pem)
        click.echo(f"wrote public key {name!r} to {out}")


@app.command("list")
@keys_option
@json_option
@click.pass_context
def list_(ctx: click.Context, keys_dir: Path | None, as_json: bool) -> None:
    """Trusted public keys, and which have a private (signing) key here."""
    ring = _ring(ctx, keys_dir)
    rows: list[dict[str, Any]] = [
        {"name": k.name, "keyid": k.keyid, "signing": ring.has_private(k.name)} for k in ring.trusted()
    ]
    if as_json:
        print_json(rows)
        return
    for row in rows:
        click.echo(f"{row['name']:<20} {row['keyid'][:16]}  {'signing' if row['signing'] else 'trusted'}")
