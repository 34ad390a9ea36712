"""What a CI log shows when a job fails: a real failing pytest test, named, with its output.

``buildyard run`` writing to a pipe (as in CI, ``CI=true``) prints each failed job's last lines when it
ends and, at the end of the run, a longer but bounded tail of every failed job's masked log.
"""

from __future__ import annotations

import os
import subprocess
import sys

from buildyard.cli.render import RECAP_LINES

PASSING = "".join(f"def test_ok_{i}():\n    pass\n\n" for i in range(30))
SKIPPED = "".join(
    f"@pytest.mark.skip(reason='needs tool {i}')\ndef test_skipped_{i}():\n    pass\n\n" for i in range(25)
)
BROKEN = """\
def test_broken_total():
    for i in range(300):
        print(f"computing line {i}")
    print("marker: the total was 41, token", os.environ["TOKEN"])
    assert 41 == 42, "total is off by one"
"""


def test_a_failing_pytest_test_is_named_with_its_output_at_the_end_of_a_ci_log(make_project) -> None:
    root = make_project(
        {
            "test_app.py": "import os\n\nimport pytest\n\n" + PASSING + SKIPPED + BROKEN,
            "buildyard.yml": f"""\
jobs:
  unit:
    secrets: [TOKEN]
    script: {sys.executable} -m pytest -p no:cacheprovider -ra test_app.py
  docs: {{script: echo docs built}}
  package: {{needs: [unit], script: echo never}}
""",
        }
    )
    env = {**os.environ, "CI": "true", "TOKEN": "s3cr3t-t0ken"}
    done = subprocess.run(
        [sys.executable, "-m", "buildyard", "-C", str(root), "run"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    out = done.stdout
    assert done.returncode == 1, done.stderr
    assert "✗ unit failed (exit 1)" in out and "✓ docs success" in out
    # The recap comes last, before the run's verdict, and holds what a reader needs: the test's
    # name, its assertion and what it printed (masked), which the short tail at the job's end
    # (the summary lines of 25 skipped tests) does not reach.
    recap = out.split("1 failed job: the end of each log", 1)[1]
    assert recap.index("run #1 failed") > recap.index("FAILED test_app.py::test_broken_total")
    assert "total is off by one" in recap
    assert "marker: the total was 41, token ***" in recap
    assert "s3cr3t-t0ken" not in out
    assert "marker" not in out.split("1 failed job: the end of each log", 1)[0]
    # Bounded: only the last RECAP_LINES lines of the log.
    shown = [line for line in recap.splitlines() if line.startswith("│ ") and "last " not in line]
    assert len(shown) == RECAP_LINES
    assert "computing line 0" not in recap and "computing line 299" in recap


def test_no_recap_when_nothing_failed_or_the_failure_is_allowed(make_project) -> None:
    root = make_project(
        {"buildyard.yml": "jobs:\n  a: {script: echo ok}\n  b: {allow_failure: true, script: exit 3}\n"}
    )
    done = subprocess.run(
        [sys.executable, "-m", "buildyard", "-C", str(root), "run"],
        capture_output=True,
        text=True,
        env={**os.environ, "CI": "true"},
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "b failed (exit 3) [allowed]" in done.stdout
    assert "failed job" not in done.stdout
