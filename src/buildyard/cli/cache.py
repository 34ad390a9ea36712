"""``buildyard cache``: inspect, verify, prune and serve a cache directory."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from buildyard.cli._common import print_json, project_dir

if TYPE_CHECKING:
    from buildyard.cache.store import CacheStore

app = typer.Typer(help="Inspect, verify, prune and serve the content-addressed cache.", no_args_is_help=True)

CacheDirOption = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir", help="Cache directory (default: $BUILDYARD_HOME/cas, BUILDYARD_HOME=.buildyard)."
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _open(ctx: typer.Context, cache_dir: Path | None) -> CacheStore:
    from buildyard.cache.store import CacheStore, default_cache_dir  # noqa: PLC0415 - lazy: fast CLI start

    return CacheStore(cache_dir if cache_dir is not None else default_cache_dir(project_dir(ctx)))


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


@app.command()
def stats(ctx: typer.Context, cache_dir: CacheDirOption = None, as_json: JsonOption = False) -> None:
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
    typer.echo(f"entries     {entries}")
    typer.echo(f"blobs       {result.blobs} ({format_size(result.stored_bytes)} stored)")
    typer.echo(f"hit rate    {rate} ({result.hits} hits, {result.misses} misses, recent)")
    typer.echo(f"time saved  {result.time_saved_s:.1f} s")


@app.command("ls")
def ls(
    ctx: typer.Context,
    cache_dir: CacheDirOption = None,
    namespace: Annotated[
        str | None, typer.Option("--namespace", "-n", help="Only this namespace (ac, deps, kv/...).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
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
        typer.echo(f"{row['last_access']}  {row['bytes']:>12}  {row['namespace']:<14} {row['name']}{job}")


@app.command()
def verify(ctx: typer.Context, cache_dir: CacheDirOption = None, as_json: JsonOption = False) -> None:
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
        typer.echo(
            f"checked {report.blobs_checked} blobs: {len(report.corrupt)} corrupt (evicted), "
            f"{len(report.dangling_refs)} entries dropped"
        )
        for digest in report.corrupt:
            typer.echo(f"corrupt  {digest}")
        for ref in report.dangling_refs:
            typer.echo(f"dropped  {ref}")
    if not report.ok:
        from buildyard.cache.store import CacheIntegrityError  # noqa: PLC0415 - lazy: fast CLI start

        raise CacheIntegrityError(
            f"{len(report.corrupt)} corrupt blobs evicted, {len(report.dangling_refs)} entries dropped"
        )


@app.command()
def prune(
    ctx: typer.Context,
    cache_dir: CacheDirOption = None,
    max_size: Annotated[
        str | None, typer.Option("--max-size", help="Evict LRU entries until under this (5GB).")
    ] = None,
    older_than: Annotated[
        str | None, typer.Option("--older-than", help="Evict entries unused for this long (30d).")
    ] = None,
    as_json: JsonOption = False,
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
    typer.echo(
        f"removed {report.refs_removed} entries and {report.blobs_removed} blobs "
        f"({format_size(report.bytes_freed)}); {format_size(report.bytes_left)} left"
    )


@app.command()
def serve(  # noqa: PLR0917 - one parameter per CLI option
    ctx: typer.Context,
    cache_dir: CacheDirOption = None,
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8585,
    token: Annotated[
        list[str] | None, typer.Option("--token", help="Read-write bearer token (repeatable).")
    ] = None,
    read_token: Annotated[
        list[str] | None, typer.Option("--read-token", help="Read-only bearer token (repeatable).")
    ] = None,
    tokens_file: Annotated[
        Path | None, typer.Option("--tokens-file", help="File of '<read|write> <token>' lines.")
    ] = None,
) -> None:
    """Serve the cache over HTTP: Turborepo, Bazel, ccache/Gradle and buildyard clients."""
    from buildyard.server.cache_app import Tokens, load_tokens_file, serve_store  # noqa: PLC0415 - lazy

    from_file = load_tokens_file(tokens_file) if tokens_file is not None else Tokens()
    tokens = Tokens(
        write=from_file.write | frozenset(token or ()), read=from_file.read | frozenset(read_token or ())
    )
    serve_store(_open(ctx, cache_dir), tokens, host=host, port=port)
