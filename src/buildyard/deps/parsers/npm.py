"""Parsers for the npm ecosystem: package-lock.json v1-v3, yarn.lock (v1 and berry), pnpm-lock.yaml."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from buildyard.deps.errors import LockfileError
from buildyard.deps.model import Ecosystem, Package, Scope
from buildyard.deps.parsers._util import LineIndex, expect_dict, load_json, load_yaml

_NPM = Ecosystem.NPM
_NM = "node_modules/"


def integrity_hashes(integrity: str | None) -> tuple[tuple[str, str], ...]:
    """Subresource-integrity strings (``sha512-<base64>``) as ``(algorithm, hex)`` pairs."""
    if not integrity:
        return ()
    out = []
    for item in integrity.split():
        alg, _, b64 = item.partition("-")
        name = {"sha512": "SHA-512", "sha384": "SHA-384", "sha256": "SHA-256", "sha1": "SHA-1"}.get(alg)
        if not name:
            continue
        try:
            out.append((name, base64.b64decode(b64, validate=True).hex()))
        except (binascii.Error, ValueError):
            continue
    return tuple(out)


def _manifest_deps(manifest: dict[str, Any]) -> tuple[set[str], set[str]]:
    prod = set(manifest.get("dependencies") or {}) | set(manifest.get("optionalDependencies") or {})
    prod |= set(manifest.get("peerDependencies") or {})
    return prod, set(manifest.get("devDependencies") or {})


def _read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        data = load_json(path.read_text(encoding="utf-8"), str(path))
    except (OSError, LockfileError):
        return None
    return data if isinstance(data, dict) else None


def _scope(entry: dict[str, Any]) -> Scope:
    if entry.get("dev") or entry.get("devOptional"):
        return Scope.DEV
    if entry.get("optional"):
        return Scope.OPTIONAL
    return Scope.PROD


def parse_package_lock(text: str, file: str, path: Path) -> list[Package]:
    """Packages of a ``package-lock.json`` / ``npm-shrinkwrap.json``, lockfileVersion 1, 2 or 3."""
    data = expect_dict(load_json(text, file), file, "the document")
    version = data.get("lockfileVersion", 1)
    if version not in (1, 2, 3):
        raise LockfileError(file, f"unsupported lockfileVersion {version!r} (npm writes 1, 2 or 3)")
    if "packages" in data:
        return _parse_packages_section(data, text, file)
    return _parse_v1(data, text, file, path)


def _parse_packages_section(data: dict[str, Any], text: str, file: str) -> list[Package]:
    entries = expect_dict(data["packages"], file, "packages")
    root = entries.get("", {})
    prod_roots, dev_roots = _manifest_deps(root if isinstance(root, dict) else {})
    lines = LineIndex(text)
    versions = {
        key: str(entry.get("version", "")) for key, entry in entries.items() if isinstance(entry, dict)
    }
    packages = []
    for key, entry in entries.items():
        if not isinstance(entry, dict):
            raise LockfileError(file, f"packages[{key!r}] is not an object (regenerate the lockfile)")
        if _NM not in key or entry.get("link") or not entry.get("version"):
            continue
        name = entry.get("name") or key.rsplit(_NM, 1)[1]
        top = key == _NM + name
        requires = {**(entry.get("peerDependencies") or {}), **(entry.get("optionalDependencies") or {})}
        requires.update(entry.get("dependencies") or {})
        deps = []
        for dep in requires:
            found = _resolve_node(key, dep, versions)
            if found is not None:
                deps.append((dep, versions[found]))
        packages.append(
            Package(
                _NPM,
                name,
                str(entry["version"]),
                file,
                lines.find(f'"{key}": {{'),
                direct=top and (name in prod_roots or name in dev_roots),
                scope=_scope(entry),
                hashes=integrity_hashes(entry.get("integrity")),
                license=license_field(entry.get("license")),
                dependencies=tuple(deps),
            )
        )
    return packages


def _resolve_node(key: str, dep: str, versions: dict[str, str]) -> str | None:
    """Node's module resolution inside the lockfile tree: nearest ``node_modules/<dep>`` upwards."""
    base = key
    while True:
        candidate = f"{base}/{_NM}{dep}" if base else f"{_NM}{dep}"
        if candidate in versions:
            return candidate
        if not base:
            return None
        cut = base.rfind("/" + _NM)
        base = base[:cut] if cut != -1 else ""


def license_field(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("type"), str):
        return str(value["type"])
    if isinstance(value, list):
        names = [license_field(v) for v in value]
        clean = [n for n in names if n]
        return " OR ".join(clean) if clean else None
    return None


def _parse_v1(data: dict[str, Any], text: str, file: str, path: Path) -> list[Package]:
    manifest = _read_manifest(path.parent / "package.json")
    prod_roots, dev_roots = _manifest_deps(manifest) if manifest is not None else (set(), set())
    lines = LineIndex(text)
    packages: list[Package] = []

    def walk(deps: dict[str, Any], chain: list[dict[str, Any]], depth: int) -> None:
        for name, entry in deps.items():
            if not isinstance(entry, dict):
                raise LockfileError(
                    file, f"dependencies[{name!r}] is not an object (regenerate the lockfile)"
                )
            line = lines.find(f'"{name}": {{')
            version = str(entry.get("version", ""))
            scope_chain = [entry.get("dependencies") or {}, *chain]
            if version and not version.startswith(("file:", "git", "http")):
                required = []
                for dep in entry.get("requires") or {}:
                    target = next((level[dep] for level in scope_chain if dep in level), None)
                    if isinstance(target, dict):
                        required.append((dep, str(target.get("version", ""))))
                packages.append(
                    Package(
                        _NPM,
                        name,
                        version,
                        file,
                        line,
                        direct=(depth == 0 and (name in prod_roots or name in dev_roots))
                        if manifest is not None
                        else None,
                        scope=_scope(entry),
                        hashes=integrity_hashes(entry.get("integrity")),
                        dependencies=tuple(required),
                    )
                )
            walk(entry.get("dependencies") or {}, scope_chain, depth + 1)

    top = expect_dict(data.get("dependencies", {}), file, "dependencies")
    walk(top, [top], 0)
    return packages


# ---------------------------------------------------------------------------------------- yarn

_YARN_ENTRY = re.compile(r"^(\S.*):\s*$")
_YARN_FIELD = re.compile(r'^  (\S+)\s+"?([^"]*)"?\s*$')
_YARN_DEP = re.compile(r'^    ("?)(.+?)\1\s+"?([^"]*)"?\s*$')


def spec_name(spec: str) -> str:
    """Package name of a yarn/pnpm descriptor such as ``@babel/core@^7.0.0`` or ``lodash@npm:^4``."""
    spec = spec.strip().strip('"')
    at = spec.find("@", 1)
    return spec if at == -1 else spec[:at]


def parse_yarn_lock(text: str, file: str, path: Path) -> list[Package]:
    """Packages of a ``yarn.lock``: classic v1 (its own format) or berry (YAML with ``__metadata``)."""
    if "__metadata:" in text:
        return _parse_berry(text, file, path)
    if "# yarn lockfile v1" not in text:
        raise LockfileError(file, "not a yarn lockfile (missing '# yarn lockfile v1' or '__metadata')", 1)
    blocks: list[tuple[list[str], int, dict[str, str], dict[str, str]]] = []
    in_deps = False
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        entry = _YARN_ENTRY.match(line)
        if entry:
            specs = [s.strip().strip('"') for s in entry.group(1).split(",")]
            blocks.append((specs, number, {}, {}))
            in_deps = False
            continue
        if not blocks:
            raise LockfileError(file, f"unexpected line {line.strip()!r} before the first entry", number)
        if line.startswith("    ") and in_deps:
            dep = _YARN_DEP.match(line)
            if dep:
                blocks[-1][3][dep.group(2)] = dep.group(3)
            continue
        if line.startswith("  ") and line.rstrip().endswith(":"):
            in_deps = line.strip() in ("dependencies:", "optionalDependencies:")
            continue
        field = _YARN_FIELD.match(line)
        if not field:
            raise LockfileError(file, f"cannot parse line {line.strip()!r}", number)
        blocks[-1][2][field.group(1)] = field.group(2)
        in_deps = False
    by_spec: dict[str, tuple[str, str]] = {}
    for specs, _, fields, _ in blocks:
        for spec in specs:
            by_spec[spec] = (spec_name(spec), fields.get("version", ""))
    manifest = _read_manifest(path.parent / "package.json")
    raw = [
        (
            spec_name(specs[0]),
            fields.get("version", ""),
            number,
            fields,
            {(by_spec.get(f"{n}@{r}", (n, ""))) for n, r in deps.items()},
        )
        for specs, number, fields, deps in blocks
    ]
    roots = _manifest_specs(manifest, by_spec)
    return _npm_packages(raw, roots, file, manifest is not None)


def _manifest_specs(
    manifest: dict[str, Any] | None, by_spec: dict[str, tuple[str, str]]
) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    if manifest is None:
        return set(), set()
    prod: set[tuple[str, str]] = set()
    dev: set[tuple[str, str]] = set()
    for section, target in (
        ("dependencies", prod),
        ("optionalDependencies", prod),
        ("peerDependencies", prod),
        ("devDependencies", dev),
    ):
        for name, rng in (manifest.get(section) or {}).items():
            for key in (f"{name}@{rng}", f"{name}@npm:{rng}"):
                if key in by_spec:
                    target.add(by_spec[key])
    return prod, dev


def _npm_packages(
    raw: Iterable[tuple[str, str, int, dict[str, Any], set[tuple[str, str]]]],
    roots: tuple[set[tuple[str, str]], set[tuple[str, str]]],
    file: str,
    know_roots: bool,
) -> list[Package]:
    items = list(raw)
    graph = {(name, version): deps for name, version, _, _, deps in items}
    prod_roots, dev_roots = roots
    prod = _closure(graph, prod_roots)
    packages = []
    for name, version, line, fields, deps in items:
        if not version:
            continue
        key = (name, version)
        scope = Scope.UNKNOWN
        if know_roots:
            scope = Scope.PROD if key in prod else Scope.DEV
        packages.append(
            Package(
                _NPM,
                name,
                version,
                file,
                line,
                direct=(key in prod_roots or key in dev_roots) if know_roots else None,
                scope=scope,
                hashes=integrity_hashes(fields.get("integrity")) or _resolved_sha1(fields.get("resolved")),
                dependencies=tuple(sorted(d for d in deps if d[1])),
            )
        )
    return packages


def _resolved_sha1(resolved: str | None) -> tuple[tuple[str, str], ...]:
    """Old yarn v1 entries carry only ``resolved "<url>#<sha1>"``."""
    digest = (resolved or "").rpartition("#")[2]
    return (("SHA-1", digest),) if re.fullmatch(r"[0-9a-f]{40}", digest) else ()


def _closure(
    graph: dict[tuple[str, str], set[tuple[str, str]]], start: set[tuple[str, str]]
) -> set[tuple[str, str]]:
    seen = set(start)
    stack = list(start)
    while stack:
        for dep in graph.get(stack.pop(), ()):
            if dep not in seen:
                seen.add(dep)
                stack.append(dep)
    return seen


def _parse_berry(text: str, file: str, path: Path) -> list[Package]:
    data = expect_dict(load_yaml(text, file), file, "the document")
    lines = LineIndex(text)
    by_spec: dict[str, tuple[str, str]] = {}
    entries = []
    workspace_deps: tuple[set[tuple[str, str]], set[tuple[str, str]]] = (set(), set())
    for key, entry in data.items():
        if key == "__metadata" or not isinstance(entry, dict):
            continue
        resolution = str(entry.get("resolution", ""))
        name = spec_name(resolution) if resolution else spec_name(key.split(",")[0])
        version = str(entry.get("version", ""))
        for spec in key.split(","):
            by_spec[spec.strip()] = (name, version)
        entries.append((key, name, version, entry, resolution))
    manifest = _read_manifest(path.parent / "package.json")
    raw: list[tuple[str, str, int, dict[str, Any], set[tuple[str, str]]]] = []
    for key, name, version, entry, resolution in entries:
        deps = {by_spec.get(_berry_spec(n, r), (n, "")) for n, r in (entry.get("dependencies") or {}).items()}
        if "@workspace:" in resolution:
            if resolution.endswith("@workspace:."):
                workspace_deps = _manifest_specs(
                    manifest, {k.replace("@npm:", "@", 1): v for k, v in by_spec.items()}
                )
            continue
        if "@npm:" not in resolution:
            continue  # git, file, patch and link protocols carry no registry version
        raw.append((name, version, lines.find(key.split(",")[0]), {}, deps))
    return _npm_packages(raw, workspace_deps, file, manifest is not None)


def _berry_spec(name: str, rng: str) -> str:
    return f"{name}@{rng}" if ":" in rng else f"{name}@npm:{rng}"


# ---------------------------------------------------------------------------------------- pnpm

_PEER_SUFFIX = re.compile(r"\(.*\)$|_[^/]*$")


def pnpm_key(key: str) -> tuple[str, str]:
    """``(name, version)`` of a pnpm packages key in any lockfile version (5.x, 6.x, 9.x)."""
    key = re.sub(r"\(.*$", "", key.lstrip("/"))
    segments = key.split("/")
    if len(segments) >= (3 if key.startswith("@") else 2):
        # lockfile 5.x: name/version[_peer-suffix]
        name, _, version = key.rpartition("/")
        return name, _PEER_SUFFIX.sub("", version)
    at = key.find("@", 1)
    return (key[:at], key[at + 1 :]) if at != -1 else (key, "")


def parse_pnpm_lock(text: str, file: str, path: Path) -> list[Package]:
    """Packages of a ``pnpm-lock.yaml`` (lockfile 5.x, 6.x and 9.x)."""
    data = expect_dict(load_yaml(text, file), file, "the document")
    lines = LineIndex(text)
    importers = data.get("importers") or {".": data}
    prod_roots: set[tuple[str, str]] = set()
    dev_roots: set[tuple[str, str]] = set()
    for importer in expect_dict(importers, file, "importers").values():
        for section, target in (
            ("dependencies", prod_roots),
            ("optionalDependencies", prod_roots),
            ("devDependencies", dev_roots),
        ):
            for name, ref in (importer.get(section) or {}).items():
                version = ref.get("version") if isinstance(ref, dict) else ref
                if isinstance(version, str) and not version.startswith(("link:", "file:")):
                    target.add((name, _clean_ref(name, version)))
    packages_section = expect_dict(data.get("packages") or {}, file, "packages")
    snapshots = expect_dict(data.get("snapshots") or {}, file, "snapshots")
    graph: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for key, entry in {**packages_section, **snapshots}.items():
        node = pnpm_key(key)
        deps = graph.setdefault(node, set())
        if isinstance(entry, dict):
            for section in ("dependencies", "optionalDependencies"):
                for name, ref in (entry.get(section) or {}).items():
                    deps.add((name, _clean_ref(name, str(ref))))
    prod = _closure(graph, prod_roots)
    packages = []
    for key, entry in packages_section.items():
        name, version = pnpm_key(key)
        if not isinstance(entry, dict):
            raise LockfileError(file, f"packages[{key!r}] is not a mapping (regenerate the lockfile)")
        if "dev" in entry:
            scope = Scope.DEV if entry["dev"] else Scope.PROD
        else:
            scope = Scope.PROD if (name, version) in prod else Scope.DEV
        if entry.get("optional") and scope is Scope.PROD:
            scope = Scope.OPTIONAL
        resolution = entry.get("resolution") or {}
        packages.append(
            Package(
                _NPM,
                name,
                version,
                file,
                lines.find(key),
                direct=(name, version) in prod_roots or (name, version) in dev_roots,
                scope=scope,
                hashes=integrity_hashes(
                    resolution.get("integrity") if isinstance(resolution, dict) else None
                ),
                dependencies=tuple(sorted(graph.get((name, version), set()))),
            )
        )
    return packages


def _clean_ref(name: str, ref: str) -> str:
    ref = re.sub(r"\(.*$", "", ref)
    if ref.startswith("/"):
        return pnpm_key(ref)[1]
    if "@" in ref[1:] and not ref[0].isdigit():
        return pnpm_key(ref)[1]
    return _PEER_SUFFIX.sub("", ref) if "_" in ref else ref
