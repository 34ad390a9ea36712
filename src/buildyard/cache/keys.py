"""Pure job-key computation and the "why did this job run" explanation.

Owns: :class:`KeyManifest` (everything that enters a job's cache key, in canonical form), the key
itself (BLAKE3 over the manifest's canonical JSON), :func:`explain` (compare two manifests and
return enum reasons naming what changed) and :func:`secret_digest`.

Secrets: a secret's value never enters a manifest in clear. It enters as a BLAKE3 *keyed* hash
with a per-store salt (``salt`` below, kept in the cache directory, 0600). Rationale: excluding
secrets would serve stale outputs after a secret rotation that changes what a job produces (a
signing key, a registry token), while a plain hash of a low-entropy secret could be brute-forced
by anyone who can read a manifest (manifests travel to shared remote caches). The keyed hash is
irreversible without the salt; a team that shares a remote cache shares the salt
(``BUILDYARD_CACHE_SALT``) so their keys agree. Values passed from the machine (``pass_env``) are
treated the same way: they enter ``env`` as ``salted:<keyed digest>``, never in clear. No I/O in
this module.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from blake3 import blake3

#: Bumped when the manifest format or key derivation changes: every old key then misses.
KEY_FORMAT_VERSION = 1

JSONValue = Any  # a JSON-serializable value (str, int, float, bool, None, list, dict of those)


class CacheMissReason(StrEnum):
    """Why a job did not hit the cache (one or more per miss)."""

    NO_ENTRY = "no_entry"
    DEFINITION_CHANGED = "definition_changed"
    INPUT_CHANGED = "input_changed"
    INPUT_ADDED = "input_added"
    INPUT_REMOVED = "input_removed"
    ENV_CHANGED = "env_changed"
    UPSTREAM_CHANGED = "upstream_changed"
    GLOBAL_INPUT_CHANGED = "global_input_changed"
    KEY_COMMAND_CHANGED = "key_command_changed"


@dataclass(frozen=True, slots=True)
class MissDetail:
    """One reason for a miss and the names (paths, variables, jobs, fields) it concerns."""

    reason: CacheMissReason
    names: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.reason}: {', '.join(self.names)}" if self.names else str(self.reason)


def _frozen(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return dict(sorted(mapping.items()))


def canonical_json(value: JSONValue) -> bytes:
    """Deterministic JSON bytes: sorted keys, no whitespace, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True, slots=True)
class KeyManifest:
    """Every input of a job's cache key, canonicalized.

    ``definition``: the normalized job definition (commands, shell, working directory, image or
    toolchain, matrix values) as JSON data, without env. ``env``: non-secret env values.
    ``secrets``: secret name -> :func:`secret_digest`. ``inputs``/``global_inputs``: relative path ->
    content digest. ``upstream``: needed job name -> its key. ``key_commands``: command -> digest
    of its output.
    """

    definition: Mapping[str, JSONValue] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)
    inputs: Mapping[str, str] = field(default_factory=dict)
    upstream: Mapping[str, str] = field(default_factory=dict)
    global_inputs: Mapping[str, str] = field(default_factory=dict)
    key_commands: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, JSONValue]:
        """Plain JSON data (the canonical form hashed by :meth:`key`)."""
        return {
            "v": KEY_FORMAT_VERSION,
            "definition": json.loads(canonical_json(dict(self.definition))),
            "env": _frozen(self.env),
            "secrets": _frozen(self.secrets),
            "inputs": _frozen(self.inputs),
            "upstream": _frozen(self.upstream),
            "global_inputs": _frozen(self.global_inputs),
            "key_commands": _frozen(self.key_commands),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, JSONValue]) -> KeyManifest:
        """Inverse of :meth:`to_json`; raises ``ValueError`` on a malformed or other-version manifest."""
        if data.get("v") != KEY_FORMAT_VERSION:
            raise ValueError(f"key manifest version {data.get('v')!r} is not {KEY_FORMAT_VERSION}")
        parts: dict[str, Mapping[str, Any]] = {}
        for name in ("definition", "env", "secrets", "inputs", "upstream", "global_inputs", "key_commands"):
            value = data.get(name, {})
            if not isinstance(value, dict):
                raise TypeError(f"key manifest field {name!r} is not an object")
            parts[name] = value
        return cls(**parts)

    def key(self) -> str:
        """The job key: BLAKE3 hex over the canonical JSON of this manifest."""
        return blake3(canonical_json(self.to_json())).hexdigest()


def secret_digest(value: str, salt: bytes) -> str:
    """Irreversible stand-in for a secret value: BLAKE3 keyed by a 32-byte per-store ``salt``."""
    if len(salt) != 32:
        raise ValueError("the secret salt must be 32 bytes")
    return blake3(value.encode(), key=salt).hexdigest()


def digest_output(output: bytes) -> str:
    """Digest of a key command's output (what enters ``key_commands``)."""
    return blake3(output).hexdigest()


def build_key_manifest(
    *,
    definition: Mapping[str, JSONValue],
    env: Mapping[str, str] | None = None,
    secrets: Mapping[str, str] | None = None,
    salt: bytes | None = None,
    inputs: Mapping[str, str] | None = None,
    upstream: Mapping[str, str] | None = None,
    global_inputs: Mapping[str, str] | None = None,
    key_command_outputs: Mapping[str, bytes] | None = None,
    salted_env: Mapping[str, str] | None = None,
) -> KeyManifest:
    """Assemble a manifest; ``secrets`` and ``salted_env`` are given in clear and leave only as salted
    digests (``salted_env`` values under ``env`` as ``salted:<digest>``, so ``explain`` names them)."""
    if (secrets or salted_env) and salt is None:
        raise ValueError("a salt is required to put secrets into a key")
    salted = (
        {name: f"salted:{secret_digest(value, salt)}" for name, value in (salted_env or {}).items()}
        if salt
        else {}
    )
    return KeyManifest(
        definition=dict(definition),
        env={**dict(env or {}), **salted},
        secrets={name: secret_digest(value, salt) for name, value in (secrets or {}).items()} if salt else {},
        inputs=dict(inputs or {}),
        upstream=dict(upstream or {}),
        global_inputs=dict(global_inputs or {}),
        key_commands={cmd: digest_output(out) for cmd, out in (key_command_outputs or {}).items()},
    )


def _changed_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[list[str], list[str], list[str]]:
    added = sorted(set(new) - set(old))
    removed = sorted(set(old) - set(new))
    changed = sorted(k for k in set(old) & set(new) if canonical_json(old[k]) != canonical_json(new[k]))
    return added, removed, changed


def explain(previous: KeyManifest | None, current: KeyManifest) -> list[MissDetail]:
    """Why ``current`` misses against the job's ``previous`` cached manifest.

    Returns an empty list when the manifests are equal (same key), ``[NO_ENTRY]`` when there is no
    previous manifest, otherwise one :class:`MissDetail` per kind of change, names sorted.
    """
    if previous is None:
        return [MissDetail(CacheMissReason.NO_ENTRY)]
    details: list[MissDetail] = []
    added, removed, changed = _changed_keys(previous.definition, current.definition)
    if added or removed or changed:
        details.append(
            MissDetail(CacheMissReason.DEFINITION_CHANGED, tuple(sorted(added + removed + changed)))
        )
    env_names: list[str] = []
    for old, new, suffix in (
        (previous.env, current.env, ""),
        (previous.secrets, current.secrets, " (secret)"),
    ):
        a, r, c = _changed_keys(old, new)
        env_names.extend(f"{name}{suffix}" for name in sorted(a + r + c))
    if env_names:
        details.append(MissDetail(CacheMissReason.ENV_CHANGED, tuple(env_names)))
    added, removed, changed = _changed_keys(previous.inputs, current.inputs)
    for reason, names in (
        (CacheMissReason.INPUT_CHANGED, changed),
        (CacheMissReason.INPUT_ADDED, added),
        (CacheMissReason.INPUT_REMOVED, removed),
    ):
        if names:
            details.append(MissDetail(reason, tuple(names)))
    for reason, old_map, new_map in (
        (CacheMissReason.UPSTREAM_CHANGED, previous.upstream, current.upstream),
        (CacheMissReason.GLOBAL_INPUT_CHANGED, previous.global_inputs, current.global_inputs),
        (CacheMissReason.KEY_COMMAND_CHANGED, previous.key_commands, current.key_commands),
    ):
        a, r, c = _changed_keys(old_map, new_map)
        if a or r or c:
            details.append(MissDetail(reason, tuple(sorted(a + r + c))))
    return details
