"""Licenses of dependencies: SPDX normalization and allow/deny policy evaluation.

A declared license is normalized with ``license-expression``; text that is not a valid SPDX
expression stays ``unrecognized`` (kept verbatim, never guessed), and a package that declares
nothing is ``unknown``. A policy passes ``A OR B`` if either side passes and ``A AND B`` only if both.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

from buildyard.deps.errors import LicensePolicyError, LockfileError
from buildyard.deps.model import Ecosystem, Inventory, Package, normalize_name
from buildyard.deps.parsers._util import load_yaml
from buildyard.errors import UserError


class LicenseStatus(StrEnum):
    """How well a package's license is known."""

    SPDX = "spdx"
    UNRECOGNIZED = "unrecognized"
    UNKNOWN = "unknown"


class Verdict(StrEnum):
    """Outcome of the policy for one package."""

    ALLOWED = "allowed"
    DENIED = "denied"
    UNKNOWN = "unknown"
    EXCEPTION = "exception"


@dataclass(frozen=True, slots=True)
class License:
    """A normalized license: ``expression`` is SPDX when ``status`` is ``SPDX``, else the raw text or None."""

    status: LicenseStatus
    expression: str | None

    def __str__(self) -> str:
        return self.expression if self.expression else "unknown"


@lru_cache(maxsize=1)
def _licensing() -> Any:
    from license_expression import get_spdx_licensing  # noqa: PLC0415 - loads the SPDX index

    return get_spdx_licensing()


@lru_cache(maxsize=4096)
def normalize(raw: str | None) -> License:
    """Normalize a declared license to an SPDX expression when it is one."""
    if raw is None or not raw.strip():
        return License(LicenseStatus.UNKNOWN, None)
    text = raw.strip()
    info = _licensing().validate(text)
    if not info.errors and info.normalized_expression:
        return License(LicenseStatus.SPDX, str(info.normalized_expression))
    if info.invalid_symbols and all(
        str(s).startswith(("LicenseRef-", "DocumentRef-")) for s in info.invalid_symbols
    ):
        try:
            return License(LicenseStatus.SPDX, str(_licensing().parse(text, validate=False)))
        except Exception:  # noqa: BLE001 - license-expression raises several parse error types
            return License(LicenseStatus.UNRECOGNIZED, text)
    return License(LicenseStatus.UNRECOGNIZED, text)


@dataclass(frozen=True, slots=True)
class PackageException:
    """A package allowed whatever its license, with the reason."""

    package: str
    reason: str
    version: str | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    """Allowed and denied SPDX ids plus per-package exceptions. An empty allow list allows all not denied."""

    allow: frozenset[str] = frozenset()
    deny: frozenset[str] = frozenset()
    exceptions: tuple[PackageException, ...] = ()
    fail_on_unknown: bool = True

    @classmethod
    def from_lists(
        cls,
        allow: list[str],
        deny: list[str],
        exceptions: tuple[PackageException, ...] = (),
        fail_on_unknown: bool = True,
    ) -> Policy:
        """A policy from license ids (validated and canonicalized)."""
        return cls(_ids(allow, "allow"), _ids(deny, "deny"), exceptions, fail_on_unknown)

    def exception_for(self, pkg: Package) -> PackageException | None:
        """The exception that covers ``pkg``, if any."""
        name = pkg.normalized_name
        for exc in self.exceptions:
            if normalize_name(pkg.ecosystem, exc.package) == name and exc.version in (None, pkg.version):
                return exc
        return None


def _ids(values: list[str], what: str) -> frozenset[str]:
    out = set()
    for raw in values:
        value = raw.strip()
        if not value:
            continue
        lic = normalize(value)
        if lic.status is not LicenseStatus.SPDX or lic.expression is None or " " in lic.expression:
            raise LicensePolicyError(
                f"--{what}: {value!r} is not an SPDX license id (see https://spdx.org/licenses/)"
            )
        out.add(lic.expression.lower())
    return frozenset(out)


@dataclass(frozen=True, slots=True)
class LicenseResult:
    """The license of one package and the policy's verdict on it."""

    package: Package
    license: License
    verdict: Verdict
    reason: str = ""
    source: str = ""  # where the license was read: a lockfile or installed metadata ("" when none)


@dataclass(slots=True)
class LicenseReport:
    """Per-package results; ``violations`` decide the exit code."""

    results: list[LicenseResult] = field(default_factory=list)

    @property
    def violations(self) -> list[LicenseResult]:
        """Denied packages, and unknown ones when the policy fails on unknown."""
        return [r for r in self.results if r.verdict in (Verdict.DENIED, Verdict.UNKNOWN)]


def _passes(node: Any, policy: Policy) -> bool:
    from license_expression import AND, OR, LicenseSymbol, LicenseWithExceptionSymbol  # noqa: PLC0415

    if isinstance(node, OR):
        return any(_passes(arg, policy) for arg in node.args)
    if isinstance(node, AND):
        return all(_passes(arg, policy) for arg in node.args)
    if isinstance(node, LicenseWithExceptionSymbol):
        full = f"{node.license_symbol.key} WITH {node.exception_symbol.key}".lower()
        base = str(node.license_symbol.key).lower()
        if full in policy.deny or base in policy.deny:
            return False
        return not policy.allow or full in policy.allow or base in policy.allow
    if isinstance(node, LicenseSymbol):
        key = str(node.key).lower()
        return key not in policy.deny and (not policy.allow or key in policy.allow)
    return False


def evaluate(pkg: Package, lic: License, policy: Policy) -> LicenseResult:
    """Apply ``policy`` to one package whose license is ``lic``."""
    exception = policy.exception_for(pkg)
    if exception is not None:
        return LicenseResult(pkg, lic, Verdict.EXCEPTION, exception.reason)
    if lic.status is not LicenseStatus.SPDX or lic.expression is None:
        if policy.fail_on_unknown and (policy.allow or policy.deny):
            return LicenseResult(pkg, lic, Verdict.UNKNOWN, f"license is {lic.status.value}: {lic}")
        return LicenseResult(
            pkg, lic, Verdict.ALLOWED, f"license is {lic.status.value}; policy does not fail on it"
        )
    tree = _licensing().parse(lic.expression, validate=False)
    if _passes(tree, policy):
        return LicenseResult(pkg, lic, Verdict.ALLOWED)
    return LicenseResult(pkg, lic, Verdict.DENIED, f"{lic.expression} is not allowed by the policy")


def licenses_of(inventory: Inventory) -> dict[tuple[Ecosystem, str, str], str]:
    """Best declared license per (ecosystem, name, version) across every source in the inventory."""
    return {key: lic for key, (lic, _) in _licenses_with_sources(inventory).items()}


def _licenses_with_sources(inventory: Inventory) -> dict[tuple[Ecosystem, str, str], tuple[str, str]]:
    """Best declared license per package, and where it was read."""
    best: dict[tuple[Ecosystem, str, str], tuple[str, str]] = {}
    for pkg in inventory.packages:
        if pkg.license:
            key = (pkg.ecosystem, pkg.normalized_name, pkg.version)
            if key not in best or normalize(best[key][0]).status is not LicenseStatus.SPDX:
                best[key] = (pkg.license, pkg.license_source or pkg.location)
    return best


def check_licenses(inventory: Inventory, policy: Policy) -> LicenseReport:
    """Evaluate ``policy`` for every distinct package of ``inventory``."""
    known = _licenses_with_sources(inventory)
    report = LicenseReport()
    seen = set()
    for pkg in inventory.packages:
        key = (pkg.ecosystem, pkg.normalized_name, pkg.version)
        if key in seen:
            continue
        seen.add(key)
        lic, source = known.get(key, (None, ""))
        report.results.append(replace(evaluate(pkg, normalize(lic), policy), source=source))
    return report


def resolve_policy(
    project: Path,
    *,
    policy_file: Path | None = None,
    allow: list[str] | None = None,
    deny: list[str] | None = None,
    allow_unknown: bool = False,
) -> Policy:
    """The policy in force: ``policy_file`` (else buildyard.yml's, unless ids are given) plus the ids."""
    allow = [a for a in allow or [] if a.strip()]
    deny = [d for d in deny or [] if d.strip()]
    if policy_file is not None:
        base: Policy | None = load_policy(policy_file)
    else:
        base = None if allow or deny else project_policy(project)
    base = base or Policy()
    extra = Policy.from_lists(allow, deny)
    return Policy(
        base.allow | extra.allow,
        base.deny | extra.deny,
        base.exceptions,
        base.fail_on_unknown and not allow_unknown,
    )


def project_policy(project: Path) -> Policy | None:
    """The ``deps: licenses:`` policy of ``<project>/buildyard.yml``, or None if it has none."""
    spec = project / "buildyard.yml"
    if not spec.is_file():
        return None
    try:
        from buildyard.spec.load import read_text  # noqa: PLC0415 - bounded read of the pipeline file

        text = read_text(spec)
        data = load_yaml(text, str(spec), hint="fix the pipeline file", pipeline=True)
    except (UserError, LockfileError):
        return None  # the pipeline loader reports its own errors
    deps = data.get("deps") if isinstance(data, dict) else None
    if not isinstance(deps, dict) or "licenses" not in deps:
        return None
    return load_policy(spec)


def load_policy(path: Path) -> Policy:
    """A policy file: ``licenses: {allow, deny, exceptions: [{package, reason, version?}], fail_on_unknown}``.

    The same mapping is accepted under ``deps: licenses:`` so it can live in ``buildyard.yml``.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LicensePolicyError(f"{path}: cannot read the policy: {exc.strerror}") from exc
    try:
        data = load_yaml(text, str(path), hint="fix the policy file", pipeline=True) or {}
    except LockfileError as exc:
        raise LicensePolicyError(str(exc)) from exc
    section = data.get("deps", data) if isinstance(data, dict) else None
    section = section.get("licenses") if isinstance(section, dict) else None
    if not isinstance(section, dict):
        raise LicensePolicyError(f"{path}: expected a 'licenses:' mapping with allow/deny/exceptions")
    unknown = set(section) - {"allow", "deny", "exceptions", "fail_on_unknown"}
    if unknown:
        raise LicensePolicyError(f"{path}: unknown key(s) in licenses: {', '.join(sorted(unknown))}")
    exceptions = []
    for item in section.get("exceptions") or []:
        if not isinstance(item, dict) or not item.get("package") or not str(item.get("reason", "")).strip():
            raise LicensePolicyError(f"{path}: each exception needs 'package' and a non-empty 'reason'")
        version = item.get("version")
        exceptions.append(
            PackageException(
                str(item["package"]), str(item["reason"]).strip(), str(version) if version else None
            )
        )
    return Policy.from_lists(
        [str(v) for v in section.get("allow") or []],
        [str(v) for v in section.get("deny") or []],
        tuple(exceptions),
        bool(section.get("fail_on_unknown", True)),
    )
