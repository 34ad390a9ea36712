"""The command-line face: parse, call one service function, render, map the exit code.

Only :func:`main` turns exceptions into exit codes: ``UserError`` prints one line (exit 2 unless the
error says otherwise), ``InterruptedRun``/Ctrl-C exit 130, anything else is a bug with a traceback.
Command modules import their services lazily so ``buildyard --version`` stays fast.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``buildyard`` command."""
    sys.exit(run_cli(argv))


def run_cli(argv: list[str] | None = None) -> int:
    """Run the CLI in-process and return its exit code (used by tests)."""
    import click

    from buildyard.cli.app import build_app
    from buildyard.errors import InterruptedRun, UserError

    app = build_app()
    command = __import__("typer").main.get_command(app)
    try:
        # With standalone_mode=False click returns the code of a typer.Exit instead of raising it.
        returned = command.main(args=argv, prog_name="buildyard", standalone_mode=False)
        if isinstance(returned, int):
            return returned
    except UserError as exc:
        _print_error(str(exc))
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return int(exc.exit_code or 0)
    except click.exceptions.Abort:
        _print_error("aborted")
        return 130
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
        _print_error(f"{exc.format_message()}{hint}")
        return 2
    except click.ClickException as exc:
        _print_error(exc.format_message())
        return exc.exit_code
    except (KeyboardInterrupt, InterruptedRun):
        _print_error("interrupted")
        return 130
    return 0


def _print_error(message: str) -> None:
    for line in message.splitlines() or [""]:
        sys.stderr.write(f"buildyard: error: {line}\n")
    sys.stderr.flush()
