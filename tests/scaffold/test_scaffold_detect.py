"""The pure core of ``buildyard init``: a file listing -> components and jobs, for every stack.

Each generated document is rendered and loaded back with ``spec.loads`` (what ``buildyard validate``
does), so every case also proves the written file validates.
"""

from __future__ import annotations

from typing import Any

import pytest

from buildyard.scaffold import RepoListing, Stack, render, scaffold, wants_content
from buildyard.spec.load import loads


def listing(files: dict[str, str], name: str = "proj") -> RepoListing:
    return RepoListing(
        name=name, files=tuple(sorted(files)), contents={p: c for p, c in files.items() if wants_content(p)}
    )


def generate(files: dict[str, str], name: str = "proj") -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
    result = scaffold(listing(files, name))
    pipeline = loads(render(result))  # raises SpecError with every problem if the file is invalid
    assert set(pipeline.jobs) == set(result.document["jobs"])
    found = [(c.stack.value, c.tool, c.path) for c in result.components]
    return result.document, found


def scripts(doc: dict[str, Any], job: str) -> str:
    return "\n".join(doc["jobs"][job]["script"])


PYPROJECT_POETRY = """\
[tool.poetry]
name = "svc"
version = "2.0.0"
[tool.ruff]
line-length = 100
[tool.mypy]
strict = true
"""


def test_python_pip_with_ruff_mypy_pytest_and_a_build_backend() -> None:
    doc, found = generate(
        {
            "pyproject.toml": '[build-system]\nrequires = ["setuptools>=61"]\n'
            'build-backend = "setuptools.build_meta"\n'
            '[project]\nname = "calc"\nversion = "0.3.0"\ndependencies = ["packaging>=20"]\n'
            '[tool.ruff.format]\nquote-style = "double"\n[tool.mypy]\nstrict = true\n',
            "requirements-dev.txt": "pytest\n",
            "src/calc/__init__.py": "",
            "tests/test_calc.py": "",
        }
    )
    assert found == [("python", "pip", "")]
    assert list(doc["jobs"]) == ["setup", "lint", "build", "test", "scan", "sbom", "release"]
    setup = doc["jobs"]["setup"]
    assert setup["cache"][0] == {
        "key": {"files": ["pyproject.toml", "requirements-dev.txt"], "prefix": "venv-setup"},
        "paths": [".venv/"],
    }
    assert (
        "-r requirements-dev.txt 'packaging>=20' 'setuptools>=61' wheel pytest coverage ruff mypy"
        in scripts(doc, "setup")
    )
    lint = scripts(doc, "lint")
    assert "ruff check ." in lint and "ruff format --check ." in lint and "mypy src/calc" in lint
    assert "pip wheel" in scripts(doc, "build") and doc["jobs"]["build"]["artifacts"] == {"paths": ["dist/"]}
    assert doc["jobs"]["test"]["env"] == {"PYTHONPATH": "src"}
    assert "--junitxml=reports/junit.xml" in scripts(doc, "test")
    assert doc["jobs"]["test"]["inputs"] == [
        "pyproject.toml",
        "requirements-dev.txt",
        "src/**",
        "!src/**/__pycache__",
        "!src/**/*.egg-info",
        "tests/**",
        "!tests/**/__pycache__",
        "!tests/**/*.egg-info",
    ]
    assert doc["jobs"]["release"]["publish"]["version"] == {"from_file": "pyproject.toml"}
    assert doc["jobs"]["release"]["publish"]["paths"] == ["dist/*.whl", "reports/sbom.cdx.json"]
    assert doc["jobs"]["release"]["needs"] == ["gates", "build", "sbom"]
    kinds = [next(iter(g)) for g in doc["gates"]]
    assert kinds == ["tests", "coverage", "sarif", "sarif"]


@pytest.mark.parametrize(
    ("files", "tool", "install"),
    [
        ({"pyproject.toml": PYPROJECT_POETRY, "poetry.lock": ""}, "poetry", "poetry install"),
        ({"pyproject.toml": '[project]\nname = "u"\n', "uv.lock": ""}, "uv", "uv sync --frozen"),
        ({"pyproject.toml": '[project]\nname = "p"\n[tool.pdm]\n', "pdm.lock": ""}, "pdm", "pdm install"),
        (
            {
                "pyproject.toml": '[build-system]\nrequires = ["hatchling"]\n'
                'build-backend = "hatchling.build"\n'
            },
            "hatch",
            "pip install -q hatchling",
        ),
    ],
)
def test_python_package_managers(files: dict[str, str], tool: str, install: str) -> None:
    doc, found = generate({**files, "app/__init__.py": "", "tests/test_app.py": ""})
    assert found == [("python", tool, "")]
    assert install in scripts(doc, "setup")
    assert doc["jobs"]["setup"]["cache"][0]["paths"] == [".venv/"]


def test_poetry_lints_with_the_configured_tools() -> None:
    doc, _ = generate({"pyproject.toml": PYPROJECT_POETRY, "poetry.lock": "", "svc/__init__.py": ""})
    assert doc["jobs"]["setup"]["env"] == {"POETRY_VIRTUALENVS_IN_PROJECT": "true"}
    assert "ruff check" in scripts(doc, "lint") and "mypy svc" in scripts(doc, "lint")
    assert "test" not in doc["jobs"]  # no test files: no test job, no tests gate
    assert [next(iter(g)) for g in doc["gates"]] == ["sarif", "sarif"]


def test_loose_python_files_without_a_manifest() -> None:
    doc, found = generate({"tool.py": "print(1)\n", "tests/test_tool.py": ""})
    assert found == [("python", "pip", "")]
    assert "compileall" in scripts(doc, "lint")
    assert doc["jobs"]["setup"]["inputs"] == [] and doc["jobs"]["setup"]["cache"][0]["key"] == "venv-setup"
    assert doc["jobs"]["release"]["publish"]["paths"] == ["dist/proj-src.tar.gz", "reports/sbom.cdx.json"]


@pytest.mark.parametrize(
    ("lock", "tool", "install"),
    [
        ("package-lock.json", "npm", "npm ci"),
        ("pnpm-lock.yaml", "pnpm", "pnpm install --frozen-lockfile"),
        ("yarn.lock", "yarn", "yarn install --frozen-lockfile"),
    ],
)
def test_node_package_managers(lock: str, tool: str, install: str) -> None:
    pkg = '{"name": "w", "version": "1.0.0", "scripts": {"build": "tsc", "test": "jest", "lint": "eslint ."},'
    pkg += ' "devDependencies": {"jest": "29", "jest-junit": "16"}}'
    doc, found = generate({"package.json": pkg, lock: "", "src/index.js": ""})
    assert found == [("node", tool, "")]
    assert install in scripts(doc, "setup")
    assert doc["jobs"]["setup"]["cache"][0]["key"]["files"] == [lock]
    assert "run lint" in scripts(doc, "lint") and "run build" in scripts(doc, "build")
    assert "jest --ci --coverage" in scripts(doc, "test") and "jest-junit" in scripts(doc, "test")
    assert doc["jobs"]["release"]["publish"]["version"] == {"from_file": "package.json"}


def test_yarn_berry_is_immutable() -> None:
    doc, found = generate(
        {"package.json": '{"name": "b", "dependencies": {"x": "1"}}', "yarn.lock": "", ".yarnrc.yml": ""}
    )
    assert found == [("node", "berry", "")]
    assert "yarn install --immutable" in scripts(doc, "setup")


def test_node_without_dependencies_or_linter_uses_node_test_and_a_syntax_check() -> None:
    doc, _ = generate(
        {"package.json": '{"name": "n", "version": "0.1.0"}', "index.js": "", "test/a.test.js": ""}
    )
    assert "setup" not in doc["jobs"]
    assert "node --check" in scripts(doc, "lint")
    assert "--test-reporter=junit" in scripts(doc, "test") and "npm pack" in scripts(doc, "build")


def test_turbo_monorepo_with_workspaces() -> None:
    doc, found = generate(
        {
            "package.json": '{"name": "mono", "private": true, "workspaces": ["packages/*"],'
            ' "devDependencies": {"turbo": "2"}}',
            "package-lock.json": "",
            "turbo.json": "{}",
            "packages/a/package.json": '{"name": "a", "scripts": {"build": "tsc", "test": "vitest"}}',
            "packages/a/src/index.ts": "",
            "packages/b/package.json": '{"name": "b"}',
        }
    )
    assert found == [("node", "npm", "")]  # the members belong to the root's workspace
    assert "turbo run build" in scripts(doc, "build") and "turbo run test" in scripts(doc, "test")
    assert doc["jobs"]["setup"]["cache"][0]["paths"] == [
        "node_modules/",
        "packages/a/node_modules/",
        "packages/b/node_modules/",
    ]
    # Members are listed entry by entry: their node_modules/ and dist/ are never globbed as inputs.
    assert (
        "packages/a/src/**" in doc["jobs"]["build"]["inputs"]
        and "packages/**" not in doc["jobs"]["build"]["inputs"]
    )


def test_go() -> None:
    doc, found = generate({"go.mod": "module x\n", "go.sum": "", "main.go": "", "main_test.go": ""})
    assert found == [("go", "go", "")]
    assert "go vet ./..." in scripts(doc, "lint") and "go test" in scripts(doc, "test")
    assert "go build -o dist/ ./..." in scripts(doc, "build")


def test_rust_workspace_is_one_component() -> None:
    doc, found = generate(
        {
            "Cargo.toml": '[workspace]\nmembers = ["cli", "core"]\n',
            "Cargo.lock": "",
            "cli/Cargo.toml": '[package]\nname = "tool"\n',
            "cli/src/main.rs": "",
            "core/Cargo.toml": '[package]\nname = "core"\n',
            "core/src/lib.rs": "",
        }
    )
    assert found == [("rust", "cargo", "")]
    assert "cargo build --release --locked" in scripts(doc, "build")
    assert doc["jobs"]["build"]["artifacts"] == {"paths": ["target/release/tool"]}
    assert "cargo clippy" in scripts(doc, "lint") and "cargo test --locked" in scripts(doc, "test")


@pytest.mark.parametrize(
    ("files", "tool", "junit"),
    [
        (
            {"pom.xml": "<project><plugin>jacoco</plugin></project>"},
            "maven",
            "target/surefire-reports/TEST-*.xml",
        ),
        (
            {"build.gradle": "plugins { id 'java' }", "gradlew": ""},
            "gradlew",
            "build/test-results/test/*.xml",
        ),
    ],
)
def test_java(files: dict[str, str], tool: str, junit: str) -> None:
    doc, found = generate({**files, "src/main/java/A.java": "", "src/test/java/ATest.java": ""})
    assert found == [("java", tool, "")]
    assert doc["gates"][0]["tests"]["junit"][0] == junit
    assert list(doc["jobs"])[:2] in (["build", "test"], ["lint", "build"])


def test_cmake_and_make() -> None:
    doc, found = generate(
        {
            "CMakeLists.txt": "project(x C)\nenable_testing()\nadd_executable(hello main.c)\n"
            "add_test(NAME t COMMAND hello)\n",
            "main.c": "",
            "lib/CMakeLists.txt": "",
        }
    )
    assert found == [("c", "cmake", "")]
    assert doc["jobs"]["build"]["artifacts"] == {"paths": ["build/hello"]}
    assert "--output-junit" in scripts(doc, "test")
    doc, found = generate(
        {
            "Makefile": ".PHONY: all test\nall: app\napp: app.o\n\tcc -o app app.o\ntest: app\n\t./app\n",
            "app.c": "",
        }
    )
    assert found == [("c", "make", "")]
    assert scripts(doc, "build") == "make" and scripts(doc, "test") == "make test"
    assert doc["jobs"]["build"]["artifacts"] == {"paths": ["app"]}


def test_a_makefile_alone_is_not_a_c_project() -> None:
    _, found = generate({"Makefile": "docs:\n\techo\n", "main.py": ""})
    assert found == [("python", "pip", "")]


def test_mojo_sources_and_pixi() -> None:
    doc, found = generate(
        {"kernels/main.mojo": "fn main():\n    print(1)\n", "kernels/test_k.mojo": "fn main():\n    pass\n"}
    )
    assert found == [("mojo", "mojo", "kernels")]
    assert "mojo build -I . main.mojo -o build/main" in scripts(doc, "build")
    assert "reports/junit-mojo.xml" in scripts(doc, "test")
    doc, found = generate(
        {"pixi.toml": '[dependencies]\nmojo = "*"\n', "pixi.lock": "", "hello.mojo": "fn main():\n  pass\n"}
    )
    assert found == [("mojo", "pixi", "")]
    assert scripts(doc, "setup") == "pixi install --locked" and "pixi run mojo build" in scripts(doc, "build")


def test_dockerfile_builds_only_where_docker_answers() -> None:
    doc, found = generate({"Dockerfile": "FROM scratch\n", "main.go": "", "go.mod": ""})
    assert ("docker", "docker", "") in found
    image = doc["jobs"]["docker-image"]
    assert image["script"][0].startswith("if docker info >/dev/null 2>&1; then")
    assert "skipped: docker is not available" in image["script"][0]
    assert "docker info" in image["key_commands"][0]


def test_several_components_get_one_job_set_each_in_their_directory() -> None:
    doc, found = generate(
        {
            "backend/pyproject.toml": '[project]\nname = "api"\n',
            "backend/api/__init__.py": "",
            "backend/tests/test_api.py": "",
            "frontend/package.json": '{"name": "ui", "version": "1.0.0"}',
            "frontend/test/x.test.js": "",
            "README.md": "",
        },
        name="My Shop",
    )
    assert found == [("python", "pip", "backend"), ("node", "npm", "frontend")]
    assert doc["name"] == "my-shop"
    assert doc["jobs"]["backend-test"]["working_directory"] == "backend"
    assert doc["jobs"]["frontend-test"]["working_directory"] == "frontend"
    gates = {g[next(iter(g))]["name"]: g for g in doc["gates"]}
    assert gates["tests backend"]["tests"]["junit"] == ["backend/reports/junit.xml"]
    assert gates["coverage frontend"]["coverage"]["report"] == "frontend/reports/lcov.info"
    publish = doc["jobs"]["release"]["publish"]
    assert publish["version"] == "from_git_tag"
    assert publish["paths"] == [
        "backend/dist/api-src.tar.gz",
        "frontend/.pack/*.tgz",
        "reports/sbom.cdx.json",
    ]
    assert doc["jobs"]["sbom"]["needs"] == ["backend-setup"]


def test_an_empty_repository_still_scans_and_releases_its_sbom() -> None:
    doc, found = generate({"README.md": "hi\n"})
    assert found == []
    assert list(doc["jobs"]) == ["scan", "sbom", "release"]


def test_the_yaml_has_a_comment_above_every_job() -> None:
    result = scaffold(listing({"package.json": '{"name": "n"}', "index.js": ""}))
    text = render(result)
    lines = text.splitlines()
    for name in result.document["jobs"]:
        at = lines.index(f"  {name}:")
        assert lines[at - 1].startswith("  # "), name


def test_generated_and_dependency_directories_are_never_inputs() -> None:
    doc, _ = generate(
        {
            "package.json": '{"name": "n"}',
            "index.js": "",
            "dist/old.js": "",
            "reports/x.xml": "",
            "build/o": "",
        }
    )
    for job in doc["jobs"].values():
        for pattern in job.get("inputs", []):
            assert not pattern.startswith(("dist", "reports", "build", "node_modules")), pattern


def test_stack_enum_names_every_marker() -> None:
    from buildyard.scaffold.detect import MARKERS

    assert set(MARKERS) == set(Stack)


def test_names_from_the_repository_never_reach_a_shell_unquoted() -> None:
    """Project names, target names and directories come from an untrusted repository."""
    doc, found = generate(
        {
            "pyproject.toml": '[project]\nname = "x$(touch pwned)"\n',
            "app.py": "",
            "tests/test_a.py": "",
            "tools/Cargo.toml": '[package]\nname = "t"\n[[bin]]\nname = "a;touch pwned"\n',
            "tools/src/main.rs": "",
            "w\x1be b/package.json": '{"name": "q"}',
        }
    )
    assert [stack for stack, _, _ in found] == ["python", "rust", "node"]
    for job in doc["jobs"].values():
        text = "\n".join(job["script"])
        assert "touch pwned" not in text.replace("'x$(touch pwned)'", ""), text
    assert "target/release/a;touch pwned" not in str(doc)
    assert "w-e-b-lint" in doc["jobs"]  # the job name is made safe; the directory stays as it is
    assert doc["jobs"]["w-e-b-lint"]["working_directory"] == "w\x1be b"
    text = render(scaffold(listing({"w\x1be b/package.json": "{}"})))
    assert "\x1b" not in text  # escaped in YAML and in comments


def test_a_manifest_that_does_not_parse_is_named_with_its_line() -> None:
    result = scaffold(
        listing({"pyproject.toml": "[project\nname = 1\n", "web/package.json": '{\n  "name": }', "a.py": ""})
    )
    assert result.notes[0].startswith("pyproject.toml: not valid TOML (Expected ']'")
    assert "(at line 1, column 9)" in result.notes[0]
    assert result.notes[1].startswith("web/package.json:2: not valid JSON (Expecting value)")
    assert "fix it and run init again" in result.notes[1]
    loads(render(result))  # the pipeline still validates; the notes are comments at its top
    assert "# Note: web/package.json:2: not valid JSON" in render(result)


def test_tools_configured_in_setup_cfg_and_their_own_files() -> None:
    doc, found = generate(
        {
            "setup.cfg": "[metadata]\nname = legacy\n[mypy]\nfiles = pkg\n[tool:pytest]\ntestpaths = tests\n",
            "setup.py": "",
            "ruff.toml": "line-length = 100\n",
            "pkg/__init__.py": "",
            "tests/check_pkg.py": "",  # pytest is configured: any Python file under tests/ counts
        }
    )
    assert found == [("python", "pip", "")]
    lint = doc["jobs"]["lint"]["script"]
    assert lint == [".venv/bin/python -m ruff check .", ".venv/bin/python -m mypy"]  # mypy's files: setup.cfg
    assert "test" in doc["jobs"] and "wheel" in scripts(doc, "setup")  # setup.py: setuptools builds a wheel
