"""`mojo format --check`, which Mojo no longer has: format a copy of the sources and diff it.

    python tools/mojo_format_check.py [--mojo PATH] mojo/

Prints a unified diff of every file `mojo format` would change; exit code 1 when there is one.
"""

from __future__ import annotations

import argparse
import difflib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mojo", default="mojo")
    parser.add_argument("source", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mojo-format-") as tmp:
        copy = Path(tmp, "src")
        shutil.copytree(args.source, copy)
        done = subprocess.run(
            [args.mojo, "format", "-q", str(copy)], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            return 2
        changed = 0
        for formatted in sorted(copy.rglob("*.mojo")):
            original = args.source / formatted.relative_to(copy)
            before, after = original.read_text().splitlines(True), formatted.read_text().splitlines(True)
            if before != after:
                changed += 1
                sys.stdout.writelines(
                    difflib.unified_diff(before, after, str(original), f"{original} (formatted)")
                )
    print(f"{changed} Mojo file(s) would be reformatted" if changed else "Mojo sources are formatted")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
