"""``buildyard gates``: check quality gates against report files already on disk."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from buildyard.cli._common import json_option, print_json, project_dir

if TYPE_CHECKING:
    from buildyard.gates.standalone import CheckOutcome


@click.group("gates")
def gates() -> None:
    """Quality gates: tests, coverage, benchmarks, scans, duration, artifact size."""


@gates.command("check")
@click.option(
    "-f",
    "--file",
    "-c",
    "--config",
    "config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("buildyard.yml"),
    show_default=True,
    help="Pipeline file whose 'gates:' list is checked (-f as in run and validate; -c still works).",
)
@click.option(
    "--coverage-baseline",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Coverage report of the baseline (for no_decrease).",
)
@click.option(
    "--baseline",
    "baselines",
    multiple=True,
    metavar="REF=FILE",
    help="Benchmark results standing for baseline REF (repeatable).",
)
@click.option(
    "--findings",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Dependency scan findings JSON (vulnerabilities, licenses).",
)
@click.option("--duration", help="Pipeline duration to check against duration gates (e.g. 8m30s).")
@click.option("--strict", is_flag=True, help="Fail gates whose input was not given (findings, duration).")
@json_option
@click.pass_context
def check(
    ctx: click.Context,
    config: Path,
    coverage_baseline: Path | None,
    baselines: tuple[str, ...],
    findings: Path | None,
    duration: str | None,
    strict: bool,
    as_json: bool,
) -> None:
    """Evaluate the gates of the pipeline file against existing reports; exit 1 if one fails."""
    # Lazy imports keep `buildyard --help` fast (see cli/app.py).
    from buildyard.engine.gating import scan_vulnerabilities  # noqa: PLC0415
    from buildyard.errors import UsageError  # noqa: PLC0415
    from buildyard.gates.errors import GatesFailedError  # noqa: PLC0415
    from buildyard.gates.standalone import check_gates  # noqa: PLC0415
    from buildyard.spec.durations import parse_duration  # noqa: PLC0415

    root = project_dir(ctx)
    refs: dict[str, Path] = {}
    for item in baselines:
        ref, sep, file = item.partition("=")
        if not sep or not ref or not file:
            raise UsageError(f"--baseline {item!r}: expected REF=FILE, e.g. main=bench/main.json")
        refs[ref] = Path(file)
    seconds = None
    if duration is not None:
        try:
            seconds = parse_duration(duration)
        except ValueError as exc:
            raise UsageError(f"--duration: {exc}") from None
    outcome = check_gates(
        config if config.is_absolute() else root / config,
        root=root,
        coverage_baseline=coverage_baseline,
        benchmark_baselines=refs,
        findings=findings,
        duration=seconds,
        strict=strict,
        scan=lambda gates: scan_vulnerabilities(gates, root),
    )
    if as_json:
        print_json(
            {
                "config": str(outcome.config),
                "status": outcome.status.value,
                "gates": [r.to_dict() for r in outcome.results],
            }
        )
    else:
        _render(outcome)
    failed = [r.gate for r in outcome.results if r.failed]
    if failed:
        raise GatesFailedError(f"{len(failed)} gate(s) failed: {', '.join(failed)}")


def _render(outcome: CheckOutcome) -> None:
    from buildyard.gates.summary import (  # noqa: PLC0415 - lazy, see above
        BENCHMARK_HEADER,
        GATE_HEADER,
        benchmark_rows,
        gate_rows,
    )

    if not outcome.results:
        click.echo(f"{outcome.config}: no gates to check")
        return
    _table(GATE_HEADER, gate_rows(outcome.results))
    for result in outcome.results:
        if result.benchmarks:
            click.echo(f"\nbenchmarks ({result.gate}):")
            _table(BENCHMARK_HEADER, benchmark_rows(result.benchmarks))
    click.echo(f"\n{len(outcome.results)} gate(s): {outcome.status.value}")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Rich table on a terminal, aligned plain columns otherwise (logs, pipes)."""
    if sys.stdout.isatty():
        from rich.console import Console  # noqa: PLC0415 - lazy, see above
        from rich.table import Table  # noqa: PLC0415

        table = Table(*header)
        for row in rows:
            table.add_row(*row)
        Console().print(table)
        return
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    for row in (header, *rows):
        cells = [c.ljust(w) for c, w in zip(row[:-1], widths[:-1], strict=True)]
        click.echo("  ".join([*cells, row[-1]]).rstrip())
