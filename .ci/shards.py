"""Test shards of buildyard's own pipeline (``buildyard.yml``): which test files each shard runs.

The split is deterministic and balanced by measured durations: every test file pytest collects
(``tests/**/test_*.py`` and ``*_test.py``, as ``testpaths`` and ``python_files`` say) goes to one shard,
longest first, each to the shard with the least time so far (ties: the lower shard number). Durations
come from ``.ci/test-durations.json`` (seconds per file, measured from the shards' JUnit reports with
``durations``); a file it does not list yet counts as the median of those it does.

    python .ci/shards.py files K N [PATH...]     # the test files of shard K of N (within PATHs)
    python .ci/shards.py summary JUNIT...        # tests, failures and time per report
    python .ci/shards.py durations JUNIT...      # rewrite .ci/test-durations.json from reports

JUnit reports are parsed with defusedxml (a dependency of buildyard), like every report buildyard reads.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import parse

ROOT = Path(__file__).resolve().parents[1]
DURATIONS = ROOT / ".ci" / "test-durations.json"
TESTS = "tests"


def test_files(root: Path, within: Sequence[str] = ()) -> list[str]:
    """Every test file pytest would collect under ``tests/`` (paths relative to ``root``), sorted;
    only those under one of ``within`` when given."""
    found = {
        path.relative_to(root).as_posix()
        for pattern in ("test_*.py", "*_test.py")
        for path in (root / TESTS).rglob(pattern)
        if not any(part.startswith(".") or part == "__pycache__" for part in path.relative_to(root).parts)
    }
    if within:
        prefixes = [w.rstrip("/") for w in within]
        found = {f for f in found if any(f == p or f.startswith(p + "/") for p in prefixes)}
    return sorted(found)


def split(files: Iterable[str], durations: Mapping[str, float], shards: int) -> list[list[str]]:
    """``files`` in ``shards`` groups of about equal total duration (longest processing time first).

    Deterministic: the same files and durations always give the same groups.
    """
    if shards < 1:
        raise ValueError(f"shards must be at least 1, got {shards}")
    known = [durations[f] for f in files if f in durations]
    default = statistics.median(known) if known else 1.0
    weighted = sorted(((durations.get(f, default), f) for f in files), key=lambda t: (-t[0], t[1]))
    groups: list[list[str]] = [[] for _ in range(shards)]
    totals = [0.0] * shards
    for seconds, name in weighted:
        i = min(range(shards), key=lambda k: (totals[k], k))
        groups[i].append(name)
        totals[i] += seconds
    return [sorted(g) for g in groups]


def load_durations(path: Path = DURATIONS) -> dict[str, float]:
    """The durations file (``{file: seconds}``); empty when there is none."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    if not isinstance(data, dict) or not all(isinstance(v, int | float) for v in data.values()):
        raise SystemExit(f"{path}: expected a JSON object of test file -> seconds; regenerate it (durations)")
    return {str(k): float(v) for k, v in data.items()}


def _cases(report: Path) -> Iterable[Element]:
    try:
        tree = parse(report)
    except (OSError, ParseError, DefusedXmlException) as exc:
        raise SystemExit(f"{report}: not a readable JUnit report ({exc})") from exc
    return tree.iter("testcase")


def file_of(classname: str, root: Path) -> str | None:
    """The test file of a JUnit ``classname`` (``tests.cli.test_run_cli.TestX`` -> its ``.py``)."""
    parts = classname.split(".")
    for end in range(len(parts), 0, -1):
        candidate = "/".join(parts[:end]) + ".py"
        if (root / candidate).is_file():
            return candidate
    return None


def measured(reports: Iterable[Path], root: Path) -> dict[str, float]:
    """Seconds per test file, summed over the test cases of ``reports``."""
    out: dict[str, float] = {}
    for report in reports:
        for case in _cases(report):
            name = file_of(case.get("classname", ""), root)
            if name is not None:
                out[name] = out.get(name, 0.0) + float(case.get("time", "0") or 0)
    return out


def summary(reports: Sequence[Path]) -> list[str]:
    """One line per report: tests, failures, errors, skipped and the summed test time."""
    lines = []
    for report in reports:
        tests = failed = errors = skipped = 0
        seconds = 0.0
        for case in _cases(report):
            tests += 1
            seconds += float(case.get("time", "0") or 0)
            kinds = {child.tag for child in case}
            failed += "failure" in kinds
            errors += "error" in kinds
            skipped += "skipped" in kinds
        lines.append(
            f"{report}: {tests} tests, {failed} failed, {errors} errors, {skipped} skipped, {seconds:.0f}s"
        )
    return lines


def write_durations(data: Mapping[str, float], path: Path = DURATIONS) -> None:
    """Write the durations file atomically (sorted, 0.1 s precision)."""
    text = json.dumps({k: round(v, 1) for k, v in sorted(data.items())}, indent=1) + "\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``files``, ``summary`` or ``durations``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    files = sub.add_parser("files", help="the test files of shard K of N")
    files.add_argument("shard", type=int)
    files.add_argument("shards", type=int)
    files.add_argument("within", nargs="*", help="only test files under these paths")
    for name in ("summary", "durations"):
        sub.add_parser(name).add_argument("reports", nargs="+", type=Path)
    args = parser.parse_args(argv)
    if args.command == "files":
        if not 1 <= args.shard <= args.shards:
            parser.error(f"shard must be between 1 and {args.shards}, got {args.shard}")
        chosen = test_files(ROOT, args.within)
        if not chosen:
            parser.error(f"no test files under {' '.join(args.within) or TESTS}")
        for name in split(chosen, load_durations(), args.shards)[args.shard - 1]:
            print(name)
    elif args.command == "summary":
        print("\n".join(summary(args.reports)))
    else:
        data = measured(args.reports, ROOT)
        write_durations(data)
        print(f"{DURATIONS}: {len(data)} test files, {sum(data.values()):.0f}s in total")
    return 0


if __name__ == "__main__":
    sys.exit(main())
