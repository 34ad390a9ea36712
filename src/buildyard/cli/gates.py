"""``buildyard gates``: check quality gates against report files already on disk."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from buildyard.cli._common import print_json, project_dir

if TYPE_CHECKING:
    from buildyard.gates.standalone import CheckOutcome

app = typer.Typer(
    help="Quality gates: tests, coverage, benchmarks, scans, duration, artifact size.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@app.command("check")
def check(  # noqa: PLR0917 - Typer maps each option to a parameter
    ctx: typer.Context,
    config: Annotated[
        Path, typer.Option("--config", "-c", help="Pipeline file whose 'gates:' list is checked.")
    ] = Path("buildyard.yml"),
    coverage_baseline: Annotated[
        Path | None,
        typer.Option("--coverage-baseline", help="Coverage report of the baseline (no_decrease)."),
    ] = None,
    baseline: Annotated[
        list[str] | None,
        typer.Option(
            "--baseline", help="REF=FILE: benchmark results standing for baseline REF (repeatable)."
        ),
    ] = None,
    findings: Annotated[
        Path | None,
        typer.Option("--findings", help="Dependency scan findings JSON (vulnerabilities, licenses)."),
    ] = None,
    duration: Annotated[
        str | None, typer.Option("--duration", help="Pipeline duration to check (e.g. 8m30s).")
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Fail gates whose input was not given (findings, duration).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
) -> None:
    """Evaluate the gates of the pipeline file against existing reports; exit 1 if one fails."""
    # Lazy imports keep `buildyard --help` fast (see cli/app.py).
    from buildyard.errors import UsageError  # noqa: PLC0415
    from buildyard.gates.errors import GatesFailedError  # noqa: PLC0415
    from buildyard.gates.standalone import check_gates  # noqa: PLC0415
    from buildyard.gates.units import parse_duration  # noqa: PLC0415

    root = project_dir(ctx)
    baselines: dict[str, Path] = {}
    for item in baseline or []:
        ref, sep, file = item.partition("=")
        if not sep or not ref or not file:
            raise UsageError(f"--baseline {item!r}: expected REF=FILE, e.g. main=bench/main.json")
        baselines[ref] = Path(file)
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
        benchmark_baselines=baselines,
        findings=findings,
        duration=seconds,
        strict=strict,
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
        typer.echo(f"{outcome.config}: no gates to check")
        return
    _table(GATE_HEADER, gate_rows(outcome.results))
    for result in outcome.results:
        if result.benchmarks:
            typer.echo(f"\nbenchmarks ({result.gate}):")
            _table(BENCHMARK_HEADER, benchmark_rows(result.benchmarks))
    typer.echo(f"\n{len(outcome.results)} gate(s): {outcome.status.value}")


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
        typer.echo("  ".join([*cells, row[-1]]).rstrip())
