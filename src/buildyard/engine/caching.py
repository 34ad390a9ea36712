"""The job cache around any executor: look up → restore, or run → store; dependency caches around it.

``CachingExecutor`` wraps an ``Executor`` (local today, remote later) and talks to the cache service
only through its interfaces (``JobCache``, ``DependencyCache``, ``FileHasher``). Blocking work
(hashing inputs, copying blobs) runs in worker threads so other jobs keep running meanwhile. A cache
that fails (I/O error, corrupt entry) never fails a job: it is a miss, reported once as a warning.

Outputs are the job's declared ``artifacts: paths`` made project-relative (``JobRequest.output_globs``);
a restore may write nothing else. An entry refused by the restore (a path outside them, ``.git``,
a setuid mode, a symlink trick…) is evicted, reported with one warning per job, and the job runs.
After a successful job, a declared output matching nothing and an output that changed while it was
stored (another run writing the same tree) are one warning each; the latter stores no entry. A job
with outputs holds the cache's output lock from lookup to restore or store: the same job of a
concurrent run in the same tree waits (polling with ``asyncio.sleep``) and then usually hits.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from buildyard.cache import (
    ActionEntry,
    CachePolicy,
    DependencyCache,
    DepRestore,
    FileHasher,
    InputIndex,
    JobCache,
    JobKeySpec,
    KeyManifest,
    MissDetail,
    NotCachedError,
    OutputChangedError,
    RestoreResult,
    TieredActionCache,
    UnsafePathError,
    compute_key_manifest,
    dependency_cache_key,
)
from buildyard.engine.request import (
    CacheRequest,
    CacheStatus,
    DependencyCacheRequest,
    Executor,
    JobOutcome,
    JobRequest,
    OutputSink,
)
from buildyard.fsutil import write_new_file
from buildyard.model import JobStatus

#: A cache hit whose outputs total at most this many bytes is restored on the loop thread.
INLINE_RESTORE_BYTES = 1 << 20
#: How often a job waiting for another run's job with the same outputs checks the lock.
OUTPUT_LOCK_POLL_S = 0.02


def _log_or_empty(path: str) -> Path | bytes:
    """A job's log file, or no bytes when the job printed nothing (its log is created lazily)."""
    return Path(path) if path and os.path.exists(path) else b""  # noqa: PTH110


def _keeps_own_log(request: JobRequest) -> bool:
    """Whether a cache hit writes its restored log into the run's log directory.

    Not by default: the log is the entry's content-addressed log blob, and ``buildyard logs`` reads
    it from there (``buildyard.cache.entry_log``) — writing 100 copies was most of a fully cached
    run's file I/O.
    A job whose wrappers append to its log (publish, gates) gets its own file first.
    """
    return request.own_log


def _outputs_final_at(outcome: JobOutcome) -> float:
    """When the job's outputs were final: its last step's end, or (isolated or remote job: an
    ``outputs_root`` is given) their collection."""
    if outcome.outputs_root or not outcome.steps:
        return outcome.finished_at
    return outcome.steps[-1].finished_at


def canonical_definition(data: object) -> str:
    """Deterministic JSON of a job definition (what enters the key as 'definition')."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


class CachingExecutor:
    """An ``Executor`` that skips jobs whose key has a stored result, restoring their outputs."""

    def __init__(
        self,
        inner: Executor,
        cache: JobCache,
        *,
        hasher: FileHasher,
        index: InputIndex | None,
        salt: bytes,
        dependency_cache: DependencyCache | None = None,
        read: bool = True,
        write: bool = True,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.inner = inner
        self.cache = cache
        self.hasher = hasher
        self.index = index
        self.salt = salt
        self.deps = dependency_cache
        self.read = read
        self.write = write
        self.warn = warn or (lambda _m: None)
        self._warned = False

    def _problem(self, what: str, exc: Exception) -> None:
        if not self._warned:
            self._warned = True
            self.warn(f"cache {what} failed ({exc}); continuing without it for this job")

    def _manifest(self, request: JobRequest, spec: CacheRequest, *, cached_only: bool = False) -> KeyManifest:
        env = dict(request.env)
        declared = dict(spec.env)
        salted = {name: declared.pop(name) for name in spec.salted_env if name in declared}
        key_spec = JobKeySpec(
            definition=json.loads(spec.definition),
            workdir=Path(request.cwd),
            project_root=Path(spec.project_root),
            inputs=list(spec.inputs) if spec.inputs is not None else None,
            env=declared,
            salted_env=salted,
            secrets={name: env[name] for name in spec.secrets if name in env},
            upstream=dict(spec.upstream),
            global_inputs=list(spec.global_inputs),
            key_commands=list(spec.key_commands),
            not_inputs=spec.not_inputs,
        )
        index = self.index if spec.inputs is None else None
        hasher = FileHasher(self.hasher.stat_cache, cached_only=True) if cached_only else self.hasher
        return compute_key_manifest(key_spec, hasher=hasher, salt=self.salt, index=index, command_env=env)

    async def execute(self, request: JobRequest, sink: OutputSink | None = None) -> JobOutcome:
        """Restore a cached result, or run the job and store its result.

        A cached job with declared outputs holds the cache's output lock meanwhile, so the same job
        of a concurrent run in the same tree waits instead of writing the files being captured.
        """
        spec = request.cache
        if spec is None or (not spec.job_cache and not spec.dependency_caches):
            return await self.inner.execute(request, sink)
        if not spec.job_cache or not request.output_globs:
            return await self._execute(request, spec, sink)
        lock = self.cache.output_lock(Path(spec.project_root), request.output_globs, job=request.job_id)
        try:
            while not lock.try_acquire():
                await asyncio.sleep(OUTPUT_LOCK_POLL_S)
        except OSError as exc:
            self._problem("output lock", exc)
        try:
            return await self._execute(request, spec, sink)
        finally:
            lock.release()

    async def _execute(self, request: JobRequest, spec: CacheRequest, sink: OutputSink | None) -> JobOutcome:
        started_at, start = time.time(), time.monotonic()
        manifest: KeyManifest | None = None
        key = ""
        reasons: tuple[MissDetail, ...] = ()
        if spec.job_cache:
            try:
                looked = self._quick_lookup(request, spec)
                if looked is None:
                    looked = await asyncio.to_thread(self._lookup, request, spec)
                found, hit = looked
                manifest, key = found, found.key()
                if hit is not None:
                    saved, log = hit
                    if spec.dependency_caches:  # a hit restores all the job would have produced
                        await asyncio.to_thread(self._restore_dependencies, request, spec)
                    if sink is not None and log:
                        sink(request.job_id, log)
                    return JobOutcome(
                        job_id=request.job_id,
                        attempt=request.attempt,
                        status=JobStatus.CACHED,
                        exit_code=0,
                        started_at=started_at,
                        finished_at=time.time(),
                        duration_s=time.monotonic() - start,
                        log_path=request.log_path,
                        cache_key=key,
                        cache_status=CacheStatus.HIT,
                        saved_s=saved,
                    )
                reasons = tuple(await asyncio.to_thread(self.cache.explain, request.job_id, found))
                self.cache.record_miss(key)
            except (OSError, ValueError, UnsafePathError) as exc:
                self._problem("lookup", exc)
                manifest = None
        restored = await asyncio.to_thread(self._restore_dependencies, request, spec)
        outcome = await self.inner.execute(request, sink)
        if outcome.status == JobStatus.SUCCESS:
            await asyncio.to_thread(self._save_dependencies, request, spec, restored)
            if manifest is not None and self.write:
                try:
                    await asyncio.to_thread(
                        self.cache.store_outputs,
                        key,
                        workspace=Path(outcome.outputs_root or spec.project_root),
                        outputs=list(request.output_globs),
                        log=_log_or_empty(outcome.log_path),
                        exit_code=0,
                        duration_s=outcome.duration_s,
                        job=request.job_id,
                        key_manifest=manifest,
                        finished_at=_outputs_final_at(outcome),
                    )
                except OutputChangedError as exc:
                    self.warn(f"job {request.job_id}: {exc}")
                except (OSError, ValueError, UnsafePathError) as exc:
                    self._problem("store", exc)
        status = CacheStatus.MISS if manifest is not None else CacheStatus.OFF
        return replace(outcome, cache_key=key, cache_status=status, miss_reasons=reasons)

    def _quick_lookup(
        self, request: JobRequest, spec: CacheRequest
    ) -> tuple[KeyManifest, tuple[float, bytes] | None] | None:
        """``_lookup`` on the loop when it cannot block it for long, else None (use a worker thread).

        Cheap means: every input digest is in the stat cache (no file to read), no key command to
        run, the answer is in the local store (no network), and a hit's outputs are small. On a
        fully cached run this is every job, and skipping the thread hop halves the run's time.
        """
        if spec.key_commands or not self.read:
            return None
        local, remote = (
            (self.cache.local, self.cache.remote)
            if isinstance(self.cache, TieredActionCache)
            else (None, None)
        )
        if local is None:
            return None
        try:
            manifest = self._manifest(request, spec, cached_only=True)
        except NotCachedError:
            return None
        key = manifest.key()
        entry = local.lookup(key)
        if entry is None:
            return None if remote is not None else (manifest, None)
        if sum(o.size or 0 for o in entry.outputs) > INLINE_RESTORE_BYTES:
            return None
        hit = self._checked_restore(local, entry, request, spec)
        if hit is not None and _keeps_own_log(request):
            write_new_file(Path(request.log_path), hit[1])
        return manifest, hit

    def _lookup(
        self, request: JobRequest, spec: CacheRequest
    ) -> tuple[KeyManifest, tuple[float, bytes] | None]:
        """The job's key manifest and, on a hit, its restored (time saved, log) — log written too."""
        manifest = self._manifest(request, spec)
        hit = self._restore(manifest.key(), request, spec) if self.read else None
        if hit is not None and _keeps_own_log(request):
            write_new_file(Path(request.log_path), hit[1])
        return manifest, hit

    def _restore(self, key: str, request: JobRequest, spec: CacheRequest) -> tuple[float, bytes] | None:
        entry = self.cache.lookup(key)
        if entry is None:
            return None
        return self._checked_restore(self.cache, entry, request, spec)

    def _checked_restore(
        self, cache: JobCache, entry: ActionEntry, request: JobRequest, spec: CacheRequest
    ) -> tuple[float, bytes] | None:
        """Restore ``entry`` within the job's declared outputs; a refused entry is a reported miss."""
        try:
            result = cache.restore(entry, Path(spec.project_root), outputs=request.output_globs)
        except UnsafePathError as exc:
            self.warn(
                f"job {request.job_id}: cache entry {entry.key[:12]} refused and evicted ({exc}); running it"
            )
            return None
        return self._restored(result, entry.duration_s)

    @staticmethod
    def _restored(result: RestoreResult | None, duration_s: float) -> tuple[float, bytes] | None:
        if result is None:
            return None
        return result.saved_s or duration_s, result.log or b""

    def _dep_key(self, request: JobRequest, dep: DependencyCacheRequest) -> str:
        if dep.key_files:
            digests = self.hasher.digest_paths(Path(request.cwd), list(dep.key_files))
            return dependency_cache_key(files=digests, prefix=dep.prefix)
        return dep.key

    def _restore_dependencies(self, request: JobRequest, spec: CacheRequest) -> list[DepRestore | None]:
        out: list[DepRestore | None] = []
        if self.deps is None:
            return out
        for dep in spec.dependency_caches:
            try:
                key = self._dep_key(request, dep)
                out.append(
                    self.deps.restore(
                        key=key,
                        restore_keys=list(dep.restore_keys),
                        workspace=Path(request.cwd),
                        policy=CachePolicy(dep.policy),
                        paths=list(dep.paths),
                    )
                )
            except (OSError, ValueError, UnsafePathError) as exc:
                self._problem("dependency restore", exc)
                out.append(None)
        return out

    def _save_dependencies(
        self, request: JobRequest, spec: CacheRequest, restored: list[DepRestore | None]
    ) -> None:
        if self.deps is None or not self.write:
            return
        for dep, previous in zip(spec.dependency_caches, restored, strict=False):
            try:
                key = self._dep_key(request, dep)
                self.deps.save(
                    key=key,
                    paths=list(dep.paths),
                    workspace=Path(request.cwd),
                    policy=CachePolicy(dep.policy),
                    restored=previous,
                )
            except (OSError, ValueError, UnsafePathError) as exc:
                self._problem("dependency save", exc)
