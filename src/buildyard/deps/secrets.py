"""Committed-credential scanning with detect-secrets, and its baseline file of accepted secrets.

The baseline is detect-secrets' own ``.secrets.baseline`` format, so teams that already use it keep
their file; a finding whose (file, hashed secret) is in the baseline is reported as accepted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from buildyard import __version__
from buildyard.deps.errors import DepsError
from buildyard.deps.inventory import SKIP_DIRS, _ignored
from buildyard.fsutil import atomic_write_text

_Specs = list[tuple[Path, Any]]


@dataclass(frozen=True, slots=True)
class SecretFinding:
    """One potential secret: where it is, what detector found it, and its hash (never the secret)."""

    file: str
    line: int
    type: str
    hashed_secret: str
    accepted: bool = False


@dataclass(slots=True)
class SecretsResult:
    """Findings of a secrets scan and how many files were read."""

    findings: list[SecretFinding] = field(default_factory=list)
    files_scanned: int = 0

    @property
    def new(self) -> list[SecretFinding]:
        """Findings not accepted by the baseline."""
        return [f for f in self.findings if not f.accepted]


def _files(root: Path) -> list[Path]:
    import pathspec  # noqa: PLC0415

    out: list[Path] = []

    def walk(directory: Path, specs: _Specs) -> None:
        ignore = directory / ".gitignore"
        if ignore.is_file():
            specs = [*specs, (directory, pathspec.GitIgnoreSpec.from_lines(ignore.read_text().splitlines()))]
        for entry in sorted(directory.iterdir()):
            if entry.name in SKIP_DIRS or _ignored(entry, entry.is_dir(), specs):
                continue
            if entry.is_dir() and not entry.is_symlink():
                walk(entry, specs)
            elif entry.is_file():
                out.append(entry)

    if root.is_file():
        return [root]
    walk(root, [])
    return out


def scan_secrets(root: Path, baseline: Path | None = None) -> SecretsResult:
    """Scan every non-ignored file under ``root`` with detect-secrets' default plugins and filters."""
    from detect_secrets.core.secrets_collection import SecretsCollection  # noqa: PLC0415 - loads plugins
    from detect_secrets.settings import default_settings  # noqa: PLC0415

    accepted = _load_baseline(baseline) if baseline else set()
    baseline = baseline or root / ".secrets.baseline"
    result = SecretsResult()
    files = _files(root)
    base = root if root.is_dir() else root.parent
    collection = SecretsCollection(root=str(base))
    with default_settings():
        for path in files:
            if baseline is not None and path.resolve() == baseline.resolve():
                continue  # the baseline holds hashes that look like secrets
            collection.scan_file(str(path.relative_to(base)))
            result.files_scanned += 1
    for filename, secret in collection:
        rel = Path(filename).as_posix()
        result.findings.append(
            SecretFinding(
                rel,
                secret.line_number or 0,
                secret.type,
                secret.secret_hash,
                (rel, secret.secret_hash) in accepted,
            )
        )
    result.findings.sort(key=lambda f: (f.file, f.line, f.type))
    return result


def _load_baseline(path: Path) -> set[tuple[str, str]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DepsError(f"{path}: cannot read the baseline: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise DepsError(f"{path}:{exc.lineno}: the baseline is not valid JSON ({exc.msg})") from exc
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, dict):
        raise DepsError(f"{path}: not a detect-secrets baseline (no 'results' mapping)")
    return {
        (Path(file).as_posix(), item["hashed_secret"])
        for file, items in results.items()
        for item in items
        if isinstance(item, dict) and "hashed_secret" in item
    }


def write_baseline(result: SecretsResult, path: Path) -> None:
    """Write a detect-secrets compatible baseline accepting every current finding."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class  # noqa: PLC0415

    mapping: dict[str, Any] = get_mapping_from_secret_type_to_class()
    plugins = sorted({mapping[f.type].__name__ for f in result.findings if f.type in mapping})
    results: dict[str, list[dict[str, Any]]] = {}
    for finding in result.findings:
        results.setdefault(finding.file, []).append(
            {
                "type": finding.type,
                "filename": finding.file,
                "hashed_secret": finding.hashed_secret,
                "is_verified": False,
                "line_number": finding.line,
            }
        )
    doc = {
        "version": "1.5.0",
        "plugins_used": [{"name": p} for p in plugins],
        "filters_used": [],
        "results": results,
        "generated_at": "",
    }
    atomic_write_text(path, json.dumps(doc, indent=2) + "\n")


def secrets_sarif(result: SecretsResult) -> dict[str, Any]:
    """A SARIF 2.1.0 log of the findings (accepted ones carry a suppression)."""
    rules = sorted({f.type for f in result.findings})
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "buildyard-secrets",
                        "version": __version__,
                        "rules": [{"id": r, "shortDescription": {"text": r}} for r in rules],
                    }
                },
                "results": [
                    {
                        "ruleId": f.type,
                        "ruleIndex": rules.index(f.type),
                        "level": "error",
                        "message": {"text": f"possible {f.type} committed"},
                        "locations": [
                            {
                                "physicalLocation": {
                                    "artifactLocation": {"uri": f.file},
                                    "region": {"startLine": max(f.line, 1)},
                                }
                            }
                        ],
                        "partialFingerprints": {"hashedSecret": f.hashed_secret},
                        **(
                            {"suppressions": [{"kind": "external", "status": "accepted"}]}
                            if f.accepted
                            else {}
                        ),
                    }
                    for f in result.findings
                ],
            }
        ],
    }
