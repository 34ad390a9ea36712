"""Compiled stacks: Go, Rust (cargo workspaces), Java (Maven, Gradle), C/C++ (CMake, Make) (pure)."""

from __future__ import annotations

import re
import tomllib
from typing import Any

from buildyard.scaffold.common import inputs_for, job_name, present, q
from buildyard.scaffold.model import Component, JobPlan, RepoListing, StackPlan, Tool


def tool(stack: str, listing: RepoListing, path: str, files: tuple[str, ...]) -> Tool:
    """The build tool of a Go, Rust, Java or C component."""
    del listing, path
    if stack == "java":
        if "pom.xml" in files:
            return Tool.MAVEN
        return Tool.GRADLEW if "gradlew" in files else Tool.GRADLE
    if stack == "c":
        return Tool.CMAKE if "CMakeLists.txt" in files else Tool.MAKE
    return {"go": Tool.GO, "rust": Tool.CARGO}[stack]


def _jobs(
    component: Component,
    several: bool,
    *,
    lint: tuple[str, str] | None,
    build: tuple[str, str, tuple[str, ...]] | None,
    test: tuple[str, str, tuple[str, ...], tuple[str, ...]] | None,
    key_commands: tuple[str, ...],
    excludes: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    serial: bool = False,
) -> list[JobPlan]:
    """Lint/build/test jobs from (script, comment[, outputs][, junit, coverage]); steps are ``\\n``-split.

    ``serial``: the test job needs the build job (both write one build tree: they must not run at once).
    """
    inputs = inputs_for(component.files, excludes)
    wd = component.path
    jobs = []
    if lint is not None:
        jobs.append(
            JobPlan(
                name=job_name(component, "lint", several),
                comment=lint[1],
                script=tuple(lint[0].split("\n")),
                working_directory=wd,
                inputs=inputs,
                key_commands=key_commands,
                env=env or {},
            )
        )
    if build is not None:
        jobs.append(
            JobPlan(
                name=job_name(component, "build", several),
                comment=build[1],
                script=tuple(build[0].split("\n")),
                working_directory=wd,
                inputs=inputs,
                outputs=build[2],
                key_commands=key_commands,
                env=env or {},
            )
        )
    if test is not None:
        script, comment, junit, coverage = test
        jobs.append(
            JobPlan(
                name=job_name(component, "test", several),
                comment=comment,
                needs=(job_name(component, "build", several),) if serial and build is not None else (),
                script=tuple(script.split("\n")),
                working_directory=wd,
                inputs=inputs,
                outputs=(*junit, *coverage),
                key_commands=key_commands,
                junit=junit,
                coverage=coverage,
                env=env or {},
            )
        )
    return jobs


def plan_go(listing: RepoListing, component: Component, several: bool) -> StackPlan:
    """gofmt + go vet, go build into dist/, go test with a coverage profile."""
    del listing
    jobs = _jobs(
        component,
        several,
        lint=(
            'test -z "$(gofmt -l .)" || { gofmt -l .; echo "gofmt: these files need formatting"; exit 1; }\n'
            "go vet ./...",
            "Lint: gofmt (formatting) and go vet.",
        ),
        build=("mkdir -p dist\ngo build -o dist/ ./...", "Build: every main package into dist/.", ("dist/",)),
        test=(
            "mkdir -p reports\ngo test -coverprofile=reports/coverage.out ./...",
            "Test: go test with a coverage profile (reports/coverage.out: no gate reads Go's format).",
            (),
            (),
        ),
        key_commands=("go version",),
    )
    manifests = tuple(present(component.files, ("go.mod", "go.sum", "go.work")))
    build = job_name(component, "build", several)
    return StackPlan(
        jobs=tuple(jobs),
        build_job=build,
        published=("dist/*",),
        manifests=manifests,
        writes=("dist/", "reports/"),
    )


def _cargo(text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return {}


def plan_rust(listing: RepoListing, component: Component, several: bool) -> StackPlan:
    """cargo clippy (or check), cargo build --release, cargo test; binaries published."""
    bins: list[str] = []
    for cargo_toml in [f for f in component.files if f.endswith("Cargo.toml")]:
        data = _cargo(listing.text(component.rel(cargo_toml)))
        base = cargo_toml[: -len("Cargo.toml")]
        package = data.get("package", {}) if isinstance(data.get("package"), dict) else {}
        named = [b.get("name") for b in data.get("bin", []) if isinstance(b, dict) and b.get("name")]
        if named:
            bins += [str(n) for n in named]
        elif package.get("name") and f"{base}src/main.rs" in component.files:
            bins.append(str(package["name"]))
    locked = " --locked" if "Cargo.lock" in component.files else ""
    fmt = "cargo fmt --check\n" if {"rustfmt.toml", ".rustfmt.toml"} & set(component.files) else ""
    # Cargo allows only these characters in target names: anything else is not a binary it builds.
    outputs = tuple(f"target/release/{b}" for b in dict.fromkeys(bins) if re.fullmatch(r"[A-Za-z0-9_-]+", b))
    jobs = _jobs(
        component,
        several,
        lint=(
            f"{fmt}if cargo clippy --version >/dev/null 2>&1; then cargo clippy --all-targets{locked}; "
            f'else echo "clippy is not installed (rustup component add clippy): cargo check only"; '
            f"cargo check --all-targets{locked}; fi",
            "Lint: cargo clippy (cargo check where clippy is not installed)"
            + (" and rustfmt" if fmt else "")
            + ".",
        ),
        build=(
            f"cargo build --release{locked}",
            "Build: the release binaries (target/release/).",
            outputs,
        ),
        test=(f"cargo test{locked}", "Test: cargo test (Rust's runner writes no JUnit report).", (), ()),
        key_commands=("cargo --version",),
        env={"CARGO_TERM_COLOR": "always"},
    )
    build = job_name(component, "build", several)
    manifests = tuple(present(component.files, ("Cargo.toml", "Cargo.lock")))
    notes = () if outputs else (f"{component.path or '.'}: a library crate: nothing published from it",)
    return StackPlan(
        jobs=tuple(jobs),
        build_job=build,
        published=outputs,
        manifests=manifests,
        notes=notes,
        writes=("target/",),
    )


def plan_java(listing: RepoListing, component: Component, several: bool) -> StackPlan:
    """Maven or Gradle: configured linters, the jar, tests with Surefire/Gradle JUnit reports (+JaCoCo)."""
    text = " ".join(
        listing.text(component.rel(f)) for f in component.files if f.endswith(("pom.xml", ".gradle", ".kts"))
    )
    jacoco = "jacoco" in text
    modules = sorted(
        {
            f.rsplit("/", 1)[0]
            for f in component.files
            if f.endswith(("/pom.xml", "/build.gradle", "/build.gradle.kts"))
        }
    )
    where = ["", *(m + "/" for m in modules)]
    if component.tool is Tool.MAVEN:
        mvn = "mvn -B -ntp"
        linters = [
            goal
            for plugin, goal in (("checkstyle", "checkstyle:check"), ("spotless", "spotless:check"))
            if plugin in text
        ]
        lint = (
            (f"{mvn} {' '.join(linters)}", f"Lint: {' and '.join(linters)} (configured in the POM).")
            if linters
            else None
        )
        junit = tuple(f"{w}target/surefire-reports/TEST-*.xml" for w in where)
        coverage = tuple(f"{w}target/site/jacoco/jacoco.xml" for w in where[:1]) if jacoco else ()
        test = (
            f"{mvn} test" + (" jacoco:report" if jacoco else ""),
            "Test: mvn test; Surefire's JUnit reports"
            + (" and JaCoCo coverage" if jacoco else "")
            + " feed the gates.",
            junit,
            coverage,
        )
        build = (
            f"{mvn} -DskipTests package",
            "Build: the jar (mvn package, tests run in the test job).",
            tuple(f"{w}target/*.jar" for w in where),
        )
        manifests = ("pom.xml", *(f"{m}/pom.xml" for m in modules))
        key = ("mvn --version",)
    else:
        gradle = "./gradlew --no-daemon" if component.tool is Tool.GRADLEW else "gradle --no-daemon"
        lint = (
            f"{gradle} check -x test",
            "Lint: gradle check without the tests (the linters the build applies).",
        )
        junit = tuple(f"{w}build/test-results/test/*.xml" for w in where)
        coverage = (
            tuple(f"{w}build/reports/jacoco/test/jacocoTestReport.xml" for w in where[:1]) if jacoco else ()
        )
        test = (
            f"{gradle} test" + (" jacocoTestReport" if jacoco else ""),
            "Test: gradle test; its JUnit reports"
            + (" and JaCoCo coverage" if jacoco else "")
            + " feed the gates.",
            junit,
            coverage,
        )
        build = (
            f"{gradle} assemble",
            "Build: the jar (gradle assemble).",
            tuple(f"{w}build/libs/*.jar" for w in where),
        )
        manifests = tuple(
            present(
                component.files,
                (
                    "build.gradle",
                    "build.gradle.kts",
                    "settings.gradle",
                    "settings.gradle.kts",
                    "gradle.lockfile",
                ),
            )
        )
        key = ("java -version 2>&1",)
    jobs = _jobs(component, several, lint=lint, build=build, test=test, key_commands=key, serial=True)
    name = job_name(component, "build", several)
    writes = ("target/",) if component.tool is Tool.MAVEN else ("build/", ".gradle/")
    return StackPlan(
        jobs=tuple(jobs),
        build_job=name,
        published=build[2][:1],
        manifests=manifests,
        library=True,
        writes=writes,
    )


def _make_targets(text: str) -> tuple[list[str], set[str]]:
    """(the default goal's prerequisites — or the goal itself when it is a file —, every target)."""
    targets: list[str] = []
    phony: set[str] = set()
    default: list[str] = []
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z0-9_./-]+)\s*:(?!=)\s*(.*)$", line)
        if not m:
            continue
        target, prereqs = m.group(1), m.group(2).split("#", 1)[0].split()
        if target == ".PHONY":
            phony.update(prereqs)
            continue
        if target.startswith("."):
            continue
        targets.append(target)
        if not default:
            default = [target] if target not in ("all",) else prereqs
    files = [t for t in default if t not in phony and "$" not in t and not t.endswith(".o")]
    return files, set(targets)


def plan_c(listing: RepoListing, component: Component, several: bool) -> StackPlan:
    """CMake (configure, build, ctest with a JUnit report) or Make (make, make test/check)."""
    key = ("cc --version | head -1",)
    fmt = None
    if ".clang-format" in component.files:
        fmt = (
            "if command -v clang-format >/dev/null; then "
            "find . -path ./build -prune -o "
            "\\( -name '*.c' -o -name '*.h' -o -name '*.cpp' -o -name '*.hpp' \\) -print0 "
            "| xargs -0 -r clang-format --dry-run -Werror; "
            'else echo "clang-format is not installed: formatting not checked"; fi',
            "Lint: clang-format (the project has a .clang-format).",
        )
    test: tuple[str, str, tuple[str, ...], tuple[str, ...]] | None
    if component.tool is Tool.CMAKE:
        text = " ".join(
            listing.text(component.rel(f)) for f in component.files if f.endswith("CMakeLists.txt")
        )
        exes = [e for e in re.findall(r"add_executable\s*\(\s*([A-Za-z0-9_.+-]+)", text) if "$" not in e]
        configure = "cmake -S . -B build -DCMAKE_BUILD_TYPE=Release\ncmake --build build --parallel"
        tests = "add_test" in text
        build = (
            configure,
            "Build: configure with CMake into build/ and compile.",
            tuple(f"build/{e}" for e in exes),
        )
        test = (
            (
                f"{configure}\nmkdir -p reports\n"
                'ctest --test-dir build --output-on-failure --output-junit "$PWD/reports/junit.xml"',
                "Test: ctest, with a JUnit report for the gates.",
                ("reports/junit.xml",),
                (),
            )
            if tests
            else None
        )
        published = build[2]
        manifests = ("CMakeLists.txt",)
    else:
        makefile = next(n for n in ("GNUmakefile", "makefile", "Makefile") if n in component.files)
        files, targets = _make_targets(listing.text(component.rel(makefile)))
        build = ("make", "Build: make (the default goal).", tuple(files))
        check = "test" if "test" in targets else "check" if "check" in targets else None
        test = (f"make {check}", f"Test: make {check}.", (), ()) if check else None
        published = tuple(files)
        manifests = (makefile,)
    jobs = _jobs(
        component,
        several,
        lint=fmt,
        build=build,
        test=test,
        key_commands=key,
        excludes=("*.o", "*.a", "*.so"),
        serial=True,
    )
    notes = () if published else (f"{component.path or '.'}: no built file found to publish",)
    writes = (
        ("build/", "reports/") if component.tool is Tool.CMAKE else ("*.o", *(f"/{p}" for p in published))
    )
    return StackPlan(
        jobs=tuple(jobs),
        build_job=job_name(component, "build", several),
        published=published,
        manifests=manifests,
        notes=notes,
        writes=writes,
    )


__all__ = ["plan_c", "plan_go", "plan_java", "plan_rust", "q", "tool"]
