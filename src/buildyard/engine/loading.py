"""The first steps of a run: ``load`` (through the parsed-pipeline cache), ``trigger``, ``plan``.

Plain functions of the run's options; nothing here runs a job or writes history.
"""

from __future__ import annotations

import contextlib
import os
from hashlib import blake2b
from pathlib import Path
from typing import Any

import msgspec

from buildyard import __version__
from buildyard.engine.options import RunOptions, home_dir
from buildyard.engine.secrets import read_secrets_file, resolve
from buildyard.errors import Diagnostic, SpecError
from buildyard.fsutil import atomic_write_bytes
from buildyard.gitinfo import GitInfo
from buildyard.plan.build import Plan, TriggerContext, build
from buildyard.spec.load import find_file, load
from buildyard.spec.models import Pipeline
from buildyard.spec.yamlpos import MAX_FILE_BYTES
from buildyard.store.history import History


def load_step(options: RunOptions) -> Pipeline:
    """Find and validate the pipeline file (through the parsed-pipeline cache, see ``load_cached``)."""
    if options.pipeline is not None:
        return options.pipeline
    return load_cached(find_file(options.project_dir, options.file), home_dir(options) / "spec-cache")


def _spec_code_stamp() -> bytes:
    """What the validated form depends on besides the text: buildyard's version and spec sources."""
    import buildyard.spec  # noqa: PLC0415

    parts = [__version__]
    folder = Path(buildyard.spec.__file__).parent
    for source in sorted(folder.glob("*.py")):
        st = source.stat()
        parts.append(f"{source.name}:{st.st_mtime_ns}:{st.st_size}")
    return "\n".join(parts).encode()


#: Built once per process (the daemon builds it before forking): building it costs more than decoding.
_PIPELINE_DECODER = msgspec.msgpack.Decoder(Pipeline)


def _typed_gates(pipeline: Pipeline) -> Pipeline:
    """Gate definitions are typed ``Any`` in the spec: decode them back into their gate structs."""
    if not pipeline.gates and not any(job.gates for job in pipeline.jobs.values()):
        return pipeline
    from buildyard.gates.config import AnyGate  # noqa: PLC0415 - only for pipelines with gates

    def typed(raw: list[Any]) -> list[Any]:
        return msgspec.convert(raw, type=list[AnyGate]) if raw else raw

    jobs = {name: msgspec.structs.replace(job, gates=typed(job.gates)) for name, job in pipeline.jobs.items()}
    return msgspec.structs.replace(pipeline, gates=typed(pipeline.gates), jobs=jobs)


def load_cached(path: Path, cache_dir: Path) -> Pipeline:
    """``load(path)``, remembering the validated pipeline by the digest of its text.

    Parsing YAML with positions and validating field by field costs ~15 ms for 100 jobs; decoding
    the remembered struct ~1 ms. Only valid pipelines are remembered (errors are always re-reported).
    The key covers the text, the path and the spec code, so an upgrade never decodes a stale shape.
    """
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return load(path)  # refuses it, without reading it all
        data = path.read_bytes()
    except OSError:
        return load(path)  # reports the problem
    digest = blake2b(data + b"\0" + str(path).encode() + b"\0" + _spec_code_stamp(), digest_size=16)
    entry = cache_dir / f"{digest.hexdigest()}.msgpack"
    with contextlib.suppress(OSError, msgspec.DecodeError, msgspec.ValidationError):
        return _typed_gates(_PIPELINE_DECODER.decode(entry.read_bytes()))
    pipeline = load(path)
    with contextlib.suppress(OSError):
        cache_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(entry, msgspec.msgpack.encode(pipeline), durable=False)
    return pipeline


def trigger_step(
    options: RunOptions, pipeline: Pipeline, git: GitInfo
) -> tuple[TriggerContext, dict[str, str]]:
    """The trigger context and the secret values available to this run."""
    names = {s for job in pipeline.jobs.values() for s in job.secrets}
    file_values = read_secrets_file(options.secrets_file) if options.secrets_file else {}
    secrets = resolve(names, os.environ, file_values)
    branch = options.branch if options.branch is not None else git.branch
    tag = options.tag if options.tag is not None else git.tag
    ref = f"refs/tags/{tag}" if options.tag else (f"refs/heads/{branch}" if branch else git.ref)
    env = {k: v for k, v in os.environ.items() if k not in names}
    trigger = TriggerContext(
        event=options.event,
        branch=branch,
        tag=tag,
        sha=git.sha,
        ref=ref,
        variables=dict(options.variables),
        env=env,
        manual=options.manual,
    )
    return trigger, secrets


def plan_step(
    options: RunOptions, pipeline: Pipeline, trigger: TriggerContext, history: History | None
) -> Plan:
    """Build the plan, using past durations (when known) as critical-path weights."""
    durations = history.durations(pipeline.name) if history is not None else {}
    plan = build(pipeline, trigger, select=options.select, durations=durations, alone=options.alone)
    _check_versions(plan, pipeline, options.project_dir)
    return plan


def _check_versions(plan: Plan, pipeline: Pipeline, project: Path) -> None:
    """A publish whose version cannot be made is reported before any job runs, not after the build."""
    publishing = {inst.job: inst.publish for inst in plan.instances.values() if inst.publish is not None}
    if not publishing:
        return
    from buildyard.artifacts.api import check_version_setting  # noqa: PLC0415 - only with publish:
    from buildyard.artifacts.errors import ArtifactError  # noqa: PLC0415

    problems = []
    for job, spec in publishing.items():
        try:
            check_version_setting(spec.version, project=project)
        except ArtifactError as exc:
            line, col = pipeline.position(job)
            problems.append(Diagnostic(pipeline.file, line, col, f"jobs.{job}.publish.version", str(exc)))
    if problems:
        raise SpecError(problems)
