"""``buildyard cache``: inspect, verify, prune and serve a cache directory."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

import click

from buildyard.cli._common import json_option, print_json, project_dir, setting_default
from buildyard.extras import require_extra

if TYPE_CHECKING:
    from buildyard.cache.store import CacheStore

cache_dir_option = click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Cache directory (default: $BUILDYARD_HOME/cas, BUILDYARD_HOME=.buildyard).",
)


@click.group(name="cache")
def app() -> None:
    """Inspect, verify, prune and serve the content-addressed cache."""


def _open(ctx: click.Context, cache_dir: Path | None) -> CacheStore:
    from buildyard.cache.store import CacheStore, default_cache_dir  # noqa: PLC0415 - lazy: fast CLI start

    return CacheStore(cache_dir if cache_dir is not None else default_cache_dir(project_dir(ctx)))


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


@app.command()
@cache_dir_option
@json_option
@click.pass_context
def stats(ctx: click.Context, cache_dir: Path | None, as_json: bool) -> None:
    """Entries, size, recent hit rate and time saved."""
    from buildyard.cache.units import format_size  # noqa: PLC0415 - lazy: fast CLI start

    result = _open(ctx, cache_dir).stats()
    if as_json:
        print_json(
            {
                "entries": result.entries,
                "blobs": result.blobs,
                "stored_bytes": result.stored_bytes,
                "hits": result.hits,
                "misses": result.misses,
                "hit_rate": result.hit_rate,
                "time_saved_s": round(result.time_saved_s, 3),
            }
        )
        return
    entries = ", ".join(f"{ns}: {n}" for ns, n in result.entries.items()) or "none"
    rate = f"{result.hit_rate:.0%}" if result.hit_rate is not None else "n/a"
    click.echo(f"entries     {entries}")
    click.echo(f"blobs       {result.blobs} ({format_size(result.stored_bytes)} stored)")
    click.echo(f"hit rate    {rate} ({result.hits} hits, {result.misses} misses, recent)")
    click.echo(f"time saved  {result.time_saved_s:.1f} s")


@app.command("ls")
@cache_dir_option
@click.option("-n", "--namespace", help="Only this namespace (ac, deps, kv/...).")
@json_option
@click.pass_context
def ls(ctx: click.Context, cache_dir: Path | None, namespace: str | None, as_json: bool) -> None:
    """List entries, most recently used first."""
    store = _open(ctx, cache_dir)
    refs = sorted(store.refs.iter_refs(namespace), key=lambda r: r.last_access, reverse=True)
    rows = [
        {
            "namespace": r.namespace,
            "name": r.name,
            "job": r.data.get("job", ""),
            "bytes": sum(store.cas.stored_size(d) for d in r.blobs),
            "last_access": _when(r.last_access),
        }
        for r in refs
    ]
    if as_json:
        print_json(rows)
        return
    for row in rows:
        job = f"  {row['job']}" if row["job"] else ""
        click.echo(f"{row['last_access']}  {row['bytes']:>12}  {row['namespace']:<14} {row['name']}{job}")


@app.command()
@cache_dir_option
@json_option
@click.pass_context
def verify(ctx: click.Context, cache_dir: Path | None, as_json: bool) -> None:
    """Check every blob; corrupt blobs are evicted. Exit 1 if anything was wrong."""
    report = _open(ctx, cache_dir).verify()
    if as_json:
        print_json(
            {
                "blobs_checked": report.blobs_checked,
                "corrupt": report.corrupt,
                "dangling": report.dangling_refs,
            }
        )
    else:
        click.echo(
            f"checked {report.blobs_checked} blobs: {len(report.corrupt)} corrupt (evicted), "
            f"{len(report.dangling_refs)} entries dropped"
        )
        for digest in report.corrupt:
            click.echo(f"corrupt  {digest}")
        for ref in report.dangling_refs:
            click.echo(f"dropped  {ref}")
    if not report.ok:
        from buildyard.cache.store import CacheIntegrityError  # noqa: PLC0415 - lazy: fast CLI start

        raise CacheIntegrityError(
            f"{len(report.corrupt)} corrupt blobs evicted, {len(report.dangling_refs)} entries dropped"
        )


@app.command()
@cache_dir_option
@click.option("--max-size", help="Evict LRU entries until under this (5GB).")
@click.option("--older-than", help="Evict entries unused for this long (30d).")
@json_option
@click.pass_context
def prune(
    ctx: click.Context, cache_dir: Path | None, max_size: str | None, older_than: str | None, as_json: bool
) -> None:
    """Evict least-recently-used entries and delete unreferenced blobs."""
    from buildyard.cache.units import format_size, parse_age, parse_size  # noqa: PLC0415 - lazy

    limit = parse_size(max_size) if max_size is not None else None
    age = parse_age(older_than) if older_than is not None else None
    report = _open(ctx, cache_dir).prune(max_size=limit, older_than_s=age)
    if as_json:
        print_json(
            {
                "entries_removed": report.refs_removed,
                "blobs_removed": report.blobs_removed,
                "bytes_freed": report.bytes_freed,
                "bytes_left": report.bytes_left,
            }
        )
        return
    click.echo(
        f"removed {report.refs_removed} entries and {report.blobs_removed} blobs "
        f"({format_size(report.bytes_freed)}); {format_size(report.bytes_left)} left"
    )


@app.command()
@cache_dir_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=int, default=8585, show_default=True, help="Port to listen on.")
@click.option(
    "--tokens-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File of '<read|write> <token>' lines (keep it mode 600).",
)
@click.option(
    "--token",
    multiple=True,
    callback=setting_default("cache_tokens"),
    help="Read-write bearer token (repeatable; env BUILDYARD_CACHE_TOKENS, space-separated). "
    "On the command line it is visible to every local user: prefer the env var or --tokens-file.",
)
@click.option(
    "--read-token",
    multiple=True,
    callback=setting_default("cache_read_tokens"),
    help="Read-only bearer token (repeatable; env BUILDYARD_CACHE_READ_TOKENS, space-separated).",
)
@click.option(
    "--header-timeout",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="Seconds a client has to send a request's headers before the connection is closed.",
)
@click.option(
    "--max-transfers",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Large (over 1 MiB) downloads streamed at once; others wait (--transfer-wait), then get 503.",
)
@click.option(
    "--transfer-wait",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Seconds a large download waits for a free transfer before a 503 with Retry-After.",
)
@click.pass_context
def serve(
    ctx: click.Context,
    cache_dir: Path | None,
    host: str,
    port: int,
    tokens_file: Path | None,
    token: tuple[str, ...],
    read_token: tuple[str, ...],
    header_timeout: float,
    max_transfers: int,
    transfer_wait: float,
) -> None:
    """Serve the cache over HTTP: Turborepo, Bazel, ccache/Gradle and buildyard clients.

    Give tokens in a file (--tokens-file) or the environment (BUILDYARD_CACHE_TOKENS,
    BUILDYARD_CACHE_READ_TOKENS), not on the command line, which every local user can read.
    """
    from click.core import ParameterSource  # noqa: PLC0415 - lazy: fast CLI start

    require_extra("server", "buildyard cache serve")
    from buildyard.server.cache_app import (  # noqa: PLC0415 - lazy: fast CLI start
        ServerLimits,
        Tokens,
        load_tokens_file,
        serve_store,
    )

    on_command_line = [
        f"--{name.replace('_', '-')}"
        for name in ("token", "read_token")
        if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE
    ]
    if on_command_line:
        click.echo(
            f"warning: {' and '.join(on_command_line)} on the command line is readable by every local user "
            "(ps); use --tokens-file or BUILDYARD_CACHE_TOKENS / BUILDYARD_CACHE_READ_TOKENS instead",
            err=True,
        )
    if tokens_file is not None and tokens_file.is_file() and tokens_file.stat().st_mode & 0o004:
        click.echo(f"warning: {tokens_file} is readable by every local user; chmod 600 it", err=True)
    from_file = load_tokens_file(tokens_file) if tokens_file is not None else Tokens()
    tokens = Tokens(
        write=from_file.write | frozenset(token or ()), read=from_file.read | frozenset(read_token or ())
    )
    limits = ServerLimits(
        header_timeout_s=header_timeout, max_transfers=max_transfers, transfer_wait_s=transfer_wait
    )
    serve_store(_open(ctx, cache_dir), tokens, host=host, port=port, limits=limits)
