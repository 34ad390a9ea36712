"""Python components: pip requirements, Poetry, uv, PDM, Hatch; pytest, coverage, ruff, mypy (pure).

Every job runs the tools of one virtualenv, ``.venv`` in the component, made by a setup job and kept
as a dependency cache keyed by the lockfiles. With pip the virtualenv also sees the packages of the
``python3`` that made it (a ``.pth`` file naming that interpreter's site-packages), so tools the
machine already has are not downloaded again; what is missing is installed.
"""

from __future__ import annotations

import configparser
import fnmatch
import re
import tomllib
from dataclasses import dataclass
from typing import Any

from buildyard.scaffold.common import inputs_for, job_name, present, q, slug, unreadable
from buildyard.scaffold.model import Component, JobPlan, RepoListing, StackPlan, Tool

PY = ".venv/bin/python"
_LOCKS = ("uv.lock", "poetry.lock", "pdm.lock", "Pipfile.lock")
_EXCLUDES = ("__pycache__", "*.egg-info")


def tool(listing: RepoListing, path: str, files: tuple[str, ...]) -> Tool:
    """The package manager: uv, poetry, pdm, hatch or pip."""
    pyproject = _toml(listing.text(_at(path, "pyproject.toml")))
    tools = pyproject.get("tool", {}) if isinstance(pyproject.get("tool"), dict) else {}
    backend = str(pyproject.get("build-system", {}).get("build-backend", ""))
    if "uv.lock" in files or "uv" in tools:
        return Tool.UV
    if "poetry.lock" in files or "poetry" in tools:
        return Tool.POETRY
    if "pdm.lock" in files or "pdm" in tools:
        return Tool.PDM
    if "hatch" in tools or backend.startswith("hatchling"):
        return Tool.HATCH
    return Tool.PIP


def _at(path: str, name: str) -> str:
    return f"{path}/{name}" if path else name


def _toml(text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text) if text else {}
    except tomllib.TOMLDecodeError:
        return {}


def _cfg(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text)
    except configparser.Error:
        return configparser.ConfigParser(interpolation=None)
    return parser


@dataclass(frozen=True)
class PythonFacts:
    """What the planner reads from the component's files."""

    name: str
    version: str | None
    requirements: tuple[str, ...]
    requires: tuple[str, ...]  # dependencies, dev/test extras and groups, the build backend
    buildable: bool
    tests: bool
    ruff: bool
    ruff_format: bool
    mypy: bool
    mypy_files: bool  # the mypy config names what to check
    src_layout: bool
    sources: tuple[str, ...]  # top-level packages/modules (not tests)


def _names(reqs: Any) -> list[str]:
    return [str(r) for r in reqs] if isinstance(reqs, list) else []


def facts(listing: RepoListing, component: Component) -> PythonFacts:
    """Read names, dependencies and configured tools of a Python component."""
    files = component.files
    pyproject = _toml(listing.text(component.rel("pyproject.toml")))
    project = pyproject.get("project", {}) if isinstance(pyproject.get("project"), dict) else {}
    tools = pyproject.get("tool", {}) if isinstance(pyproject.get("tool"), dict) else {}
    setup_cfg = _cfg(listing.text(component.rel("setup.cfg")))
    poetry = tools.get("poetry", {}) if isinstance(tools.get("poetry"), dict) else {}
    requirements = tuple(
        f
        for f in files
        if fnmatch.fnmatch(f, "requirements*.txt") or fnmatch.fnmatch(f, "requirements/*.txt")
    )
    requires = _names(project.get("dependencies"))
    extras = project.get("optional-dependencies", {})
    groups = pyproject.get("dependency-groups", {})
    for table in (extras, groups):
        if isinstance(table, dict):
            for group in ("dev", "test", "tests", "lint", "typing"):
                requires += [r for r in _names(table.get(group)) if isinstance(r, str)]
    build_system = (
        pyproject.get("build-system", {}) if isinstance(pyproject.get("build-system"), dict) else {}
    )
    requires += _names(build_system.get("requires"))
    if str(build_system.get("build-backend", "setuptools")).startswith("setuptools") and (
        build_system or "setup.py" in files
    ):
        requires.append("wheel")  # setuptools before 70.1 builds wheels with it
    requirement_text = " ".join(listing.text(component.rel(r)) for r in requirements) + " ".join(requires)
    tests = any(re.search(r"(^|/)(test_[^/]*|[^/]*_test)\.py$", f) for f in files)
    pytest_config = (
        "pytest" in tools
        or "pytest.ini" in files
        or setup_cfg.has_section("tool:pytest")
        or "conftest.py" in files
    )
    mypy_cfg = tools.get("mypy") if isinstance(tools.get("mypy"), dict) else None
    mypy = (
        mypy_cfg is not None or bool({"mypy.ini", ".mypy.ini"} & set(files)) or setup_cfg.has_section("mypy")
    )
    ruff_cfg = tools.get("ruff")
    ruff = isinstance(ruff_cfg, dict) or bool({"ruff.toml", ".ruff.toml"} & set(files))
    ruff = ruff or bool(re.search(r"(^|[\s\"'])ruff\b", requirement_text))
    src_layout = any(f.startswith("src/") and f.endswith(".py") for f in files)
    sources = _sources(files, src_layout)
    name = str(project.get("name") or poetry.get("name") or component.path.rsplit("/", 1)[-1] or listing.name)
    version = project.get("version") or poetry.get("version")
    return PythonFacts(
        name=name,
        version=str(version) if isinstance(version, str) else None,
        requirements=requirements,
        requires=tuple(dict.fromkeys(requires)),
        buildable="build-system" in pyproject or "setup.py" in files or bool(poetry),
        # Test files by pytest's default names, or any Python file under tests/ when pytest is configured
        # (its python_files may name them otherwise).
        tests=tests
        or (pytest_config and any(f.startswith(("tests/", "test/")) and f.endswith(".py") for f in files)),
        ruff=ruff,
        ruff_format=isinstance(ruff_cfg, dict) and isinstance(ruff_cfg.get("format"), dict),
        mypy=mypy,
        mypy_files=bool(mypy_cfg and mypy_cfg.get("files")) or _ini_files(setup_cfg, listing, component),
        src_layout=src_layout,
        sources=sources,
    )


def _ini_files(setup_cfg: configparser.ConfigParser, listing: RepoListing, component: Component) -> bool:
    for text in (listing.text(component.rel("mypy.ini")), listing.text(component.rel(".mypy.ini"))):
        if text and _cfg(text).has_option("mypy", "files"):
            return True
    return setup_cfg.has_option("mypy", "files")


def _sources(files: tuple[str, ...], src_layout: bool) -> tuple[str, ...]:
    """Top-level packages (directories with Python files) and modules, tests and tooling excluded."""
    out: list[str] = []
    for f in files:
        if not f.endswith(".py"):
            continue
        parts = f.split("/")
        top = parts[0]
        if (
            top in ("tests", "test", "docs", "examples", "bench", "benchmarks", "scripts")
            or top == "setup.py"
        ):
            continue
        if re.match(r"(test_.*|.*_test|conftest)\.py$", parts[-1]):
            continue
        entry = "/".join(parts[:2]) if src_layout and top == "src" else top
        if entry not in out:
            out.append(entry)
    return tuple(out)


def plan(listing: RepoListing, component: Component, several: bool) -> StackPlan:
    """The setup, lint, build and test jobs of a Python component."""
    f = facts(listing, component)

    def name(kind: str) -> str:
        return job_name(component, kind, several)

    wd = component.path
    inputs = inputs_for(component.files, _EXCLUDES)
    manifests = tuple(
        present(component.files, ("pyproject.toml", "setup.cfg", "setup.py", *_LOCKS)) + list(f.requirements)
    )
    setup = _setup_job(name("setup"), component, f, manifests)
    jobs = [setup]
    env = {"PYTHONPATH": "src"} if f.src_layout else {}
    lint_steps = []
    if f.ruff:
        lint_steps.append(f"{PY} -m ruff check .")
        if f.ruff_format:
            lint_steps.append(f"{PY} -m ruff format --check .")
    if f.mypy:
        targets = "" if f.mypy_files or not f.sources else " " + " ".join(q(s) for s in f.sources)
        lint_steps.append(f"{PY} -m mypy{targets}")
    if not lint_steps:
        targets = " ".join(q(s) for s in f.sources) if f.sources else "."
        lint_steps.append(f"{PY} -m compileall -q {targets}")
    tools = " and ".join(t for t, on in (("ruff", f.ruff), ("mypy", f.mypy)) if on)
    what = (
        f"{tools}, as configured in the project"
        if tools
        else "a syntax check (compileall; no linter is configured)"
    )
    jobs.append(
        JobPlan(
            name=name("lint"),
            comment=f"Lint: {what}.",
            script=tuple(lint_steps),
            needs=(setup.name,),
            working_directory=wd,
            inputs=inputs,
            env=env,
        )
    )
    build = name("build")
    if f.buildable:
        build_script: tuple[str, ...] = (
            "rm -rf dist",
            f"{PY} -m pip wheel -q --no-deps --no-build-isolation -w dist .",
        )
        published: tuple[str, ...] = ("dist/*.whl",)
        what = "the wheel (pip wheel with the project's build backend, installed by setup)"
    else:
        sources = " ".join(q(s) for s in (f.sources or (".",)))
        archive = f"dist/{slug(f.name)}-src.tar.gz"
        build_script = ("rm -rf dist && mkdir -p dist", f"tar czf {archive} {sources}")
        published = (archive,)
        what = "a source archive (the project has no build system)"
    jobs.append(
        JobPlan(
            name=build,
            comment=f"Build: {what}.",
            script=build_script,
            needs=(setup.name,),
            working_directory=wd,
            inputs=inputs,
            outputs=("dist/",),
        )
    )
    if f.tests:
        source = ",".join(f.sources)
        cov = f" --source={q(source)}" if source else ""
        jobs.append(
            JobPlan(
                name=name("test"),
                comment="Test: pytest under coverage; JUnit and Cobertura reports feed the pipeline's gates.",
                script=(
                    "mkdir -p reports",
                    f"{PY} -m coverage run --branch --data-file=reports/.coverage{cov} -m pytest -q "
                    "-p no:cacheprovider --junitxml=reports/junit.xml",
                    f"{PY} -m coverage xml --data-file=reports/.coverage -o reports/coverage.xml",
                ),
                needs=(setup.name,),
                working_directory=wd,
                inputs=inputs,
                env=env,
                outputs=("reports/junit.xml", "reports/coverage.xml"),
                junit=("reports/junit.xml",),
                coverage=("reports/coverage.xml",),
            )
        )
    return StackPlan(
        jobs=tuple(jobs),
        build_job=build,
        published=published,
        manifests=manifests,
        setup_job=setup.name,
        variables={"PYTHONDONTWRITEBYTECODE": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        version_file="pyproject.toml" if f.version and "pyproject.toml" in component.files else None,
        library=f.buildable,
        name=f.name,
        writes=(
            ".venv/",
            "reports/",
            "dist/",
            "build/",
            ".mypy_cache/",
            ".ruff_cache/",
            "*.egg-info/",
            "__pycache__/",
        ),
        notes=tuple(
            note
            for note in (
                unreadable(listing, component.rel("pyproject.toml")),
                f"{component.path or '.'}: Hatch environments are not used; the project is installed with pip"
                if component.tool is Tool.HATCH
                else None,
            )
            if note
        ),
    )


def _tools(f: PythonFacts) -> list[str]:
    wanted = ["pytest", "coverage"] if f.tests else []
    if f.ruff:
        wanted.append("ruff")
    if f.mypy:
        wanted.append("mypy")
    return wanted


def _setup_job(name: str, component: Component, f: PythonFacts, manifests: tuple[str, ...]) -> JobPlan:
    tools = " ".join(_tools(f))
    if component.tool is Tool.UV:
        steps = ["uv sync --frozen" if "uv.lock" in component.files else "uv sync"]
        if tools:
            steps.append(f"uv pip install -q --python {PY} {tools}")
        how = "uv sync (from uv.lock)"
    elif component.tool is Tool.POETRY:
        steps = ["poetry install --no-interaction --no-root"]
        if tools:
            steps.append(f"{PY} -m pip install -q {tools}")
        how = "poetry install (POETRY_VIRTUALENVS_IN_PROJECT makes it .venv)"
    elif component.tool is Tool.PDM:
        steps = ["pdm install --no-self" + (" --frozen-lockfile" if "pdm.lock" in component.files else "")]
        if tools:
            steps.append(f"{PY} -m pip install -q {tools}")
        how = "pdm install (into .venv)"
    else:
        steps = [
            # A .venv restored from the cache but made by another python3 is made again.
            "made_by=\"$(python3 -c 'import sys; print(sys.prefix, sys.version)')\"",
            '[ "$(cat .venv/made-by 2>/dev/null)" = "$made_by" ] || '
            '{ python3 -m venv --clear --without-pip .venv && echo "$made_by" > .venv/made-by; }',
            "python3 -c 'import site; print(*site.getsitepackages(), sep=\"\\n\")' > "
            f'"$({PY} -c \'import sysconfig; print(sysconfig.get_path("purelib"))\')/_inherited.pth"',
            f"{PY} -m pip --version >/dev/null 2>&1 || {PY} -m ensurepip -q",
        ]
        packages = [*(f"-r {q(r)}" for r in f.requirements), *(q(r) for r in f.requires), *_tools(f)]
        if packages:
            steps.append(f"{PY} -m pip install -q " + " ".join(packages))
        how = "a virtualenv that sees the packages of the python3 that made it; pip installs what is missing"
    key_files = list(manifests)
    cache: dict[str, Any] = {
        "key": {"files": key_files, "prefix": f"venv-{name}"} if key_files else f"venv-{name}",
        "paths": [".venv/"],
    }
    env = {"POETRY_VIRTUALENVS_IN_PROJECT": "true"} if component.tool is Tool.POETRY else {}
    return JobPlan(
        name=name,
        comment=f"Setup: .venv with the dependencies and tools, via {how}; cached by the lockfiles.",
        script=tuple(steps),
        working_directory=component.path,
        inputs=tuple(key_files),
        env=env,
        cache=(cache,),
        key_commands=("python3 -c 'import sys; print(sys.version, sys.prefix)'",),
        timeout="15m",
    )
