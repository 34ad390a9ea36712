"""Test analytics over real runs: what counts as evidence (tested content, restored results), which
flaky lines a run prints, and which recorded results a run's analytics reads."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

PY = sys.executable
GITIGNORE = ".buildyard/\nreports/\n"


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def _project(make_project, files: dict[str, str], *, name: str = "proj") -> Path:
    root = make_project(files, name=name)
    (root / ".gitignore").write_text(GITIGNORE)
    _git(root, "commit", "-qam", "ignore reports")
    return root


def _pipeline(name: str = "pipeline", *, cache: bool = False, target: str = "tests") -> str:
    cache_line = "" if cache else "    cache: false\n"
    return f"""\
name: {name}
gates:
  - tests: {{junit: "reports/junit.xml", max_failures: 0}}
jobs:
  test:
{cache_line}    env: {{PYTHONPATH: "."}}
    script: {PY} -m pytest -q -p no:cacheprovider --junitxml=reports/junit.xml {target}
    artifacts: {{paths: [reports/]}}
"""


CALC = "def add(a, b):\n    return a + b\n"
TESTS = "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"


def test_a_test_broken_and_fixed_in_the_working_tree_is_not_flaky(cli, make_project) -> None:
    root = _project(make_project, {"buildyard.yml": _pipeline(), "calc.py": CALC, "tests/test_c.py": TESTS})
    assert cli("-C", root, "run").code == 0
    (root / "calc.py").write_text("def add(a, b):\n    return a - b\n")  # broken, not committed
    broken = cli("-C", root, "run")
    assert broken.code == 1
    (root / "calc.py").write_text(CALC)  # fixed again: the committed content
    fixed = cli("-C", root, "run")
    assert fixed.code == 0 and "flaky" not in fixed.out
    assert json.loads(cli("-C", root, "tests", "flaky", "--json").out) == []
    # an untracked (not ignored) file is content too: failing only with it is not flakiness
    (root / "conftest.py").write_text("import calc\ncalc.add = lambda a, b: 0\n")
    assert cli("-C", root, "run").code == 1
    (root / "conftest.py").unlink()
    assert cli("-C", root, "run").code == 0
    assert json.loads(cli("-C", root, "tests", "flaky", "--json").out) == []
    history = json.loads(cli("-C", root, "tests", "history", "test_add", "--json").out)
    assert [h["outcome"] for h in history] == ["passed", "failed", "passed", "failed", "passed"]


FLAKY = (
    "import pathlib\n\n\ndef test_flaky():\n    marker = pathlib.Path('reports/seen')\n"
    "    first = not marker.exists()\n    marker.parent.mkdir(exist_ok=True)\n"
    "    marker.write_text('x')\n    assert not first\n"
)


def test_flaky_on_the_same_content_is_still_found_and_printed_once(cli, make_project) -> None:
    root = _project(make_project, {"buildyard.yml": _pipeline(), "tests/test_f.py": FLAKY})
    assert cli("-C", root, "run").code == 1
    second = cli("-C", root, "run")
    assert second.code == 0
    assert "flaky: tests.test_f::test_flaky" in second.out  # new in this run
    third = cli("-C", root, "run")
    assert third.code == 0 and "flaky:" not in third.out  # already known: not repeated
    listed = cli("-C", root, "tests", "flaky")
    assert "tests.test_f::test_flaky" in listed.out and "passed 2× and failed 1×" in listed.out


def test_restored_results_of_a_cached_run_are_not_new_executions(cli, make_project) -> None:
    slow = "import time\n\n\ndef test_slow():\n    time.sleep(0.05)\n"
    root = _project(make_project, {"buildyard.yml": _pipeline(cache=True), "tests/test_s.py": slow})
    first = json.loads(cli("-C", root, "run", "--json").out)
    assert [j["status"] for j in first["jobs"] if j["name"] == "test"] == ["success"]
    for _ in range(2):
        again = json.loads(cli("-C", root, "run", "--json").out)
        assert [j["status"] for j in again["jobs"] if j["name"] == "test"] == ["cached"]
    slowest = json.loads(cli("-C", root, "tests", "slowest", "--json").out)
    assert [(s["test"].rsplit("::", 1)[-1], s["runs"]) for s in slowest] == [("test_slow", 1)]
    history = json.loads(cli("-C", root, "tests", "history", "test_slow", "--json").out)
    assert len(history) == 1


def test_a_run_reads_only_its_own_pipelines_results_for_its_tests(cli, make_project) -> None:
    files = {
        "buildyard.yml": _pipeline("flaky-one", target="tests/test_f.py"),
        "other.yml": _pipeline("steady", target="tests/test_c.py"),
        "calc.py": CALC,
        "tests/test_c.py": TESTS,
        "tests/test_f.py": FLAKY,
    }
    root = _project(make_project, files)
    cli("-C", root, "run")
    cli("-C", root, "run")
    assert "tests.test_f::test_flaky" in cli("-C", root, "tests", "flaky").out
    steady = cli("-C", root, "run", "-f", "other.yml")
    assert steady.code == 0, steady.err
    assert "flaky" not in steady.out  # another pipeline's flaky test is not this run's business


def test_the_per_run_query_reads_the_runs_tests_not_the_whole_window(history_url: str) -> None:
    from buildyard.store.history import RunRecord, SqlHistory, TestRecord

    store = SqlHistory(history_url)
    now = time.time()
    rows = [("p", "a", False), ("q", "a", False), ("p", "b", False), ("p", "a", True), ("p", "a", False)]
    try:
        for i, (pipeline, test, restored) in enumerate(rows):
            record = RunRecord(
                id=f"{i:032x}",
                pipeline=pipeline,
                number=0,
                status="success",
                event="push",
                created_at=now + i,
            )
            run = store.create_run(record)
            result = TestRecord(run.id, "test", 0, "s", "c", test, "passed", 0.1, 1, "abc", now + i)
            store.save_tests([replace(result, tree="t" * 32, report=f"r{i}", restored=restored)])
        found = store.tests_for_flakiness(run_id=f"{4:032x}", pipeline="p", since=now - 60)
        assert sorted((r.run_id[-1], r.name, r.tree) for r in found) == [
            ("0", "a", "t" * 32),
            ("4", "a", "t" * 32),
        ]
        assert store.recorded_reports({"r2", "r9", "r1"}) == {"r1", "r2"}
        assert [r.run_id[-1] for r in store.tests_since(now - 60)] == ["0", "1", "2", "4"]
    finally:
        store.close()


def test_migration_keeps_recorded_results_as_executions_on_a_clean_tree(history_url: str) -> None:
    import sqlalchemy as sa
    from alembic import command
    from alembic.config import Config

    import buildyard.store.history as history

    engine = sa.create_engine(history_url)
    with engine.connect() as conn:
        cfg = Config()
        cfg.set_main_option("script_location", str(Path(history.__file__).parent / "migrations"))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0006")
        conn.execute(
            sa.text(
                "INSERT INTO runs (id, pipeline, number, status, event, created_at, ref, branch, tag, sha,"
                " trigger, project_dir, pipeline_file, variables, selected, jobs_total, message) VALUES"
                " ('r1', 'p', 1, 'success', 'push', 1, '', '', '', 'abc', 'cli', '', '', '{}', '[]', 0, '')"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO test_results VALUES ('r1', 'test', 0, 's', 'c', 'a', 'passed', 0.5, 1, 'abc', 1)"
            )
        )
        conn.commit()
    engine.dispose()
    store = history.SqlHistory(history_url)
    try:
        [row] = store.tests_since(0)
        assert (row.name, row.tree, row.report, row.restored) == ("a", "", "", False)
    finally:
        store.close()
