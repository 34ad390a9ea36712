"""The Markdown design document of a designed pipeline: requirements, stages, the DAG as a Mermaid
diagram, gates, environments and timeouts. Pure."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from buildyard.design.pipeline import Stack
    from buildyard.design.requirements import Requirements

GATE_WHY = {
    "tests": "quality_gates.max_test_failures",
    "coverage": "quality_gates.test_coverage / branch_coverage",
    "vulnerabilities": "quality_gates.security_scan",
    "duration": "performance_targets.build_time",
}


def _node(name: str) -> str:
    return name.replace("-", "_").replace(".", "_")


def _gate_threshold(kind: str, spec: dict[str, Any]) -> str:
    if kind == "tests":
        return f"at most {spec['max_failures']} failed tests in `{spec['junit']}`"
    if kind == "coverage":
        parts = [f"line ≥ {spec['min_line']:g}%" if "min_line" in spec else ""]
        parts.append(f"branch ≥ {spec['min_branch']:g}%" if "min_branch" in spec else "")
        return f"{', '.join(p for p in parts if p)} in `{spec['report']}`"
    if kind == "vulnerabilities":
        return f"nothing worse than {spec['max_severity']} in the locked dependencies (offline OSV scan)"
    if kind == "duration":
        return f"the run takes at most {spec['max']}"
    return str(spec)


def markdown(req: Requirements, stack: Stack, doc: dict[str, Any], needs: dict[str, list[str]]) -> str:
    """The design document."""
    jobs: dict[str, dict[str, Any]] = doc["jobs"]
    gates: list[dict[str, Any]] = doc.get("gates", [])
    lines = [
        f"# Pipeline design: {req.name}",
        "",
        f"Written by `buildyard design {req.file}`; the pipeline is `buildyard.yml`.",
        "",
        "## Requirements",
        "",
        f"- Project type: {req.project_type}",
        f"- Tech stack: {', '.join(req.tech_stack)} (pipeline for {req.language})",
        f"- Build time target: {doc['defaults']['timeout'] if req.build_time else 'none given'}",
        f"- Environments: {', '.join(req.environments) or 'none'}",
        "",
        "## Stages",
        "",
        "| stage | jobs |",
        "|---|---|",
    ]
    for stage in doc["stages"]:
        names = [f"`{n}`" for n, j in jobs.items() if j["stage"] == stage]
        lines.append(f"| {stage} | {', '.join(names)} |")
    lines += ["", "## DAG", "", "```mermaid", "flowchart LR"]
    deployments = [n for n, j in jobs.items() if "environment" in j]
    for name in jobs:
        lines.append(f'  {_node(name)}["{name}"]')
    if gates:
        lines.append("  gates{{gates}}")
    for name, upstream in needs.items():
        for up in upstream:
            lines.append(f"  {_node(up)} --> {_node(name)}")
    if gates:
        for name in jobs:
            if name not in deployments:
                lines.append(f"  {_node(name)} -.-> gates")
        for name in deployments:
            lines.append(f"  gates -.-> {_node(name)}")
    lines += ["```", "", "Jobs start as soon as the jobs they need finish (no stage barrier)."]
    if gates:
        lines.append("Every deployment waits for the pipeline's gates (dotted edges).")
    lines += ["", "## Gates", ""]
    if gates:
        lines += ["| gate | threshold | from |", "|---|---|---|"]
        for gate in gates:
            (kind, spec), *_ = gate.items()
            lines.append(f"| {kind} | {_gate_threshold(kind, spec)} | `{GATE_WHY.get(kind, '')}` |")
    else:
        lines.append("None asked for.")
    lines += [f"- {c}" for c in stack.caveats]
    lines += ["", "## Environments", ""]
    if deployments:
        lines += ["| environment | job | runs on | approval |", "|---|---|---|---|"]
        for name in deployments:
            job = jobs[name]
            env = job["environment"]
            when = "`main` only" if "if" in job else "every branch"
            approval = "required (`buildyard approve`)" if env.get("approval") == "required" else "none"
            lines.append(f"| {env['name']} | `{name}` | {when} | {approval} |")
    else:
        lines.append("None: the pipeline ends with the packaged artifact.")
    lines += [
        "",
        "## Timeouts",
        "",
        f"Every job times out after {doc['defaults']['timeout']} (the build time target, or 10 minutes).",
        "",
    ]
    return "\n".join(lines)
