"""Node components: npm, pnpm, yarn (classic and berry); workspaces and turbo monorepos (pure).

The test job uses what the project uses: ``node --test`` (Node's runner, with its JUnit and LCOV
reporters) when the test script runs it or there is no test script, Jest or Vitest when the test script
names them (reports when their reporters are installed), else the test script as it is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from buildyard.scaffold.common import inputs_for, job_name, present, unreadable
from buildyard.scaffold.model import Component, JobPlan, RepoListing, StackPlan, Tool

_LOCKS = {
    Tool.NPM: "package-lock.json",
    Tool.PNPM: "pnpm-lock.yaml",
    Tool.YARN: "yarn.lock",
    Tool.BERRY: "yarn.lock",
}
_NO_TEST = "no test specified"


def _package(listing: RepoListing, path: str) -> dict[str, Any]:
    try:
        data = json.loads(listing.text(path) or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def tool(listing: RepoListing, path: str, files: tuple[str, ...]) -> Tool:
    """The package manager: npm, pnpm, yarn (classic) or berry (yarn 2+)."""
    pkg = _package(listing, f"{path}/package.json" if path else "package.json")
    manager = str(pkg.get("packageManager", ""))
    if "pnpm-lock.yaml" in files or "pnpm-workspace.yaml" in files or manager.startswith("pnpm"):
        return Tool.PNPM
    if "yarn.lock" in files or manager.startswith("yarn"):
        berry = ".yarnrc.yml" in files or bool(re.match(r"yarn@[2-9]", manager))
        return Tool.BERRY if berry else Tool.YARN
    return Tool.NPM


@dataclass(frozen=True)
class NodeFacts:
    """What the planner reads from package.json and the files beside it."""

    name: str
    version: str | None
    private: bool
    scripts: dict[str, str]
    has_deps: bool
    workspaces: bool
    turbo: bool
    eslint: bool
    typescript: bool
    dev: frozenset[str]
    tests: bool


def facts(listing: RepoListing, component: Component) -> NodeFacts:
    """Read package.json and the monorepo and lint configuration of a Node component."""
    pkg = _package(listing, component.rel("package.json"))
    scripts = (
        {str(k): str(v) for k, v in (pkg.get("scripts") or {}).items()}
        if isinstance(pkg.get("scripts"), dict)
        else {}
    )
    deps = {
        str(k)
        for section in ("dependencies", "devDependencies", "optionalDependencies")
        if isinstance(pkg.get(section), dict)
        for k in pkg[section]
    }
    dev = frozenset(deps)
    files = component.files
    workspaces = bool(pkg.get("workspaces")) or "pnpm-workspace.yaml" in files
    return NodeFacts(
        name=str(pkg.get("name") or component.path.rsplit("/", 1)[-1] or listing.name),
        version=str(pkg["version"]) if isinstance(pkg.get("version"), str) else None,
        private=bool(pkg.get("private")),
        scripts=scripts,
        has_deps=bool(deps) or workspaces,
        workspaces=workspaces,
        turbo="turbo.json" in files,
        eslint=any(re.match(r"(\.eslintrc.*|eslint\.config\..*)$", f) for f in files) or "eslint" in dev,
        typescript="tsconfig.json" in files and "typescript" in dev,
        dev=dev,
        tests=any(
            re.search(r"(^|/)(tests?/.*\.[cm]?[jt]s|[^/]*\.(test|spec)\.[cm]?[jt]sx?)$", f) for f in files
        ),
    )


def _runner(manager: Tool) -> tuple[str, str]:
    """(run a script, run a package binary) for the package manager."""
    return {
        Tool.NPM: ("npm run", "npx --no-install"),
        Tool.PNPM: ("pnpm run", "pnpm exec"),
        Tool.YARN: ("yarn run", "yarn"),
        Tool.BERRY: ("yarn run", "yarn"),
    }[manager]


def _install(manager: Tool, locked: bool) -> str:
    if manager is Tool.NPM:
        return (
            "npm ci --no-audit --no-fund" if locked else "npm install --no-audit --no-fund --no-package-lock"
        )
    if manager is Tool.PNPM:
        return "pnpm install --frozen-lockfile" if locked else "pnpm install"
    if manager is Tool.BERRY:
        return "yarn install --immutable" if locked else "yarn install"
    return "yarn install --frozen-lockfile" if locked else "yarn install"


def plan(listing: RepoListing, component: Component, several: bool) -> StackPlan:
    """The setup, lint, build and test jobs of a Node component."""
    f = facts(listing, component)

    def name(kind: str) -> str:
        return job_name(component, kind, several)

    wd = component.path
    inputs = inputs_for(component.files)
    manager = component.tool
    run, exe = _runner(manager)
    lock = _LOCKS[manager]
    locked = lock in component.files
    manifests = tuple(present(component.files, ("package.json", lock)))
    members = sorted({p.rsplit("/", 1)[0] for p in component.files if p.endswith("/package.json")})
    jobs: list[JobPlan] = []
    needs: tuple[str, ...] = ()
    setup_name = None
    key_commands = ("node --version",)
    if f.has_deps:
        setup_name = name("setup")
        key_files = [lock] if locked else ["package.json"]
        jobs.append(
            JobPlan(
                name=setup_name,
                comment=f"Setup: node_modules with {manager if manager is not Tool.BERRY else 'yarn'}"
                + (f", exactly as {lock} says" if locked else "")
                + "; cached by the lockfile.",
                script=(_install(manager, locked),),
                working_directory=wd,
                inputs=tuple(present(component.files, ("package.json", lock, ".yarnrc.yml", ".npmrc")))
                + tuple(f"{m}/package.json" for m in members),
                cache=(
                    {
                        "key": {"files": key_files, "prefix": f"node-{setup_name}"},
                        "paths": ["node_modules/", *(f"{m}/node_modules/" for m in members)],
                    },
                ),
                key_commands=key_commands,
                timeout="15m",
            )
        )
        needs = (setup_name,)
    mono = f.workspaces or f.turbo

    def task(script: str) -> str:
        if f.turbo:
            return f"{exe} turbo run {script}"
        if f.workspaces and script not in f.scripts:
            if manager is Tool.NPM:
                return f"npm run {script} --workspaces --if-present"
            if manager is Tool.PNPM:
                return f"pnpm -r --if-present run {script}"
            return (
                f"yarn workspaces foreach -A run {script}"
                if manager is Tool.BERRY
                else f"yarn workspaces run {script}"
            )
        return f"{run} {script}"

    lint: tuple[str, ...]
    if "lint" in f.scripts or (mono and f.eslint):
        lint = (task("lint"),)
        what = "the project's lint script"
    elif f.eslint:
        lint = (f"{exe} eslint .",)
        what = "ESLint"
    else:
        lint = (
            "find . -name node_modules -prune -o -name dist -prune -o "
            r"\( -name '*.js' -o -name '*.mjs' -o -name '*.cjs' \) -print0 | xargs -0 -r -n1 node --check",
        )
        what = "a syntax check of every script (node --check; no linter is configured)"
    if f.typescript:
        lint = (*lint, f"{exe} tsc --noEmit")
        what += " and the TypeScript compiler"
    jobs.append(
        JobPlan(
            name=name("lint"),
            comment=f"Lint: {what}.",
            script=lint,
            needs=needs,
            working_directory=wd,
            inputs=inputs,
            key_commands=key_commands,
        )
    )
    build_steps: list[str] = []
    outputs: list[str] = []
    published: tuple[str, ...] = ()
    if "build" in f.scripts or (mono and f.turbo):
        build_steps.append(task("build"))
        outputs += ["dist/"] if not mono else [f"{m}/dist/" for m in members]
    if not f.private and not mono:
        build_steps += ["rm -rf .pack && mkdir -p .pack", "npm pack --silent --pack-destination .pack"]
        outputs.append(".pack/")
        published = (".pack/*.tgz",)
    build_name = None
    if build_steps:
        build_name = name("build")
        jobs.append(
            JobPlan(
                name=build_name,
                comment="Build: "
                + " and ".join(
                    part
                    for part, on in (
                        ("the build script", "build" in f.scripts or f.turbo),
                        ("the package tarball (npm pack)", bool(published)),
                    )
                    if on
                )
                + ".",
                script=tuple(build_steps),
                needs=needs,
                working_directory=wd,
                inputs=inputs,
                outputs=tuple(outputs),
                key_commands=key_commands,
            )
        )
    test = _test_job(f, task, exe, mono)
    if test is not None:
        script, junit, coverage, what = test
        jobs.append(
            JobPlan(
                name=name("test"),
                comment=f"Test: {what}.",
                script=("mkdir -p reports", *script),
                needs=needs,
                working_directory=wd,
                inputs=inputs,
                outputs=(*junit, *coverage),
                key_commands=key_commands,
                junit=junit,
                coverage=coverage,
            )
        )
    return StackPlan(
        jobs=tuple(jobs),
        build_job=build_name,
        published=published,
        manifests=manifests,
        setup_job=setup_name,
        version_file="package.json" if f.version and published else None,
        library=True,
        name=f.name,
        writes=("node_modules/", "reports/", "dist/", ".pack/"),
        notes=tuple(n for n in (unreadable(listing, component.rel("package.json")),) if n),
    )


def _test_job(
    f: NodeFacts, task: Callable[[str], str], exe: str, mono: bool
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], str] | None:
    script = f.scripts.get("test", "")
    if _NO_TEST in script:
        script = ""
    if mono:
        return ((task("test"),), (), (), "every workspace's test script") if script or f.turbo else None
    if "jest" in script:
        junit = ("reports/junit.xml",) if "jest-junit" in f.dev else ()
        reporters = " --reporters=default --reporters=jest-junit" if junit else ""
        return (
            (
                f"JEST_JUNIT_OUTPUT_DIR=reports {exe} jest --ci --coverage "
                f"--coverageDirectory=reports/coverage --coverageReporters=lcov{reporters}",
            ),
            junit,
            ("reports/coverage/lcov.info",),
            "Jest with LCOV coverage" + (" and JUnit (jest-junit)" if junit else ""),
        )
    if "vitest" in script:
        coverage = (
            ("reports/coverage/lcov.info",) if any(d.startswith("@vitest/coverage") for d in f.dev) else ()
        )
        flags = " --coverage.enabled --coverage.reporter=lcov --coverage.reportsDirectory=reports/coverage"
        return (
            (
                f"{exe} vitest run --reporter=default --reporter=junit --outputFile.junit=reports/junit.xml"
                + (flags if coverage else ""),
            ),
            ("reports/junit.xml",),
            coverage,
            "Vitest with a JUnit report" + (" and LCOV coverage" if coverage else ""),
        )
    if (not script and f.tests) or re.search(r"\bnode\b.*--test\b", script):
        return (
            (
                "node --test --experimental-test-coverage "
                "--test-reporter=spec --test-reporter-destination=stdout "
                "--test-reporter=junit --test-reporter-destination=reports/junit.xml "
                "--test-reporter=lcov --test-reporter-destination=reports/lcov.info",
            ),
            ("reports/junit.xml",),
            ("reports/lcov.info",),
            "Node's test runner (20.13 or later) with JUnit and LCOV coverage reports for the gates",
        )
    if script:
        return ((task("test"),), (), (), "the project's test script (no report format known)")
    return None
