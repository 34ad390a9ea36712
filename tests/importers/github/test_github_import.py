"""GitHub workflows: format detection, located errors, notes, ``on:`` conversion, cache behaviour of
converted jobs, and the pure helpers (env files, matrix expansion)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from buildyard.importers import Format, detect, load_foreign
from buildyard.importers.github_context import STATE_DIR, expand_matrix, instance_suffix, result_path
from buildyard.importers.github_steps import StepFailure, parse_env_file

WF = ".github/workflows/ci.yml"
SIMPLE = """\
on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - run: echo hi
"""


def _write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# -- detection --


def test_detect_by_place_and_by_content(tmp_path: Path) -> None:
    assert detect(_write(tmp_path, WF, "anything: 1\n")) is Format.GITHUB
    assert detect(_write(tmp_path, "ci/release.yml", SIMPLE)) is Format.GITHUB
    own = "on:\n  push: {}\njobs:\n  build:\n    runs_on: local\n    steps:\n      - run: echo\n"
    assert detect(_write(tmp_path, "pipeline.yml", own)) is Format.BUILDYARD
    assert detect(_write(tmp_path, "x.gitlab-ci.yml", SIMPLE)) is Format.GITLAB
    assert detect(_write(tmp_path, "buildyard.yml", SIMPLE)) is Format.BUILDYARD


def test_load_foreign_converts_a_workflow_outside_github_dir(make_project: Callable[..., Path]) -> None:
    root = make_project({"ci/main.yml": SIMPLE})
    imported = load_foreign(root / "ci/main.yml", root)
    assert imported is not None and imported.format is Format.GITHUB
    assert list(imported.pipeline.jobs) == ["build"]


# -- located errors: one line each, exit 2, no traceback --


@pytest.mark.parametrize(
    ("text", "wanted"),
    [
        (
            SIMPLE.replace("jobs:", "jbos: {}\njobs:"),
            ".github/workflows/ci.yml:2:1: jbos: unknown key 'jbos'",
        ),
        (
            SIMPLE.replace("    steps:", "    step:\n    steps:"),
            "ci.yml:5:5: jobs.build.step: unknown key 'step'",
        ),
        (SIMPLE.replace("    runs-on", "    needs: biuld\n    runs-on"), "needs 'biuld', which is not a job"),
        (
            SIMPLE.replace("- run: echo hi", "- run: echo hi\n        uses: actions/checkout@v4"),
            "exactly one of",
        ),
        (SIMPLE.replace("- run: echo hi", "- uses: ./missing"), "local action './missing' has no action.yml"),
        (SIMPLE.replace("    runs-on", "    if: env.X == 'y'\n    runs-on"), "a job's if cannot read 'env'"),
        (
            SIMPLE.replace("    runs-on", "    strategy:\n      matrix: ${{ fromJSON('[1]') }}\n    runs-on"),
            "a matrix computed by an expression",
        ),
        (SIMPLE.replace("on: push", "on: push\njobs: [1"), "YAML syntax error"),
        ("on: push\n", "a workflow needs 'jobs'"),
        (SIMPLE.replace("- run: echo hi", "- run: echo hi\n        env: [A]"), "env takes a mapping"),
    ],
)
def test_bad_workflow_gets_a_located_one_line_error(
    text: str, wanted: str, make_project: Callable[..., Path], cli: Callable[..., Any]
) -> None:
    root = make_project({WF: text})
    result = cli("-C", root, "run", "-f", WF)
    assert result.code == 2, result.err
    assert wanted in result.err
    assert "Traceback" not in result.err
    assert ".github/workflows/ci.yml:" in result.err.splitlines()[0]


SERVICES = """\
on: push
concurrency: ci
jobs:
  db:
    runs-on: ubuntu-latest
    environment: production
    services:
      postgres:
        image: postgres:16
      redis:
        image: redis
    steps:
      - uses: other/thing@v2
      - run: echo hi
"""


def test_services_warn_naming_them_and_strict_makes_them_errors(
    make_project: Callable[..., Path], cli: Callable[..., Any]
) -> None:
    root = make_project({WF: SERVICES})
    result = cli("-C", root, "run", "-f", WF, "--no-cache")
    assert result.code == 1  # other/thing@v2 is not run: the job fails at that step
    assert "services (postgres, redis) need a container engine" in result.err
    strict = cli("-C", root, "run", "-f", WF, "--strict")
    assert strict.code == 2
    assert "ci.yml:8:7: jobs.db.services: services (postgres, redis)" in strict.err


def test_import_lists_every_construct_not_carried(
    make_project: Callable[..., Path], cli: Callable[..., Any]
) -> None:
    root = make_project({WF: SERVICES})
    result = cli("-C", root, "import", WF, "--json")
    assert result.code == 0, result.err
    notes = json.loads(result.out)["not_carried"]
    text = "\n".join(notes)
    for part in ("concurrency", "services (postgres, redis)", "environment 'production'", "other/thing@v2"):
        assert part in text, (part, notes)
    assert all(n.startswith(".github/workflows/ci.yml:") for n in notes)


# -- on: --

ON = """\
on:
  push:
    branches: [main, 'release/**']
    tags: ['v*']
    paths-ignore: ['docs/**']
  pull_request:
    branches: [main]
  schedule:
    - cron: '30 5 * * 1'
  workflow_dispatch:
    inputs:
      level:
        type: choice
        options: [low, high]
        default: low
      dry:
        type: boolean
        default: true
  release:
    types: [published]
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - run: echo hi
"""


def test_on_becomes_buildyards_on(make_project: Callable[..., Path]) -> None:
    root = make_project({WF: ON})
    imported = load_foreign(root / WF, root)
    assert imported is not None
    on = imported.pipeline.on
    assert on is not None and on.push is not None and on.pull_request is not None and on.manual is not None
    assert on.push.branches == ["main", "release/**"]
    assert on.push.tags == ["v*"]
    assert on.push.paths_ignore == ["docs/**"]
    assert on.pull_request.branches == ["main"]
    assert [s.cron for s in on.schedule] == ["30 5 * * 1"]
    assert on.manual.inputs["level"].options == ["low", "high"]
    assert on.manual.inputs["dry"].default is True
    assert any("on.release" in str(n) for n in imported.notes)


def test_on_filters_decide_whether_a_change_starts_the_run(
    make_project: Callable[..., Path], cli: Callable[..., Any]
) -> None:
    root = make_project({WF: ON})
    cli("-C", root, "import", WF, "-o", "buildyard.yml")
    skipped = cli("-C", root, "run", "--changed", "docs/readme.md")
    assert "not triggered" in skipped.out
    ran = cli("-C", root, "run", "--changed", "src/app.py", "--no-cache")
    assert ran.code == 0 and "not triggered" not in ran.out


def test_run_f_changed_is_decided_by_the_workflows_own_on(
    make_project: Callable[..., Path], cli: Callable[..., Any]
) -> None:
    root = make_project({WF: ON})
    skipped = cli("-C", root, "run", "-f", WF, "--changed", "docs/readme.md")
    assert skipped.code == 0 and "not triggered" in skipped.out, skipped.err
    ran = cli("-C", root, "run", "-f", WF, "--changed", "src/app.py", "--no-cache", "--json")
    assert ran.code == 0, ran.err
    assert [j["status"] for j in json.loads(ran.out)["jobs"]] == ["success"]


# -- the cache: deterministic keys, outputs restored --

OUTPUTS = """\
on: push
jobs:
  produce:
    runs-on: ubuntu-latest
    outputs:
      version: ${{ steps.v.outputs.version }}
    steps:
      - id: v
        run: echo "version=4.5.6" >> "$GITHUB_OUTPUT"
  consume:
    needs: produce
    runs-on: ubuntu-latest
    steps:
      - run: echo "got=${{ needs.produce.outputs.version }} sha=${{ github.sha }}"
"""


def test_converted_definition_does_not_depend_on_the_commit(make_project: Callable[..., Path]) -> None:
    root = make_project({WF: OUTPUTS})
    first = load_foreign(root / WF, root)
    (root / "other.txt").write_text("x")
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-qm", "second"], cwd=root, check=True)
    second = load_foreign(root / WF, root)
    assert first is not None and second is not None
    assert first.document == second.document


def test_cached_producer_gives_its_outputs_to_a_consumer_that_runs(
    make_project: Callable[..., Path], cli: Callable[..., Any]
) -> None:
    root = make_project({WF: OUTPUTS})
    cold = cli("-C", root, "run", "-f", WF, "--json")
    assert {j["name"]: j["status"] for j in json.loads(cold.out)["jobs"]} == {
        "produce": "success",
        "consume": "success",
    }
    warm = cli("-C", root, "run", "-f", WF, "--json")
    assert {j["status"] for j in json.loads(warm.out)["jobs"]} == {"cached"}
    # a fresh checkout (no results on disk) and a changed consumer: the producer's result comes
    # back from the cache and the consumer reads its outputs from it
    import shutil

    shutil.rmtree(root / STATE_DIR)
    (root / WF).write_text(OUTPUTS.replace('echo "got=', 'echo "now got='))
    third = cli("-C", root, "run", "-f", WF, "--json")
    jobs = {j["name"]: j for j in json.loads(third.out)["jobs"]}
    assert jobs["produce"]["status"] == "cached"
    assert jobs["consume"]["status"] == "success"
    assert "now got=4.5.6 sha=" in Path(jobs["consume"]["log"]).read_text()
    assert json.loads((root / result_path("produce")).read_text())["outputs"] == {"version": "4.5.6"}


# -- results of this run only: a job skipped in this run is skipped for its dependents --

STALE = """\
on: push
jobs:
  gate:
    runs-on: ubuntu-latest
    steps:
      - run: test "${{ vars.FAIL }}" != yes
  main_only:
    if: github.ref == 'refs/heads/main'
    runs-on: ubuntu-latest
    outputs:
      word: ${{ steps.w.outputs.word }}
    steps:
      - id: w
        run: echo "word=from-main" >> "$GITHUB_OUTPUT"
  after_gate:
    needs: gate
    runs-on: ubuntu-latest
    outputs:
      word: ${{ steps.w.outputs.word }}
    steps:
      - id: w
        run: echo "word=from-gate" >> "$GITHUB_OUTPUT"
  report:
    needs: [main_only, after_gate]
    if: always()
    runs-on: ubuntu-latest
    steps:
      - run: |
          echo "main_only=${{ needs.main_only.result }} [${{ needs.main_only.outputs.word }}]"
          echo "after_gate=${{ needs.after_gate.result }} [${{ needs.after_gate.outputs.word }}]"
"""


@pytest.mark.parametrize("cache", [True, False], ids=["cache", "no-cache"])
def test_a_job_skipped_in_this_run_reads_skipped_not_an_earlier_runs_result(
    cache: bool, make_project: Callable[..., Path], cli: Callable[..., Any]
) -> None:
    root = make_project({WF: STALE})
    flags = [] if cache else ["--no-cache"]
    first = cli("-C", root, "run", "-f", WF, "--json", "--branch", "main", *flags)
    jobs = {j["name"]: j for j in json.loads(first.out)["jobs"]}
    assert {n: j["status"] for n, j in jobs.items()} == dict.fromkeys(
        ("gate", "main_only", "after_gate", "report"), "success"
    )
    log = Path(jobs["report"]["log"]).read_text()
    assert "main_only=success [from-main]" in log and "after_gate=success [from-gate]" in log
    # run 2: main_only's if is false for this branch, after_gate is skipped by the engine after the
    # failed gate; both left their result files on disk in run 1
    second = cli("-C", root, "run", "-f", WF, "--json", "--branch", "feature", "--var", "FAIL=yes", *flags)
    jobs = {j["name"]: j for j in json.loads(second.out)["jobs"]}
    assert (root / result_path("main_only")).is_file() and (root / result_path("after_gate")).is_file()
    assert {n: j["status"] for n, j in jobs.items()} == {
        "gate": "failed",
        "main_only": "skipped",
        "after_gate": "skipped",
        "report": "success",
    }
    log = Path(jobs["report"]["log"]).read_text()
    assert "main_only=skipped []" in log, log
    assert "after_gate=skipped []" in log, log


# -- pure helpers --


def test_env_file_lines_and_delimited_blocks() -> None:
    text = "a=1\nb=x=y\n\nmulti<<EOF\nline 1\nline 2\nEOF\nempty<<END\nEND\nlast=\n"
    assert parse_env_file(text) == {"a": "1", "b": "x=y", "multi": "line 1\nline 2", "empty": "", "last": ""}
    with pytest.raises(StepFailure, match="delimiter 'EOF' not found"):
        parse_env_file("x<<EOF\nno end\n")
    with pytest.raises(StepFailure, match="expected NAME=value"):
        parse_env_file("just text\n")


def test_matrix_expansion_follows_githubs_documented_examples() -> None:
    # docs: "Expanding or adding matrix configurations"
    combos = expand_matrix(
        {
            "fruit": ["apple", "pear"],
            "animal": ["cat", "dog"],
            "include": [
                {"color": "green"},
                {"color": "pink", "animal": "cat"},
                {"fruit": "apple", "shape": "circle"},
                {"fruit": "banana"},
                {"fruit": "banana", "animal": "cat"},
            ],
        }
    )
    assert combos == [
        {"fruit": "apple", "animal": "cat", "color": "pink", "shape": "circle"},
        {"fruit": "apple", "animal": "dog", "color": "green", "shape": "circle"},
        {"fruit": "pear", "animal": "cat", "color": "pink"},
        {"fruit": "pear", "animal": "dog", "color": "green"},
        {"fruit": "banana"},
        {"fruit": "banana", "animal": "cat"},
    ]
    # docs: "Excluding matrix configurations"
    excluded = expand_matrix(
        {
            "os": ["macos-latest", "windows-latest"],
            "version": [12, 14, 16],
            "environment": ["staging", "production"],
            "exclude": [
                {"os": "macos-latest", "version": 12, "environment": "production"},
                {"os": "windows-latest", "version": 16},
            ],
        }
    )
    assert len(excluded) == 12 - 1 - 2
    assert instance_suffix({"os": "linux", "py": 3.0, "x": True}, ("os", "py")) == "linux-3"


# -- setup-* actions use the toolchain on PATH --

TOOLS = [
    ("actions/setup-python", "python3", "python-version", ["--version"]),
    ("actions/setup-node", "node", "node-version", ["--version"]),
    ("actions/setup-java", "java", "java-version", ["-version"]),
    ("actions/setup-go", "go", "go-version", ["version"]),
]


def _installed_major(tool: str, args: list[str]) -> str | None:
    import re
    import shutil

    if shutil.which(tool) is None:
        return None
    out = subprocess.run([tool, *args], capture_output=True, text=True, check=False)
    found = re.search(r"(\d+)(?:\.\d+)*", (out.stdout + out.stderr).replace("go1", "go 1"))
    if found is None:
        return None
    major = found.group(0).split(".")
    return major[1] if tool == "java" and major[0] == "1" and len(major) > 1 else major[0]


@pytest.mark.parametrize(("action", "tool", "key", "args"), TOOLS, ids=[t[0] for t in TOOLS])
def test_setup_action_uses_the_installed_major_version_or_fails_naming_it(
    action: str,
    tool: str,
    key: str,
    args: list[str],
    make_project: Callable[..., Path],
    cli: Callable[..., Any],
) -> None:
    major = _installed_major(tool, args)
    if major is None:
        pytest.skip(f"{tool} is not installed")
    text = f"""\
on: push
jobs:
  ok:
    runs-on: ubuntu-latest
    steps:
      - id: s
        uses: {action}@v5
        with:
          {key}: '{major}'
      - run: echo "found ${{{{ steps.s.outputs.version }}}}"
  missing:
    runs-on: ubuntu-latest
    steps:
      - uses: {action}@v5
        with:
          {key}: '{int(major) + 1000}'
"""
    root = make_project({WF: text})
    result = cli("-C", root, "run", "-f", WF, "--json", "--no-cache")
    jobs = {j["name"]: j for j in json.loads(result.out)["jobs"]}
    assert jobs["ok"]["status"] == "success"
    assert f"found {major}" in Path(jobs["ok"]["log"]).read_text()
    assert jobs["missing"]["status"] == "failed"
    log = Path(jobs["missing"]["log"]).read_text()
    assert f"{key} {int(major) + 1000} requested" in log
    assert f"install major version {int(major) + 1000}" in log
