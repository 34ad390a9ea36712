"""Requirements -> a ``buildyard.yml`` document and its Markdown design document. Pure.

The pipeline: ``lint`` and ``test`` (JUnit and Cobertura reports) in parallel, ``package`` (a signed,
versioned artifact), then one deployment job per environment in promotion order — every one after
the pipeline's gates, those past the first only on ``main``, production behind an approval. The
quality gates come from ``quality_gates`` (coverage, vulnerabilities, test failures) and the build
time target (a ``duration`` gate and every job's timeout).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from buildyard.design.requirements import Requirements

#: Environment names that get an approval.
PRODUCTION = frozenset({"production", "prod", "prd", "live"})
DEFAULT_TIMEOUT = 600.0


@dataclass(frozen=True)
class Stack:
    """How a language's project is checked, tested and packaged."""

    variables: dict[str, str]
    lint: list[str]
    test: list[str]
    junit: str | None
    coverage: str | None
    package: list[str]
    version: str | dict[str, str]
    caches: list[dict[str, Any]] = field(default_factory=list)
    #: Why a report is missing (written into the design document).
    caveats: list[str] = field(default_factory=list)
    #: What the jobs write, for ``.gitignore`` (an untracked file would change the next run's cache key).
    ignores: list[str] = field(default_factory=lambda: ["reports/", "dist/"])


STACKS: dict[str, Stack] = {
    "python": Stack(
        variables={"PYTHON": "python3", "PYTHONDONTWRITEBYTECODE": "1"},
        lint=["$PYTHON -m compileall -q -x '(^|/)[.]' ."],
        test=[
            "mkdir -p reports",
            "$PYTHON -m coverage run --data-file=reports/.coverage --branch -m pytest -q -p no:cacheprovider "
            "--junitxml=reports/junit.xml",
            "$PYTHON -m coverage xml --data-file=reports/.coverage -q -o reports/coverage.xml",
        ],
        junit="reports/junit.xml",
        coverage="reports/coverage.xml",
        package=["mkdir -p dist", 'git archive --format=tar.gz -o "dist/$BUILDYARD_PIPELINE.tar.gz" HEAD'],
        version={"from_file": "pyproject.toml"},
    ),
    "node": Stack(
        variables={},
        lint=["npm ci", "npm run lint --if-present"],
        test=[
            "npm ci",
            "mkdir -p reports",
            "npx --no-install c8 --reporter=cobertura --reports-dir=reports "
            "node --test --test-reporter=junit --test-reporter-destination=reports/junit.xml",
        ],
        junit="reports/junit.xml",
        coverage="reports/cobertura-coverage.xml",
        package=["npm ci", "mkdir -p dist", "npm pack --pack-destination dist"],
        version={"from_file": "package.json"},
        caches=[{"key": {"files": ["package-lock.json"], "prefix": "npm"}, "paths": ["node_modules"]}],
        ignores=["reports/", "dist/", "node_modules/"],
    ),
    "go": Stack(
        variables={},
        lint=["go vet ./..."],
        test=["mkdir -p reports", "go test -coverprofile=reports/cover.out ./..."],
        junit=None,
        coverage=None,
        package=["mkdir -p dist", 'go build -o "dist/$BUILDYARD_PIPELINE" .'],
        version="from_git_tag",
        caveats=[
            "Go writes no JUnit or Cobertura report by itself: the tests and coverage gates are left out "
            "(add go-junit-report and gocover-cobertura to the test job to have them)."
        ],
    ),
    "rust": Stack(
        variables={},
        lint=["cargo clippy --all-targets -- -D warnings"],
        test=["cargo test"],
        junit=None,
        coverage=None,
        package=["cargo build --release", "mkdir -p dist", "cp target/release/* dist/ 2>/dev/null || true"],
        version="from_git_tag",
        caches=[{"key": {"files": ["Cargo.lock"], "prefix": "cargo"}, "paths": ["target"]}],
        ignores=["reports/", "dist/", "target/"],
        caveats=[
            "cargo writes no JUnit or Cobertura report by itself: the tests and coverage gates are left out "
            "(add cargo-nextest and cargo-llvm-cov to the test job to have them)."
        ],
    ),
}
ARTIFACT_TYPE = {"library": "library", "cli": "application"}


@dataclass(frozen=True)
class Design:
    """The designed pipeline (document and YAML-ready data), the jobs' needs, the Markdown, and what
    ``.gitignore`` must list."""

    document: dict[str, Any]
    needs: dict[str, list[str]]
    markdown: str
    ignores: tuple[str, ...]


def format_duration(seconds: float) -> str:
    """``600`` -> ``10m``, ``90`` -> ``90s`` (as ``buildyard.yml`` writes durations)."""
    whole = round(seconds)
    if whole % 3600 == 0:
        return f"{whole // 3600}h"
    return f"{whole // 60}m" if whole % 60 == 0 else f"{whole}s"


def _deployments(req: Requirements) -> dict[str, dict[str, Any]]:
    jobs: dict[str, dict[str, Any]] = {}
    previous = "package"
    for i, env in enumerate(req.environments):
        name = f"deploy-{env}"
        environment: dict[str, Any] = {"name": env}
        if env.lower() in PRODUCTION:
            environment["approval"] = "required"
        job: dict[str, Any] = {"stage": "deploy", "needs": [previous], "environment": environment}
        if i > 0:
            job["if"] = "branch == 'main'"
        job["description"] = (
            f"Deploy the packaged {req.name} to {env}; replace the script with the real deployment."
        )
        job["script"] = [f'echo "deploying {req.name} $BUILDYARD_DEPLOY_VERSION to {env}"']
        jobs[name] = job
        previous = name
    return jobs


def gates_of(req: Requirements, stack: Stack) -> list[dict[str, Any]]:
    """The pipeline gates the requirements ask for."""
    gates: list[dict[str, Any]] = []
    if stack.junit:
        gates.append({"tests": {"junit": stack.junit, "max_failures": req.max_test_failures}})
    if stack.coverage and (req.min_line is not None or req.min_branch is not None):
        coverage: dict[str, Any] = {"report": stack.coverage}
        if req.min_line is not None:
            coverage["min_line"] = req.min_line
        if req.min_branch is not None:
            coverage["min_branch"] = req.min_branch
        gates.append({"coverage": coverage})
    if req.max_severity is not None:
        gates.append({"vulnerabilities": {"max_severity": req.max_severity}})
    if req.build_time is not None:
        gates.append({"duration": {"max": format_duration(req.build_time)}})
    return gates


def design(req: Requirements) -> Design:
    """The pipeline and design document for ``req``."""
    stack = STACKS[req.language]
    timeout = format_duration(req.build_time or DEFAULT_TIMEOUT)
    doc: dict[str, Any] = {"name": req.name}
    if stack.variables:
        doc["variables"] = dict(stack.variables)
    doc["stages"] = ["check", "test", "package", *(["deploy"] if req.environments else [])]
    doc["defaults"] = {"timeout": timeout}
    gates = gates_of(req, stack)
    if gates:
        doc["gates"] = gates
    jobs: dict[str, dict[str, Any]] = {
        "lint": {"stage": "check", "needs": [], "description": "Static checks.", "script": list(stack.lint)},
        "test": {
            "stage": "test",
            "needs": [],
            "description": "Tests with JUnit and coverage reports for the gates.",
            "script": list(stack.test),
        },
        "package": {
            "stage": "package",
            "needs": ["lint", "test"],
            "description": "The signed, versioned artifact the environments deploy.",
            "script": list(stack.package),
            "publish": {
                "name": req.name,
                "paths": ["dist/*"],
                "version": stack.version,
                "type": ARTIFACT_TYPE.get(req.project_type, "application"),
            },
        },
    }
    if stack.junit or stack.coverage:
        jobs["test"]["artifacts"] = {"paths": ["reports/"]}
    for name in ("lint", "test", "package"):
        if stack.caches:
            jobs[name]["cache"] = [dict(c) for c in stack.caches]
    jobs.update(_deployments(req))
    doc["jobs"] = jobs
    needs = {name: list(job["needs"]) for name, job in jobs.items()}
    from buildyard.design.document import markdown  # noqa: PLC0415 - sibling, kept apart for size

    return Design(doc, needs, markdown(req, stack, doc, needs), tuple(stack.ignores))


def gitignore(existing: str, ignores: tuple[str, ...]) -> str | None:
    """``existing`` ``.gitignore`` text with the missing ``ignores`` appended (``None``: nothing missing)."""
    present = {line.strip() for line in existing.splitlines()}
    missing = [i for i in ignores if i not in present and i.rstrip("/") not in present]
    if not missing:
        return None
    head = existing if not existing or existing.endswith("\n") else existing + "\n"
    return (
        head + "# written by buildyard design: outputs of the pipeline's jobs\n" + "\n".join(missing) + "\n"
    )
