"""Published artifact versions for the dashboard: channels, signature check, SBOM and provenance.

Reads the project's artifact repository (``$BUILDYARD_HOME/artifacts``) without writing to it: a
project that never published has no repository and shows none. A version's signature verdict is
cached by its envelope digest (a version is immutable; the trusted keys are part of the key).
"""

from __future__ import annotations

import base64
import json
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from buildyard.errors import BuildyardError, NotFoundError

#: Largest SBOM or provenance document the dashboard shows.
MAX_DOCUMENT = 8 * 1024 * 1024
_verdicts: OrderedDict[tuple[str, ...], str] = OrderedDict()
_lock = threading.Lock()


def _repository(root: Path) -> Any:
    from buildyard.artifacts.api import open_repository  # noqa: PLC0415
    from buildyard.artifacts.repo import default_root  # noqa: PLC0415

    if not default_root(root).is_dir():
        return None
    return open_repository(root)


def _verdict(repo: Any, record: Any) -> str:
    """The verdict: ``verified``, or why not (one line)."""
    trusted = repo.trusted()
    key = (str(repo.root), record.name, record.envelope_blob, *sorted(k.keyid for k in trusted))
    with _lock:
        if key in _verdicts:
            return _verdicts[key]
    try:
        repo.verify_signature(record)
        verdict = "verified"
    except BuildyardError as exc:
        verdict = f"not verified: {exc}"
    with _lock:
        _verdicts[key] = verdict
        while len(_verdicts) > 4096:
            _verdicts.popitem(last=False)
    return verdict


def versions(root: Path, *, limit: int = 50) -> dict[str, Any]:
    """The newest ``limit`` versions with their channels and signature verdict."""
    repo = _repository(root)
    if repo is None:
        return {"versions": [], "channels": []}
    records = sorted(repo.records(), key=lambda r: r.pushed_at, reverse=True)[:limit]
    state = repo.channel_state()
    out = []
    for r in records:
        verdict = _verdict(repo, r)
        try:
            build = repo.manifest(r).build
            run_id, commit = build.run_id, build.commit
        except BuildyardError:
            run_id, commit = None, None
        out.append(
            {
                "ref": r.name,
                "artifact": r.artifact,
                "version": r.version,
                "channels": state.channels_of(r.artifact, r.version),
                "signature": "verified" if verdict == "verified" else "not verified",
                "signature_detail": verdict,
                "pushed_at": r.pushed_at,
                "pushed_by": r.pushed_by,
                "run_id": run_id,
                "commit": commit,
                "has_sbom": r.sbom_blob is not None,
            }
        )
    return {"versions": out, "channels": list(repo.config.names)}


def artifacts_of_run(root: Path, run_id: str) -> list[dict[str, Any]]:
    """Versions a run published (from the newest 200 versions)."""
    try:
        found = versions(root, limit=200)["versions"]
    except BuildyardError:
        return []
    return [v for v in found if v["run_id"] == run_id]


def document(root: Path, ref: str, kind: str) -> dict[str, Any]:
    """The CycloneDX SBOM or the in-toto provenance statement of ``ref`` (``name@version``)."""
    if kind not in ("sbom", "provenance"):
        raise NotFoundError(f"no document '{kind}' (use sbom or provenance)")
    repo = _repository(root)
    if repo is None:
        raise NotFoundError("this project has published no artifacts")
    record = repo.resolve(ref)
    if kind == "sbom":
        if record.sbom_blob is None:
            raise NotFoundError(f"{record.name} has no SBOM")
        data = repo.blob(record.sbom_blob, what=record.name)
    else:
        envelope = json.loads(repo.blob(record.envelope_blob, what=record.name))
        data = base64.b64decode(envelope.get("payload", ""))
    if len(data) > MAX_DOCUMENT:
        raise NotFoundError(f"the {kind} of {record.name} is larger than {MAX_DOCUMENT} bytes")
    return {"ref": record.name, "kind": kind, "document": json.loads(data)}
