"""Run Mojo test files and write a JUnit report of their `PASS`/`FAIL` lines.

    python tools/mojo_junit.py --out reports/mojo-junit.xml mojo/tests/test_*.mojo

Each test file is run with `mojo run -I mojo FILE`; it prints `PASS name seconds` or
`FAIL name seconds message` per test (see mojo/tests/test_ops.mojo). A file that does not compile or
crashes is one failed test case with its output. Exit code 1 when anything failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path


def run_file(mojo: str, path: Path) -> tuple[ET.Element, int, int]:
    """Run one test file; its `<testsuite>` element, number of tests and of failures."""
    start = time.perf_counter()
    done = subprocess.run([mojo, "run", "-I", "mojo", str(path)], capture_output=True, text=True, check=False)
    suite = ET.Element("testsuite", name=path.stem)
    tests = failures = 0
    for line in done.stdout.splitlines():
        parts = line.split(" ", 3)
        if len(parts) < 3 or parts[0] not in ("PASS", "FAIL"):
            continue
        tests += 1
        case = ET.SubElement(suite, "testcase", classname=path.stem, name=parts[1], time=parts[2])
        if parts[0] == "FAIL":
            failures += 1
            ET.SubElement(case, "failure", message=parts[3] if len(parts) > 3 else "failed")
    if done.returncode != 0 and failures == 0:
        tests += 1
        failures += 1
        case = ET.SubElement(suite, "testcase", classname=path.stem, name="run", time="0")
        failure = ET.SubElement(case, "failure", message=f"mojo run exited {done.returncode}")
        failure.text = (done.stdout + done.stderr)[-4000:]
    suite.set("tests", str(tests))
    suite.set("failures", str(failures))
    suite.set("time", f"{time.perf_counter() - start:.3f}")
    return suite, tests, failures


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--mojo", default="mojo")
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    root = ET.Element("testsuites")
    total = failed = 0
    for path in args.files:
        suite, tests, failures = run_file(args.mojo, path)
        root.append(suite)
        total, failed = total + tests, failed + failures
        for case in suite:
            verdict = "FAIL" if case.find("failure") is not None else "ok"
            print(f"{verdict:4} {path.stem}::{case.get('name')}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(args.out, encoding="utf-8", xml_declaration=True)
    print(f"{total} Mojo tests, {failed} failed -> {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
