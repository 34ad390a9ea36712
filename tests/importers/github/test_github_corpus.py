"""The GitHub corpus: every ``corpus/*.yml`` runs for real as ``.github/workflows/ci.yml`` with
``buildyard run -f`` in a git repository, and again after ``buildyard import``, with the outcome
GitHub documents.

Each file states its expectations in its header comments (GitHub's documented behaviour):
``# args:`` extra ``run`` options (the trigger), ``# expect: job=status ...``, ``# before: a<b``
(``a`` finished before ``b`` started), ``# output: job=text | job=text`` (the job's log holds the
text), ``# absent-output: job=text`` (it does not), ``# absent: job ...`` (not in the pipeline),
``# exit: N`` (the run's exit code), ``# file: path=content`` (another file of the repository;
``{root}`` in ``args`` is the repository's path).
"""

from __future__ import annotations

import datetime as dt
import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CORPUS = Path(__file__).parent / "corpus"
CASES = sorted(CORPUS.glob("*.yml"))
WORKFLOW = ".github/workflows/ci.yml"


@dataclass
class Expect:
    args: list[str] = field(default_factory=list)
    statuses: dict[str, str] = field(default_factory=dict)
    before: list[tuple[str, str]] = field(default_factory=list)
    output: list[tuple[str, str]] = field(default_factory=list)
    absent_output: list[tuple[str, str]] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)
    exit: int | None = None
    files: dict[str, str] = field(default_factory=dict)


def _pairs(value: str) -> list[tuple[str, str]]:
    pairs = [item.strip().split("=", 1) for item in value.split(" | ")]
    return [(job, text.replace("\\n", "\n")) for job, text in pairs]


def expectations(text: str) -> Expect:
    out = Expect()
    for line in text.splitlines():
        if not line.startswith("# "):
            continue
        key, _, value = line[2:].partition(": ")
        if key == "args":
            out.args += shlex.split(value)
        elif key == "expect":
            out.statuses.update(item.split("=", 1) for item in value.split())  # type: ignore[misc]
        elif key == "before":
            out.before += [tuple(item.split("<", 1)) for item in value.split()]  # type: ignore[misc]
        elif key == "output":
            out.output += _pairs(value)
        elif key == "absent-output":
            out.absent_output += _pairs(value)
        elif key == "absent":
            out.absent += value.split()
        elif key == "exit":
            out.exit = int(value)
        elif key == "file":
            path, _, content = value.partition("=")
            out.files[path] = content.replace("\\n", "\n")
    return out


def _time(value: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(value, dt.UTC)


def check_run(result: Any, expect: Expect) -> dict[str, Any]:
    data = json.loads(result.out)
    jobs = {j["name"]: j for j in data["jobs"]}
    for name in expect.absent:
        assert name not in jobs, f"{name} should not be in the pipeline"
    statuses = {name: jobs[name]["status"] for name in expect.statuses if name in jobs}
    assert statuses == expect.statuses, (statuses, sorted(jobs), result.err)
    for first, then in expect.before:
        assert _time(jobs[first]["finished_at"]) <= _time(jobs[then]["started_at"]), (first, then)
    for name, wanted in expect.output:
        log = Path(jobs[name]["log"]).read_text()
        assert wanted in log, (name, wanted, log)
    for name, unwanted in expect.absent_output:
        log = Path(jobs[name]["log"]).read_text()
        assert unwanted not in log, (name, unwanted, log)
    if expect.exit is not None:
        assert result.code == expect.exit, result.err
    return jobs


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_workflow_runs_with_githubs_outcome(
    case: Path, make_project: Callable[..., Path], cli: Callable[..., Any]
) -> None:
    text = case.read_text()
    expect = expectations(text)
    root = make_project({WORKFLOW: text, **expect.files})
    args = [a.replace("{root}", str(root)) for a in expect.args]
    result = cli("-C", root, "run", "-f", WORKFLOW, "--json", "--no-cache", *args)
    check_run(result, expect)


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_imported_workflow_validates_and_runs_the_same(
    case: Path, make_project: Callable[..., Path], cli: Callable[..., Any]
) -> None:
    text = case.read_text()
    expect = expectations(text)
    root = make_project({WORKFLOW: text, **expect.files})
    args = [a.replace("{root}", str(root)) for a in expect.args]
    trigger = [a for a in args if a not in ("-j", "4") and not a.startswith(("--secrets-file", str(root)))]
    imported = cli("-C", root, "import", WORKFLOW, "-o", "buildyard.yml", *trigger)
    assert imported.code == 0, imported.err
    assert "github format" in (root / "buildyard.yml").read_text()
    assert cli("-C", root, "validate").code == 0
    result = cli("-C", root, "run", "--json", "--no-cache", *args)
    check_run(result, expect)
