"""Mojo components (pixi / mojoproject.toml, or ``mojo`` on PATH) and Dockerfiles (pure)."""

from __future__ import annotations

import posixpath
import re

from buildyard.scaffold.common import inputs_for, job_name, present, q, slug
from buildyard.scaffold.detect import generated
from buildyard.scaffold.model import Component, JobPlan, RepoListing, StackPlan, Tool

#: Writes a JUnit report of one test case per Mojo test file (Mojo has no test runner with reports).
_MOJO_TESTS = """\
mkdir -p reports; failed=0; cases=""
for f in {files}; do
  case=\"<testcase classname='mojo' name='$f'\"
  if {mojo} run -I . "$f"; then cases="$cases$case/>";
  else failed=$((failed+1)); cases="$cases$case><failure message='mojo run failed'/></testcase>"; fi
done
{{ echo '<?xml version="1.0" encoding="utf-8"?>'
  echo "<testsuite name='mojo' tests='{count}' failures='$failed'>$cases</testsuite>"
}} > reports/junit-mojo.xml
test "$failed" -eq 0"""


def tool(listing: RepoListing, path: str, files: tuple[str, ...]) -> Tool:
    """How Mojo is run: ``pixi`` (pixi.toml / mojoproject.toml) or ``mojo`` on PATH."""
    del listing, path
    return Tool.PIXI if {"pixi.toml", "mojoproject.toml"} & set(files) else Tool.MOJO


def plan_mojo(listing: RepoListing, component: Component, several: bool) -> StackPlan:
    """Build every file with ``fn main`` into build/, run every ``test_*.mojo`` (a JUnit report)."""
    mojo = "pixi run mojo" if component.tool is Tool.PIXI else "mojo"
    sources = [f for f in component.files if f.endswith((".mojo", ".🔥"))]
    tests = [f for f in sources if re.match(r"test_", posixpath.basename(f))]
    mains = [
        f
        for f in sources
        if f not in tests
        and re.search(r"^\s*(?:fn|def)\s+main\s*\(", listing.text(component.rel(f)), re.MULTILINE)
    ]
    key = (f"{mojo} --version",)
    jobs: list[JobPlan] = []
    setup = None
    inputs = inputs_for(component.files)
    if component.tool is Tool.PIXI:
        setup = job_name(component, "setup", several)
        lock = present(component.files, ("pixi.lock", "magic.lock"))
        manifest = present(component.files, ("pixi.toml", "mojoproject.toml"))
        jobs.append(
            JobPlan(
                name=setup,
                comment="Setup: the pixi environment with Mojo (.pixi/), cached by the lockfile.",
                script=("pixi install" + (" --locked" if lock else ""),),
                working_directory=component.path,
                inputs=tuple(manifest + lock),
                cache=({"key": {"files": lock or manifest, "prefix": f"pixi-{setup}"}, "paths": [".pixi/"]},),
                timeout="20m",
            )
        )
    needs = (setup,) if setup else ()
    outputs = tuple(f"build/{slug(posixpath.splitext(posixpath.basename(m))[0])}" for m in mains)
    build_name = None
    if mains:
        build_name = job_name(component, "build", several)
        steps = ["mkdir -p build"] + [
            f"{mojo} build -I . {q(m)} -o {o}" for m, o in zip(mains, outputs, strict=True)
        ]
        jobs.append(
            JobPlan(
                name=build_name,
                comment="Build: every Mojo program (a file with fn main) into build/.",
                script=tuple(steps),
                needs=needs,
                working_directory=component.path,
                inputs=inputs,
                outputs=outputs,
                key_commands=key,
            )
        )
    if tests:
        jobs.append(
            JobPlan(
                name=job_name(component, "test", several),
                comment="Test: each test_*.mojo file run with mojo run; a JUnit report (one case per file).",
                script=(
                    _MOJO_TESTS.format(files=" ".join(q(t) for t in tests), mojo=mojo, count=len(tests)),
                ),
                needs=needs,
                working_directory=component.path,
                inputs=inputs,
                outputs=("reports/junit-mojo.xml",),
                key_commands=key,
                junit=("reports/junit-mojo.xml",),
            )
        )
    manifests = tuple(present(component.files, ("pixi.toml", "mojoproject.toml", "pixi.lock")))
    notes = ("Mojo: no lint job (mojo format has no --check mode)",)
    return StackPlan(
        jobs=tuple(jobs),
        build_job=build_name,
        published=outputs,
        manifests=manifests,
        setup_job=setup,
        notes=notes,
        writes=("build/", "reports/", ".pixi/"),
    )


def plan_docker(listing: RepoListing, component: Component, several: bool, image: str) -> StackPlan:
    """A docker build that runs where a Docker daemon answers and says so in one line elsewhere.

    Its inputs are every file of its directory, nested components included (the build context).
    """
    name = job_name(component, "image", several)
    tag = f"{slug(image).lower()}:ci"
    script = (
        "if docker info >/dev/null 2>&1; then",
        f"  docker build -t {q(tag)} .",
        "else",
        '  echo "skipped: docker is not available here (docker info failed): image not built"',
        "fi",
    )
    job = JobPlan(
        name=name,
        comment=(
            "Image: docker build of the Dockerfile where a Docker daemon answers; elsewhere the job says it "
            "skipped. Whether Docker answers is part of the cache key, so the image is built once it does."
        ),
        script=("\n".join(script),),
        working_directory=component.path,
        inputs=inputs_for([f for f in listing.under(component.path) if not generated(f)]),
        key_commands=("docker info --format '{{.ServerVersion}}' 2>/dev/null || echo no-docker",),
        timeout="30m",
    )
    return StackPlan(jobs=(job,))
