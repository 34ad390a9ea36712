"""The ``build_output`` document: what a pipeline produced, read after its runs.

It answers the ``build_requirements`` document architects hand over (``buildyard design``): the
pipeline's configuration file, the artifacts it published (version, commit, build number — from the
artifact repository's signed manifests), the deployment manifest of every environment (from the
deployment history), the documentation, and the measured build time and success rate (from the
run history, through the view model). Built from stored records only; the face renders it as YAML
or JSON.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from buildyard.model import RunStatus
from buildyard.views import DeploymentView, RunView

if TYPE_CHECKING:
    from buildyard.artifacts.repo import Repository
    from buildyard.store.history import History

#: Documentation the report lists when it exists (``buildyard design`` writes the first).
DOCUMENTS = ("docs/pipeline-design.md", "README.md")
#: Runs the measurements cover.
WINDOW = 20


def _measurements(runs: Sequence[RunView]) -> dict[str, Any]:
    finished = [r for r in runs if r.status is not RunStatus.RUNNING]
    good = [r for r in finished if r.status is RunStatus.SUCCESS]
    times = [r.record.duration_s for r in good if r.record.duration_s is not None]
    return {
        "runs": len(finished),
        "successful_runs": len(good),
        "success_rate": round(len(good) / len(finished), 4) if finished else None,
        "build_time_s": {
            "last": round(times[0], 3) if times else None,
            "median": round(statistics.median(times), 3) if times else None,
            "max": round(max(times), 3) if times else None,
        },
    }


def _artifacts(history: History, runs: Sequence[RunView], repo: Repository | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for run in runs:
        for job in history.jobs(run.id):
            ref = job.published
            if not ref or ref in seen:
                continue
            seen.add(ref)
            name, _, version = ref.partition("@")
            entry: dict[str, Any] = {
                "name": name,
                "version": version,
                "job": job.id,
                "run_number": run.record.number,
            }
            record = repo.record(name, version) if repo is not None else None
            if record is None:
                entry["in_repository"] = False
                entry.update(commit=run.record.sha or None, build_number=run.record.number)
            else:
                build = repo.manifest(record).build if repo is not None else None
                entry["in_repository"] = True
                entry["commit"] = build.commit if build else None
                entry["build_number"] = build.build_number if build else None
                entry["branch"] = build.branch if build else None
                entry["pushed_at"] = record.pushed_at
            out.append(entry)
    return out


def _deployments(history: History, run_ids: set[str]) -> dict[str, Any]:
    by_env: dict[str, list[DeploymentView]] = {}
    for record in history.deployments(limit=1000):
        if record.run_id in run_ids:
            by_env.setdefault(record.environment, []).append(DeploymentView.from_record(record))
    manifests: dict[str, Any] = {}
    for env, items in sorted(by_env.items()):
        current = next((d for d in items if d.status == "success"), items[0])
        manifests[env] = {
            "current": current.what,
            "artifact": current.artifact or None,
            "version": current.version,
            "status": current.status,
            "run_number": current.run_number,
            "deployed_at": current.finished_at,
            "url": current.url or None,
            "approved_by": current.approved_by,
            "deployments": len(items),
        }
    return manifests


def build_output(
    history: History,
    *,
    pipeline: str | None,
    project: Path,
    repository: Repository | None = None,
    window: int = WINDOW,
) -> dict[str, Any]:
    """The ``build_output`` document of ``pipeline`` (default: the latest run's) over its last
    ``window`` runs; ``project`` is where the documentation is looked for."""
    runs = [RunView.summary(r) for r in history.list_runs(pipeline=pipeline, limit=window)]
    if pipeline is None and runs:
        name = runs[0].record.pipeline
        runs = [r for r in runs if r.record.pipeline == name]
        pipeline = name
    latest = runs[0].record if runs else None
    return {
        "build_output": {
            "pipeline": pipeline,
            "pipeline_config": latest.pipeline_file if latest else None,
            "latest_run": {
                "number": latest.number,
                "status": latest.status,
                "commit": latest.sha or None,
                "branch": latest.branch or None,
            }
            if latest
            else None,
            "artifacts": _artifacts(history, runs, repository),
            "deployments": _deployments(history, {r.id for r in runs}),
            "documentation": [d for d in DOCUMENTS if (project / d).is_file()],
            "metrics": _measurements(runs),
        }
    }
