"""Computing a job's key manifest from the files and commands on disk.

Owns the I/O half of job keys: hashing the job's input files (globs, or the git default) and the
pipeline's global inputs through one :class:`FileHasher` (so its stat cache serves every job of a
run), running ``key_commands`` and capturing their output, and salting secrets with the store's
salt. The pure half (canonical form, key, explain) is :mod:`buildyard.cache.keys`.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from buildyard.cache.hashing import FileHasher, InputIndex, digest_inputs
from buildyard.cache.keys import JSONValue, KeyManifest, build_key_manifest

#: A key command taking longer than this contributes its timeout, not its output.
KEY_COMMAND_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class JobKeySpec:
    """What the engine knows about a job instance that enters its key.

    ``definition``: normalized job definition (commands, shell, working directory, image/toolchain,
    matrix values), JSON data. ``inputs``: glob patterns relative to ``workdir`` (None: the
    git-tracked and untracked-not-ignored files under it). ``global_inputs``: patterns relative to
    ``project_root`` (pipeline ``cache_inputs``). ``upstream``: needed job -> its key.
    """

    definition: Mapping[str, JSONValue]
    workdir: Path
    project_root: Path
    inputs: Sequence[str] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)
    salted_env: Mapping[str, str] = field(default_factory=dict)  # pass_env values: salted, never in clear
    upstream: Mapping[str, str] = field(default_factory=dict)
    global_inputs: Sequence[str] = ()
    key_commands: Sequence[str] = ()
    #: Files (relative to ``workdir``) left out of the default inputs (the pipeline file).
    not_inputs: Sequence[str] = ()


def run_key_command(command: str, *, cwd: Path, env: Mapping[str, str] | None = None) -> bytes:
    """Output of one key command (``bash -c``), with its exit status appended so failures count too."""
    try:
        proc = subprocess.run(
            ["bash", "-c", command],
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=KEY_COMMAND_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return b"\0timeout"
    return proc.stdout + f"\0exit={proc.returncode}".encode()


def compute_key_manifest(
    spec: JobKeySpec,
    *,
    hasher: FileHasher,
    salt: bytes,
    index: InputIndex | None = None,
    command_env: Mapping[str, str] | None = None,
) -> KeyManifest:
    """Hash inputs, run key commands, and assemble the job's :class:`KeyManifest`.

    Pass one :class:`InputIndex` of the project for all jobs of a run (one git call in total).
    """
    inputs = digest_inputs(spec.workdir, spec.inputs, hasher=hasher, index=index)
    if spec.inputs is None:
        for path in spec.not_inputs:
            inputs.pop(path, None)
    global_digests = (
        digest_inputs(spec.project_root, list(spec.global_inputs), hasher=hasher)
        if spec.global_inputs
        else {}
    )
    outputs = {cmd: run_key_command(cmd, cwd=spec.workdir, env=command_env) for cmd in spec.key_commands}
    return build_key_manifest(
        definition=spec.definition,
        env=spec.env,
        secrets=spec.secrets,
        salt=salt,
        inputs=inputs,
        upstream=spec.upstream,
        global_inputs=global_digests,
        key_command_outputs=outputs,
        salted_env=spec.salted_env,
    )
