"""Parser for Go modules: ``go.mod`` (require/replace/exclude, ``// indirect``) completed by ``go.sum``."""

from __future__ import annotations

import re
from pathlib import Path

from buildyard.deps.errors import LockfileError
from buildyard.deps.model import Ecosystem, Package, Scope

_GO = Ecosystem.GO
_DIRECTIVE = re.compile(
    r"^(require|replace|exclude|retract|module|go|toolchain|godebug|tool|ignore)\b\s*(.*)$"
)


def _strip_comment(line: str) -> tuple[str, str]:
    code, sep, comment = line.partition("//")
    return code.strip(), comment.strip() if sep else ""


def parse_go_mod(text: str, file: str, path: Path) -> list[Package]:
    """Modules required by ``go.mod``; ``replace`` directives are applied, ``go.sum`` adds modules of
    pre-1.17 modules whose go.mod does not list the full graph."""
    requires: list[tuple[str, str, bool, int]] = []
    replaces: dict[tuple[str, str], tuple[str, str]] = {}
    excludes: set[tuple[str, str]] = set()
    block: str | None = None
    saw_module = False
    for number, raw in enumerate(text.splitlines(), 1):
        code, comment = _strip_comment(raw)
        if not code:
            continue
        if block is not None:
            if code == ")":
                block = None
                continue
            _directive(block, code, comment, number, file, requires, replaces, excludes)
            continue
        match = _DIRECTIVE.match(code)
        if not match:
            raise LockfileError(file, f"unknown directive {code.split()[0]!r}", number)
        verb, rest = match.groups()
        saw_module = saw_module or verb == "module"
        if rest == "(":
            block = verb
        else:
            _directive(verb, rest, comment, number, file, requires, replaces, excludes)
    if block is not None:
        raise LockfileError(file, f"unterminated {block} ( block (add the closing ')')")
    if not saw_module:
        raise LockfileError(file, "no module directive (is this a go.mod file?)", 1)
    packages = []
    listed = set()
    for module, version, indirect, line in requires:
        if (module, version) in excludes:
            continue
        new_module, new_version = replaces.get((module, version)) or replaces.get(
            (module, ""), (module, version)
        )
        if new_module.startswith((".", "/")):
            continue  # replaced by a local directory: no published version
        listed.add(new_module)
        packages.append(
            Package(
                _GO, new_module, new_version or version, file, line, direct=not indirect, scope=Scope.PROD
            )
        )
    packages.extend(_from_go_sum(path.parent / "go.sum", listed, file))
    return packages


def _directive(
    verb: str,
    rest: str,
    comment: str,
    number: int,
    file: str,
    requires: list[tuple[str, str, bool, int]],
    replaces: dict[tuple[str, str], tuple[str, str]],
    excludes: set[tuple[str, str]],
) -> None:
    parts = rest.split()
    if verb == "require":
        if len(parts) != 2:
            raise LockfileError(file, f"malformed require {rest!r} (expected 'module version')", number)
        requires.append(
            (parts[0].strip('"'), parts[1], "indirect" in comment.split(";", maxsplit=1)[0], number)
        )
    elif verb == "replace":
        if "=>" not in parts:
            raise LockfileError(file, f"malformed replace {rest!r} (expected 'old => new')", number)
        arrow = parts.index("=>")
        old, new = parts[:arrow], parts[arrow + 1 :]
        replaces[(old[0], old[1] if len(old) > 1 else "")] = (new[0], new[1] if len(new) > 1 else "")
    elif verb == "exclude" and len(parts) == 2:
        excludes.add((parts[0], parts[1]))


def _from_go_sum(go_sum: Path, listed: set[str], go_mod_file: str) -> list[Package]:
    try:
        text = go_sum.read_text(encoding="utf-8")
    except OSError:
        return []
    best: dict[str, tuple[str, int]] = {}
    from buildyard.deps.versions import sort_key  # noqa: PLC0415 - avoid an import cycle at load time

    for number, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if len(parts) != 3 or parts[1].endswith("/go.mod"):
            continue
        module, version = parts[0], parts[1]
        if module in listed:
            continue
        current = best.get(module)
        if current is None or sort_key(_GO, version) > sort_key(_GO, current[0]):
            best[module] = (version, number)
    sum_file = str(Path(go_mod_file).with_name("go.sum"))
    return [
        Package(_GO, module, version, sum_file, number, direct=False, scope=Scope.PROD)
        for module, (version, number) in sorted(best.items())
    ]
