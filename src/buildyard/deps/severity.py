"""Severity of OSV records: CVSS v2/v3/v4 base scores computed from vectors, or database labels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from buildyard.model import Severity


@dataclass(frozen=True, slots=True)
class Rating:
    """A severity with where it came from: a computed CVSS base score, or a database's own label."""

    severity: Severity
    score: float | None = None
    vector: str | None = None
    method: str = ""


UNKNOWN = Rating(Severity.UNKNOWN)

_LABELS = {
    "LOW": Severity.LOW,
    "MODERATE": Severity.MEDIUM,
    "MEDIUM": Severity.MEDIUM,
    "HIGH": Severity.HIGH,
    "CRITICAL": Severity.CRITICAL,
}


def cvss_base_score(kind: str, vector: str) -> float | None:
    """Base score of a CVSS vector (``kind`` is the OSV type: CVSS_V2, CVSS_V3, CVSS_V4); None if invalid."""
    from cvss import CVSS2, CVSS3, CVSS4  # noqa: PLC0415 - only needed when records carry vectors
    from cvss.exceptions import CVSSError  # noqa: PLC0415

    try:
        if kind == "CVSS_V3":
            return float(CVSS3(vector).base_score)
        if kind == "CVSS_V4":
            return float(CVSS4(vector).base_score)
        if kind == "CVSS_V2":
            return float(CVSS2(vector).base_score)
    except (CVSSError, ValueError, KeyError):
        return None
    return None


def rate(severity: list[Any] | None, database_specific: Any = None) -> Rating:
    """Best rating of an OSV ``severity`` list: CVSS v3, then v4, then v2, then the database label."""
    by_type = {s.get("type"): s.get("score") for s in severity or [] if isinstance(s, dict)}
    for kind in ("CVSS_V3", "CVSS_V4", "CVSS_V2"):
        vector = by_type.get(kind)
        if isinstance(vector, str):
            score = cvss_base_score(kind, vector)
            if score is not None:
                band = Severity.from_score(score)
                if kind == "CVSS_V2":
                    band = Severity.LOW if score < 4.0 else Severity.MEDIUM if score < 7.0 else Severity.HIGH
                return Rating(band, score, vector, kind)
    label = database_specific.get("severity") if isinstance(database_specific, dict) else None
    if isinstance(label, str) and label.upper() in _LABELS:
        return Rating(_LABELS[label.upper()], method="database label")
    return UNKNOWN
