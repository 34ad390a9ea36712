"""``buildyard init`` then ``buildyard run`` on small real projects: the generated pipeline passes
first time and a second run restores every job from the cache.

One test per stack whose toolchain is on this machine (Python and Node always; C with make; CMake,
Rust, Maven and Mojo when found, else skipped with the reason). Projects have no third-party
dependencies to download: the Python tools (pytest, coverage, ruff, mypy) come from the interpreter
running the tests, which the generated virtualenv sees.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# Real toolchains on a loaded machine: a run of a project takes seconds to tens of seconds.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
BIN = Path(sys.executable).parent  # buildyard and python3 with the test tools

PYTHON = {
    "requirements.txt": "packaging>=20\n",  # a dependency the test interpreter has: nothing is downloaded
    "pyproject.toml": '[project]\nname = "calc"\nversion = "0.3.0"\n\n[tool.ruff]\nline-length = 100\n\n'
    '[tool.mypy]\nstrict = true\nfiles = ["src"]\n\n[tool.pytest.ini_options]\ntestpaths = ["tests"]\n',
    "src/calc/__init__.py": '"""Sums."""\n\n\ndef add(a: int, b: int) -> int:\n'
    '    """a + b."""\n    return a + b\n',
    "tests/test_calc.py": "from calc import add\n\n\ndef test_add() -> None:\n    assert add(1, 2) == 3\n",
}
NODE = {
    "package.json": '{"name": "web", "version": "1.2.0", "scripts": {"test": "node --test"}}\n',
    "index.js": "exports.add = (a, b) => a + b;\n",
    "test/add.test.js": 'const test = require("node:test");\nconst assert = require("node:assert");\n'
    'const { add } = require("../index.js");\ntest("adds", () => assert.strictEqual(add(1, 2), 3));\n',
}
C_SOURCE = '#include <stdio.h>\nint main(void) { printf("hi\\n"); return 0; }\n'


@pytest.fixture
def toolchain_path(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Put buildyard's interpreter first on PATH (and more directories when given)."""

    def put(*extra: Path) -> None:
        monkeypatch.setenv("PATH", os.pathsep.join([*map(str, extra), str(BIN), os.environ["PATH"]]))

    put()
    return put


def need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(
            f"{', '.join(missing)} not installed here: "
            "the job list of this stack is checked in test_scaffold_detect"
        )


def need_node() -> None:
    """Node and npm, recent enough for the JUnit and LCOV reporters of ``node --test`` (20.13)."""
    need("node", "npm")
    out = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False).stdout
    major, minor = (int(p) for p in out.strip().lstrip("v").split(".")[:2])
    if (major, minor) < (20, 13):
        pytest.skip(f"node {out.strip()} has no JUnit reporter (20.13 or later does)")


def init_run_twice(root: Path, cli: Any) -> dict[str, dict[str, Any]]:
    """init, validate, a cold run that passes, then a run where every job is restored from the cache."""
    made = cli("-C", root, "init")
    assert made.code == 0, made.err
    assert cli("-C", root, "validate").code == 0
    cold = cli("-C", root, "run", "--json")
    jobs = {j["name"]: j for j in json.loads(cold.out)["jobs"]}
    assert cold.code == 0, (cold.err[-3000:], {n: j["status"] for n, j in jobs.items()})
    assert {j["status"] for n, j in jobs.items()} == {"success"}, jobs
    warm = cli("-C", root, "run", "--json")
    again = {j["name"]: j["status"] for j in json.loads(warm.out)["jobs"] if j["name"] != "gates"}
    assert warm.code == 0, warm.err[-3000:]
    assert set(again.values()) == {"cached"}, again
    return jobs


def test_init_refuses_to_overwrite_and_dry_run_writes_nothing(make_project, cli) -> None:
    root = make_project({**NODE, "buildyard.yml": "jobs: {x: {script: 'true'}}\n"})
    refused = cli("-C", root, "init")
    assert refused.code == 2
    assert "buildyard.yml: already exists; use --force" in refused.err and refused.err.count("\n") == 1
    dry = cli("-C", root, "init", "--dry-run")
    assert dry.code == 0 and dry.out.startswith("# Written by 'buildyard init'") and "web-" not in dry.out
    assert (root / "buildyard.yml").read_text() == "jobs: {x: {script: 'true'}}\n"
    forced = cli("-C", root, "init", "--force")
    assert forced.code == 0 and "found node (npm) in ." in forced.err
    assert (root / "buildyard.yml").read_text() == dry.out


def test_python_project(make_project, cli, toolchain_path) -> None:
    del toolchain_path
    root = make_project(PYTHON)
    jobs = init_run_twice(root, cli)
    assert set(jobs) == {"setup", "scan", "lint", "build", "test", "sbom", "gates", "release"}
    assert (root / "reports" / "junit.xml").is_file() and (root / "dist" / "calc-src.tar.gz").is_file()
    listed = cli("-C", root, "artifacts", "list", "--json")
    assert [a["name"] for a in json.loads(listed.out)] == ["calc"]
    assert "/.venv/" in (root / ".gitignore").read_text()
    # A type error in a source file: the jobs reading it run again (mypy fails the lint), the others
    # are restored; nothing is released.
    (root / "src" / "calc" / "__init__.py").write_text("def add(a: int, b: int) -> str:\n    return a + b\n")
    run = cli("-C", root, "run", "--json")
    statuses = {j["name"]: j["status"] for j in json.loads(run.out)["jobs"]}
    assert run.code == 1
    assert statuses == {
        "setup": "cached",
        "sbom": "cached",
        "lint": "failed",
        "build": "success",
        "test": "success",
        "scan": "success",
        "gates": "failed",
        "release": "skipped",
    }


def test_node_project(make_project, cli, toolchain_path) -> None:
    del toolchain_path
    need_node()
    root = make_project(NODE)
    jobs = init_run_twice(root, cli)
    assert set(jobs) == {"lint", "build", "test", "scan", "sbom", "gates", "release"}
    assert list((root / ".pack").glob("web-1.2.0.tgz"))


def test_c_make_project(make_project, cli, toolchain_path) -> None:
    del toolchain_path
    need("make", "cc")
    makefile = (
        ".PHONY: test\nhello: hello.c\n\tcc -O2 -o hello hello.c\ntest: hello\n\t./hello | grep -q hi\n"
    )
    root = make_project({"Makefile": makefile, "hello.c": C_SOURCE})
    jobs = init_run_twice(root, cli)
    assert set(jobs) == {"build", "test", "scan", "sbom", "gates", "release"}


def test_cmake_project(make_project, cli, toolchain_path) -> None:
    del toolchain_path
    need("cmake", "cc")
    cmake = (
        "cmake_minimum_required(VERSION 3.21)\nproject(hello C)\nenable_testing()\n"
        "add_executable(hello hello.c)\nadd_test(NAME runs COMMAND hello)\n"
    )
    root = make_project({"CMakeLists.txt": cmake, "hello.c": C_SOURCE})
    init_run_twice(root, cli)
    assert (root / "reports" / "junit.xml").is_file()


def test_rust_project(make_project, cli, toolchain_path) -> None:
    del toolchain_path
    need("cargo")
    root = make_project(
        {
            "Cargo.toml": '[package]\nname = "hello"\nversion = "0.1.0"\nedition = "2021"\n',
            "src/main.rs": 'fn main() { println!("hi"); }\n#[cfg(test)]\nmod t { #[test] fn ok() {} }\n',
        }
    )
    init_run_twice(root, cli)
    assert (root / "target" / "release" / "hello").is_file()


def test_go_project(make_project, cli, toolchain_path) -> None:
    del toolchain_path
    need("go")
    root = make_project(
        {
            "go.mod": "module example.com/hello\n\ngo 1.19\n",
            "main.go": 'package main\n\nimport "fmt"\n\nfunc add(a, b int) int { return a + b }\n\n'
            "func main() { fmt.Println(add(1, 2)) }\n",
            "main_test.go": 'package main\n\nimport "testing"\n\n'
            'func TestAdd(t *testing.T) {\n\tif add(1, 2) != 3 {\n\t\tt.Fatal("add")\n\t}\n}\n',
        }
    )
    init_run_twice(root, cli)
    assert (root / "dist" / "hello").is_file() and (root / "reports" / "coverage.out").is_file()


MAVEN_POM = """\
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>demo</groupId><artifactId>demo</artifactId><version>1.0.0</version>
  <properties><maven.compiler.release>17</maven.compiler.release>
    <project.build.sourceEncoding>UTF-8</project.build.sourceEncoding></properties>
  <dependencies><dependency><groupId>org.junit.jupiter</groupId><artifactId>junit-jupiter</artifactId>
    <version>5.10.2</version><scope>test</scope></dependency></dependencies>
  <build><plugins>
    <plugin><groupId>org.apache.maven.plugins</groupId><artifactId>maven-surefire-plugin</artifactId><version>3.2.5</version></plugin>
    <plugin><groupId>org.apache.maven.plugins</groupId><artifactId>maven-compiler-plugin</artifactId><version>3.13.0</version></plugin>
    <plugin><groupId>org.apache.maven.plugins</groupId><artifactId>maven-jar-plugin</artifactId><version>3.4.1</version></plugin>
    <plugin><groupId>org.apache.maven.plugins</groupId><artifactId>maven-resources-plugin</artifactId><version>3.3.1</version></plugin>
  </plugins></build>
</project>
"""


def test_maven_project(make_project, cli, toolchain_path) -> None:
    del toolchain_path
    need("mvn", "javac")
    root = make_project(
        {
            "pom.xml": MAVEN_POM,
            ".mvn/maven.config": "-o\n",  # offline: the test downloads nothing (skips if a plugin is missing)
            "src/main/java/demo/Calc.java": "package demo;\n"
            "public class Calc { public static int add(int a, int b) { return a + b; } }\n",
            "src/test/java/demo/CalcTest.java": "package demo;\nimport org.junit.jupiter.api.Test;\n"
            "import static org.junit.jupiter.api.Assertions.assertEquals;\n"
            "class CalcTest { @Test void adds() { assertEquals(3, Calc.add(1, 2)); } }\n",
        }
    )
    init_run_twice(root, cli)
    assert (root / "target" / "demo-1.0.0.jar").is_file()


def test_mojo_project(make_project, cli, toolchain_path) -> None:
    found = shutil.which("mojo") or next(
        (str(p) for p in (Path("/tmp/mojovenv/bin/mojo"),) if p.is_file()), None
    )
    if found is None:
        pytest.skip(
            "mojo not installed here (pip install mojo): the Mojo job list is checked in test_scaffold_detect"
        )
    toolchain_path(Path(found).parent)
    root = make_project(
        {
            "hello.mojo": 'def main():\n    print("hi")\n',
            "tests/test_math.mojo": "def main() raises:\n    if 1 + 1 != 2:\n        raise Error('math')\n",
        }
    )
    init_run_twice(root, cli)
    assert (root / "build" / "hello").is_file()


def test_python_backend_and_node_frontend(make_project, cli, toolchain_path) -> None:
    del toolchain_path
    need_node()
    files = {f"backend/{k}": v for k, v in PYTHON.items()} | {f"frontend/{k}": v for k, v in NODE.items()}
    root = make_project({**files, "Dockerfile": "FROM scratch\nCOPY frontend/index.js /\n"})
    jobs = init_run_twice(root, cli)
    assert {
        "backend-setup",
        "backend-test",
        "frontend-test",
        "frontend-build",
        "docker-image",
        "release",
    } <= set(jobs)
    # The image is built where a Docker daemon answers; elsewhere the job says why it did nothing.
    log = cli("-C", root, "logs", "1", "docker-image").out
    docker = shutil.which("docker")
    answers = (
        docker is not None
        and subprocess.run([docker, "info"], capture_output=True, check=False).returncode == 0
    )
    assert ("skipped: docker is not available here" in log) is not answers, log
    assert (root / "backend" / "reports" / "junit.xml").is_file()
    assert (root / "frontend" / "reports" / "lcov.info").is_file()


def test_with_an_osv_database_a_known_vulnerability_blocks_the_release(
    make_project, cli, toolchain_path, monkeypatch
) -> None:
    """The scan job scans the lockfiles against the database and succeeds; its gate fails."""
    del toolchain_path
    from by_testutil import shared_osv

    monkeypatch.setenv("OSV_DB", str(shared_osv()))
    root = make_project({"requirements.txt": "requests==2.19.0\n", "app.py": "print('hi')\n"})
    assert cli("-C", root, "init").code == 0
    run = cli("-C", root, "run", "--json", "scan")  # alone: the setup job would download requests
    assert run.code == 0, run.err
    sarif = json.loads((root / "reports" / "dependencies.sarif").read_text())
    assert "PYSEC-2018-28" in {r["ruleId"] for r in sarif["runs"][0]["results"]}
    checked = cli("-C", root, "gates", "check", "--json")
    verdicts = {g["gate"]: g["status"] for g in json.loads(checked.out)["gates"]}
    assert checked.code == 1 and verdicts == {"secrets": "passed", "vulnerabilities": "failed"}
