"""The command-line face: parse, call one service function, render, map the exit code.

Only :func:`run_cli` turns exceptions into exit codes: ``UserError`` prints one line, control
characters escaped (exit 2 unless the error says otherwise), Ctrl-C exits 130, anything else is a bug
and shows a traceback. Commands are imported lazily (``buildyard --version`` must start in well under 150 ms).
"""

from __future__ import annotations

import os
import sys

#: The module that runs the warm daemon serving this CLI (``python -m DAEMON_SERVER SOCKET``).
DAEMON_SERVER = "buildyard.cli.daemon_server"


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``buildyard`` command: through the warm daemon when there is one."""
    args = sys.argv[1:] if argv is None else argv
    from buildyard.daemon.client import run_via_daemon  # noqa: PLC0415 - stdlib only, cheap

    code = run_via_daemon(args, DAEMON_SERVER)
    sys.exit(run_cli(args) if code is None else code)


def run_cli(argv: list[str] | None = None) -> int:
    """Run the CLI in-process and return its exit code (used by tests).

    ``BUILDYARD_PROFILE=FILE`` writes a cProfile of the command to FILE (for ``python -m pstats``).
    """
    # The ``profile`` setting is environment-only and read here, before anything is imported (like the
    # daemon's switches in ``daemon.client``): importing ``buildyard.settings`` would be paid by every
    # command, ``--version`` included. ``buildyard.settings`` documents and validates it.
    profile = os.environ.get("BUILDYARD_PROFILE")
    if profile:
        import cProfile  # noqa: PLC0415

        profiler = cProfile.Profile()
        try:
            return profiler.runcall(_run_cli, argv)
        finally:
            profiler.dump_stats(profile)
    return _run_cli(argv)


def _run_cli(argv: list[str] | None) -> int:
    import click  # noqa: PLC0415 - keeps ``import buildyard.cli`` cheap

    from buildyard.cli.app import root  # noqa: PLC0415
    from buildyard.errors import InterruptedRun, UserError  # noqa: PLC0415

    try:
        result = root.main(args=argv, prog_name="buildyard", standalone_mode=False)
    except UserError as exc:
        _print_error(str(exc))
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return int(exc.exit_code or 0)
    except click.exceptions.Abort:
        _print_error("interrupted")
        return 130
    except click.UsageError as exc:
        where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
        _print_error(f"{exc.format_message()}{where}")
        return 2
    except click.ClickException as exc:
        _print_error(exc.format_message())
        return exc.exit_code
    except (KeyboardInterrupt, InterruptedRun):
        _print_error("interrupted")
        return 130
    return result if isinstance(result, int) else 0


def _print_error(message: str) -> None:
    """Each line of ``message`` as ``buildyard: error: ...``, control characters escaped (``\\x1b``).

    Messages quote names from pipeline files and command lines: escaping here, where every user
    error is shown, keeps a pull request's ``buildyard.yml`` from driving the reader's terminal.
    """
    from buildyard.termtext import safe_text  # noqa: PLC0415

    for line in message.split("\n"):
        sys.stderr.write(f"buildyard: error: {safe_text(line)}\n")
    sys.stderr.flush()
