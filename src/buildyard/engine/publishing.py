"""``publish:`` around any executor: push a successful job's files to the artifact repository.

Outside the gates and the cache (``engine.stack`` holds the order), so a job publishes only once it
succeeded (or was restored from the cache) and its own gates passed. A push that fails (no signing
key, bad version file, disk full) fails the job with the one-line reason, so nothing downstream
deploys an artifact that does not exist.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from buildyard.engine.request import Executor, JobOutcome, JobRequest, OutputSink, PublishRequest, log_note
from buildyard.errors import UserError
from buildyard.model import JobStatus


def publish_files(
    project: Path, run_id: str, job_id: str, spec: PublishRequest, *, cwd: Path | None = None
) -> tuple[str, bool]:
    """Push ``spec``'s files (globs relative to the job's directory ``cwd``, default the project, and
    inside the project); return ``NAME@VERSION`` and whether that version is new (a rebuild of the
    same commit with the same files reuses the version it published before)."""
    from buildyard.artifacts import ArtifactType, RunContext, publish  # noqa: PLC0415 - only with publish:

    root = cwd or project
    inside = project.resolve()
    paths: list[Path] = []
    for pattern in spec.paths:
        matches = sorted(root.glob(pattern))
        if not matches:
            raise UserError(f"publish: '{pattern}' matches no file in {root} (did the job write it?)")
        outside = [m for m in matches if not m.resolve().is_relative_to(inside)]
        if outside:
            raise UserError(f"publish: '{pattern}' matches {outside[0]}, outside the project")
        paths += matches
    version = spec.version if isinstance(spec.version, str) else dict(spec.version)
    context = RunContext(
        run_id=run_id,
        job_id=job_id,
        build_number=spec.build_number,
        event=spec.event,
        pipeline_file=Path(spec.pipeline_file) if spec.pipeline_file else None,
    )
    result = publish(
        project,
        name=spec.name,
        paths=paths,
        version=version,
        artifact_type=ArtifactType(spec.type),
        context=context,
        key=spec.key,
        land=True,
    )
    return f"{spec.name}@{result.manifest.version}", result.created


class PublishingExecutor:
    """Publishes the artifact of a job that declares ``publish:`` once it succeeded.

    The project's signing key is made on first use, except in CI (``CI`` set in buildyard's own
    environment), where a key made per run would sign with a key nobody trusts: there it is refused
    with the commands to provide one.
    """

    def __init__(
        self,
        inner: Executor,
        *,
        project: Path,
        create_key: bool | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.inner = inner
        self.project = project
        self.warn = warn
        self.create_key = (
            (os.environ.get("CI", "") in ("", "0", "false")) if create_key is None else create_key
        )

    def _key(self, name: str) -> str | None:
        from buildyard.artifacts.api import first_use_key  # noqa: PLC0415 - only with publish:

        return first_use_key(self.project, name, create=self.create_key)

    async def execute(self, request: JobRequest, sink: OutputSink | None = None) -> JobOutcome:
        """Run the job, then push its artifact."""
        outcome = await self.inner.execute(request, sink)
        spec = request.publish
        if spec is None or outcome.status not in (JobStatus.SUCCESS, JobStatus.CACHED):
            return outcome
        try:
            made = await asyncio.to_thread(self._key, spec.key)
            if made is not None:  # in the job's log and, once, in the run's output
                log_note(request, made, sink)
                if self.warn is not None:
                    self.warn(made)
            ref, created = await asyncio.to_thread(
                publish_files, self.project, request.run_id, request.job_id, spec, cwd=Path(request.cwd)
            )
        except UserError as exc:
            note = f"publish failed: {exc}"
            log_note(request, note, sink)
            return replace(outcome, status=JobStatus.FAILED, exit_code=None, message=note)
        log_note(
            request,
            f"published {ref}" if created else f"already published: {ref} (same commit and files)",
            sink,
        )
        return replace(outcome, published=ref)
