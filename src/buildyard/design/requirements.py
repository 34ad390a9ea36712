"""The ``build_requirements`` document architects hand over, validated into :class:`Requirements`.

```yaml
build_requirements:
  name: shop                      # optional (default: the project type)
  project_type: web_application   # library | application | web_application | service | api | cli
  tech_stack: [python, postgresql]            # or {language: python, framework: django}
  performance_targets: {build_time: "<10 minutes"}
  quality_gates:
    test_coverage: ">90%"
    branch_coverage: ">80%"
    security_scan: "no critical vulnerabilities"
    max_test_failures: 0
  environments: [dev, staging, production]
```

Every problem is reported at once, located in the file (``requirements.yml:4:16:
build_requirements.quality_gates.test_coverage: …``), like ``buildyard.yml``'s. Pure after reading.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

from buildyard.errors import Diagnostic, SpecError
from buildyard.spec.yamlpos import Path, SourceMap, load_yaml

ROOT = "build_requirements"
PROJECT_TYPES = ("library", "application", "web_application", "service", "api", "cli")
#: Languages a pipeline is designed for, and the names architects use for them.
LANGUAGES = {
    "python": "python",
    "node": "node",
    "nodejs": "node",
    "javascript": "node",
    "typescript": "node",
    "go": "go",
    "golang": "go",
    "rust": "rust",
}
#: ``security_scan`` phrases -> the worst severity allowed to ship.
SECURITY = {
    "no critical vulnerabilities": "high",
    "no high vulnerabilities": "medium",
    "no high or critical vulnerabilities": "medium",
    "no medium vulnerabilities": "low",
    "no vulnerabilities": "none",
    "none": "none",
}
KEYS = ("name", "project_type", "tech_stack", "performance_targets", "quality_gates", "environments")
TARGETS = ("build_time",)
GATES = ("test_coverage", "branch_coverage", "security_scan", "max_test_failures")
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_TIME = re.compile(
    r"^\s*(?:<=?|under|below|less than)?\s*(\d+(?:\.\d+)?)\s*"
    r"(s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?)\s*$",
    re.IGNORECASE,
)
_PERCENT = re.compile(r"^\s*(?:>=?|at least|over|above)?\s*(\d+(?:\.\d+)?)\s*%?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Requirements:
    """What the pipeline must achieve (validated)."""

    name: str
    project_type: str
    language: str
    tech_stack: tuple[str, ...]
    build_time: float | None
    min_line: float | None
    min_branch: float | None
    max_severity: str | None
    max_test_failures: int
    environments: tuple[str, ...]
    file: str


def _hint(key: str, known: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f"did you mean '{close[0]}'?" if close else f"known: {', '.join(known)}"


class _Reader:
    def __init__(self, smap: SourceMap) -> None:
        self.smap = smap
        self.problems: list[Diagnostic] = []

    def problem(self, path: Path, message: str, hint: str = "", *, at_key: bool = False) -> None:
        self.problems.append(self.smap.diag(path, message, hint, at_key=at_key))

    def mapping(self, value: Any, path: Path, known: tuple[str, ...]) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(path, f"must be a mapping ({', '.join(known)})")
            return {}
        for key in value:
            if str(key) not in known:
                self.problem((*path, str(key)), f"unknown key '{key}'", _hint(str(key), known), at_key=True)
        return {str(k): v for k, v in value.items() if str(k) in known}

    def duration(self, value: Any, path: Path) -> float | None:
        m = _TIME.match(str(value)) if isinstance(value, str | int | float) else None
        if m is None or isinstance(value, bool):
            self.problem(path, f"{str(value)[:60]!r} is not a time", 'write e.g. "<10 minutes" or "90s"')
            return None
        unit = m.group(2).lower()[0]
        seconds = float(m.group(1)) * {"s": 1, "m": 60, "h": 3600}[unit]
        if seconds <= 0:
            self.problem(path, "a time target must be positive")
            return None
        return seconds

    def percent(self, value: Any, path: Path) -> float | None:
        m = _PERCENT.match(str(value)) if isinstance(value, str | int | float) else None
        if m is None or isinstance(value, bool) or not 0 <= float(m.group(1)) <= 100:
            self.problem(path, f"{str(value)[:60]!r} is not a percentage", 'write e.g. ">90%"')
            return None
        return float(m.group(1))


def parse_requirements(text: str, file: str) -> Requirements:
    """Validate a requirements document; raise :class:`SpecError` with every located problem."""
    data, smap, problems = load_yaml(text, file)
    if problems:
        raise SpecError(problems)
    reader = _Reader(smap)
    base: Path = (ROOT,)
    if not isinstance(data, dict) or ROOT not in data:
        raise SpecError(
            [smap.diag((), f"the document needs a '{ROOT}' mapping", "see 'buildyard design --help'")]
        )
    reader.mapping(data, (), (ROOT,))
    raw = reader.mapping(data[ROOT], base, KEYS)
    project_type = raw.get("project_type")
    if project_type is None:
        reader.problem(base, "project_type is required", f"one of {', '.join(PROJECT_TYPES)}")
    elif str(project_type) not in PROJECT_TYPES:
        reader.problem(
            (*base, "project_type"),
            f"unknown project_type {str(project_type)[:60]!r}",
            _hint(str(project_type), PROJECT_TYPES),
        )
    stack, language = _stack(reader, raw.get("tech_stack"), (*base, "tech_stack"))
    targets = reader.mapping(raw.get("performance_targets"), (*base, "performance_targets"), TARGETS)
    build_time = (
        reader.duration(targets["build_time"], (*base, "performance_targets", "build_time"))
        if "build_time" in targets
        else None
    )
    gates_path: Path = (*base, "quality_gates")
    gates = reader.mapping(raw.get("quality_gates"), gates_path, GATES)
    min_line = (
        reader.percent(gates["test_coverage"], (*gates_path, "test_coverage"))
        if "test_coverage" in gates
        else None
    )
    min_branch = (
        reader.percent(gates["branch_coverage"], (*gates_path, "branch_coverage"))
        if "branch_coverage" in gates
        else None
    )
    severity = None
    if "security_scan" in gates:
        phrase = str(gates["security_scan"]).strip().lower()
        severity = SECURITY.get(phrase)
        if severity is None:
            reader.problem(
                (*gates_path, "security_scan"),
                f"unknown security_scan {phrase[:60]!r}",
                f"one of: {', '.join(repr(k) for k in SECURITY)}",
            )
    failures = gates.get("max_test_failures", 0)
    if not isinstance(failures, int) or isinstance(failures, bool) or failures < 0:
        reader.problem((*gates_path, "max_test_failures"), "max_test_failures must be a whole number ≥ 0")
        failures = 0
    environments = _environments(reader, raw.get("environments"), (*base, "environments"))
    name = raw.get("name", project_type)
    if name is not None and not _NAME.match(str(name)):
        reader.problem(
            (*base, "name"), f"name {str(name)[:60]!r} may only contain letters, digits, '_', '-', '.'"
        )
    if reader.problems:
        raise SpecError(reader.problems)
    return Requirements(
        name=str(name),
        project_type=str(project_type),
        language=language,
        tech_stack=stack,
        build_time=build_time,
        min_line=min_line,
        min_branch=min_branch,
        max_severity=severity,
        max_test_failures=failures,
        environments=environments,
        file=file,
    )


def _stack(reader: _Reader, value: Any, path: Path) -> tuple[tuple[str, ...], str]:
    if value is None:
        reader.problem(
            path[:-1],
            "tech_stack is required",
            f"name a language: {', '.join(sorted(set(LANGUAGES.values())))}",
        )
        return (), ""
    if isinstance(value, dict):
        items = [str(v) for v in value.values() if isinstance(v, str | int | float)]
        if not isinstance(value.get("language"), str):
            reader.problem(path, "a tech_stack mapping needs 'language'", "e.g. {language: python}")
            return tuple(items), ""
        items = [str(value["language"]), *(i for i in items if i != value["language"])]
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        items = list(value)
    else:
        reader.problem(path, "tech_stack is a list of technologies or {language: …}")
        return (), ""
    languages = [LANGUAGES[i.lower()] for i in items if i.lower() in LANGUAGES]
    if not languages:
        reader.problem(
            path,
            f"tech_stack names no language buildyard can design for ({', '.join(items)[:100]})",
            f"add one of {', '.join(sorted(set(LANGUAGES.values())))}",
        )
        return tuple(items), ""
    return tuple(items), languages[0]


def _environments(reader: _Reader, value: Any, path: Path) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        reader.problem(
            path, "environments is a list of names, in promotion order", "e.g. [dev, staging, production]"
        )
        return ()
    for i, env in enumerate(value):
        if not _NAME.match(env):
            reader.problem(
                (*path, i), f"environment name {env[:60]!r} may only contain letters, digits, '_', '-', '.'"
            )
        elif value.index(env) != i:
            reader.problem((*path, i), f"environment '{env}' is listed twice")
    return tuple(value)
