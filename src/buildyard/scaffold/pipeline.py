"""The whole generated pipeline: every component's jobs, then the jobs over the repository (dependency
and secret scan, SBOM, the signed release) and the gates (pure)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from buildyard.scaffold import extra, native, node, python
from buildyard.scaffold.common import glob_word, inputs_for, q, slug
from buildyard.scaffold.detect import generated, make_components
from buildyard.scaffold.model import Component, JobPlan, RepoListing, Scaffold, Stack, StackPlan, Tool

#: Part of the scan job's key: the OSV database it reads (none, or each dump's size and time). Jobs never
#: see BUILDYARD_* settings: the database is the one 'deps db update' writes, or $OSV_DB.
_OSV_STATE = 'ls -ln --time-style=+%s "${OSV_DB:-.buildyard/osv}"/*/all.zip 2>/dev/null || echo none'
_EMPTY_SARIF = (
    '{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "buildyard deps scan"}}, "results": []}]}'
)
#: What builds leave beside the sources, per stack (never an input of the repository-wide jobs).
_IN_TREE = {Stack.PYTHON: ("__pycache__", "*.egg-info"), Stack.C: ("*.o", "*.a", "*.so")}
Planner = Callable[[RepoListing, Component, bool], StackPlan]


def _tool(listing: RepoListing) -> Callable[[Stack, str, tuple[str, ...]], Tool]:
    def tool_of(stack: Stack, path: str, files: tuple[str, ...]) -> Tool:
        if stack is Stack.PYTHON:
            return python.tool(listing, path, files)
        if stack is Stack.NODE:
            return node.tool(listing, path, files)
        if stack is Stack.MOJO:
            return extra.tool(listing, path, files)
        if stack is Stack.DOCKER:
            return Tool.DOCKER
        return native.tool(stack.value, listing, path, files)

    return tool_of


def _planner(stack: Stack, name: str) -> Planner:
    planners: dict[Stack, Planner] = {
        Stack.PYTHON: python.plan,
        Stack.NODE: node.plan,
        Stack.GO: native.plan_go,
        Stack.RUST: native.plan_rust,
        Stack.JAVA: native.plan_java,
        Stack.C: native.plan_c,
        Stack.MOJO: extra.plan_mojo,
        Stack.DOCKER: lambda listing, comp, several: extra.plan_docker(listing, comp, several, name),
    }
    return planners[stack]


def _prefixed(component: Component, paths: tuple[str, ...]) -> list[str]:
    return [component.rel(p) if not p.startswith("!") else "!" + component.rel(p[1:]) for p in paths]


def scaffold(listing: RepoListing) -> Scaffold:
    """The pipeline document for the repository ``listing`` describes (see :mod:`buildyard.scaffold`)."""
    name = slug(listing.name).lower()
    components = make_components(listing, _tool(listing))
    several = len(components) > 1
    jobs: list[JobPlan] = []
    variables: dict[str, str] = {}
    notes: list[str] = []
    gates: list[dict[str, Any]] = []
    ignores: list[str] = [".buildyard/", "/reports/"]
    published: list[str] = []
    builds: list[str] = []
    setups: list[str] = []
    manifests: list[str] = []
    plans: list[tuple[Component, StackPlan]] = []
    for component in components:
        stack_plan = _planner(component.stack, name)(listing, component, several)
        plans.append((component, stack_plan))
        jobs += stack_plan.jobs
        variables.update(stack_plan.variables)
        notes += stack_plan.notes
        ignores += [_anchored(component.path, w) for w in stack_plan.writes]
        manifests += _prefixed(component, stack_plan.manifests)
        if stack_plan.setup_job:
            setups.append(stack_plan.setup_job)
        if stack_plan.build_job and stack_plan.published:
            builds.append(stack_plan.build_job)
            published += _prefixed(component, stack_plan.published)
        label = component.path or component.stack.value
        for job in stack_plan.jobs:
            if job.junit:
                gates.append({"tests": {"name": f"tests {label}", "junit": _prefixed(component, job.junit)}})
            for report in job.coverage:
                gates.append(
                    {
                        "coverage": {
                            "name": f"coverage {label}",
                            "report": component.rel(report),
                            "no_decrease": True,
                        }
                    }
                )
    if listing.truncated:
        notes.append("the repository has more files than init reads: the listing was cut, check the jobs")
    if not components:
        notes.append("no known stack found: the pipeline only scans the repository and writes its SBOM")
    stacks = {c.stack for c in components}
    excludes = [n for s, names in _IN_TREE.items() if s in stacks for n in names]
    repo_inputs = inputs_for([f for f in listing.files if not generated(f)], excludes)
    jobs.append(
        JobPlan(
            name="scan",
            comment=(
                "Scan: known vulnerabilities of every lockfile (buildyard deps scan, offline OSV database: "
                "'buildyard deps db update' fetches it; without it the scan says what it could not check) "
                "and committed secrets (buildyard scan secrets). SARIF reports, read by the secrets and "
                "vulnerabilities gates."
            ),
            script=(
                "mkdir -p reports",
                'db="${OSV_DB:-.buildyard/osv}"\n'
                'if [ -d "$db" ]; then\n'
                '  buildyard deps scan --db "$db" --format sarif -o reports/dependencies.sarif \\\n'
                "    || test $? -eq 1\n"
                "else\n"
                '  echo "dependencies not scanned: no OSV database in $db (buildyard deps db update)"\n'
                f"  echo {q(_EMPTY_SARIF)} > reports/dependencies.sarif\n"
                "fi",
                "buildyard scan secrets --format sarif > reports/secrets.sarif || test $? -eq 1",
            ),
            inputs=tuple(repo_inputs),
            key_commands=(_OSV_STATE,),
            outputs=("reports/dependencies.sarif", "reports/secrets.sarif"),
        )
    )
    # Findings do not fail the scan job (exit 1 is accepted; 2, an error, is not): these gates decide.
    # A secret is an error-level result; a vulnerability is a warning (medium, or unknown severity as
    # most advisories have) or an error (high, critical): only low ones pass.
    gates.append({"sarif": {"name": "secrets", "files": "reports/secrets.sarif", "max_level": "warning"}})
    gates.append(
        {"sarif": {"name": "vulnerabilities", "files": "reports/dependencies.sarif", "max_level": "note"}}
    )
    jobs.append(
        JobPlan(
            name="sbom",
            comment="SBOM: CycloneDX 1.6 of every dependency the lockfiles and installed trees name.",
            script=("mkdir -p reports", f"buildyard deps sbom --name {name} -o reports/sbom.cdx.json"),
            needs=tuple(setups),
            inputs=tuple(manifests),
            outputs=("reports/sbom.cdx.json",),
        )
    )
    version: Any = "from_git_tag"
    roots = [(c, p) for c, p in plans if p.version_file and c.path == "" and p.published]
    if len(plans) == 1 and roots:
        version = {"from_file": roots[0][1].version_file}
    library = len(plans) == 1 and plans[0][1].library
    own = plans[0][1].name if len(plans) == 1 else None
    artifact = slug(own.rsplit("/", 1)[-1]).lower() if own else name
    release_paths = [*published, "reports/sbom.cdx.json"]
    jobs.append(
        JobPlan(
            name="release",
            comment=(
                "Release: once every gate passed, the build outputs and the SBOM are published as one signed "
                "artifact (Ed25519, SLSA provenance). A cached run of the same commit reuses its version."
            ),
            script=("ls -l -- " + " ".join(glob_word(p) for p in release_paths),),
            needs=("gates", *builds, "sbom"),
            inputs=(),
            publish={
                "name": artifact,
                "type": "library" if library else "application",
                "paths": release_paths,
                "version": version,
            },
        )
    )
    document: dict[str, Any] = {"name": name}
    if variables:
        document["variables"] = dict(sorted(variables.items()))
    document["defaults"] = {"timeout": "30m"}
    document["gates"] = gates
    document["jobs"] = {job.name: job.document() for job in jobs}
    return Scaffold(
        document=document,
        components=tuple(components),
        comments={job.name: job.comment for job in jobs},
        notes=tuple(dict.fromkeys(notes)),
        ignores=tuple(dict.fromkeys(ignores)),
    )


def _anchored(path: str, pattern: str) -> str:
    """A component's .gitignore pattern for the root's .gitignore: ``dist/`` in ``web`` -> ``/web/dist/``;
    patterns without a directory part (``*.o``, ``__pycache__/``) match at any depth under it."""
    if "/" not in pattern.rstrip("/"):
        if pattern.startswith("*") or pattern in ("__pycache__/",):
            return f"/{path}/**/{pattern}" if path else pattern
        return f"/{path}/{pattern}" if path else f"/{pattern}"
    return f"/{path}{pattern}" if path else pattern
