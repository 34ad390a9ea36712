"""Find the components of a repository from its file listing (pure: no I/O).

A component is a stack in a directory: ``pyproject.toml`` makes a Python component, ``package.json``
a Node one, and so on (:data:`MARKERS`). Directories are looked at from the root down (to
:data:`MAX_DEPTH`); a marker inside a component of the same stack belongs to it (a Cargo or npm
workspace member, a Maven module, a CMake subdirectory), a marker of another stack starts a
component of its own (a Python backend with a Node frontend in ``web/``).
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections import defaultdict
from collections.abc import Callable

from buildyard.scaffold.model import Component, RepoListing, Stack, Tool

#: Directories never listed nor read: VCS data, dependency trees, caches.
NEVER_READ = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".buildyard",
        "node_modules",
        ".venv",
        "venv",
        "target",
        "__pycache__",
        ".pixi",
        ".magic",
        ".tox",
        ".nox",
        ".gradle",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".turbo",
        ".next",
    }
)
#: Directories the generated jobs write (or tools write): never a job's input.
GENERATED = NEVER_READ | {"build", "dist", "reports", "coverage", "out", ".m2", ".pack", "cmake-build-debug"}
MAX_DEPTH = 3

_MANIFESTS = {
    "pyproject.toml",
    "setup.cfg",
    "setup.py",
    "pytest.ini",
    "tox.ini",
    "mypy.ini",
    ".mypy.ini",
    "ruff.toml",
    ".ruff.toml",
    "conftest.py",
    "package.json",
    "pnpm-workspace.yaml",
    "turbo.json",
    ".yarnrc.yml",
    "go.mod",
    "go.work",
    "Cargo.toml",
    "pom.xml",
    "build.gradle",
    "build.gradle.kts",
    "settings.gradle",
    "settings.gradle.kts",
    "CMakeLists.txt",
    "Makefile",
    "makefile",
    "GNUmakefile",
    "mojoproject.toml",
    "pixi.toml",
    "Dockerfile",
}
_C_SOURCES = (".c", ".cc", ".cpp", ".cxx", ".h", ".hpp")


def wants_content(path: str) -> bool:
    """Whether the detection reads ``path``'s text (manifests, configs, Mojo sources, requirements)."""
    name = posixpath.basename(path)
    if path.count("/") > MAX_DEPTH + 2:
        return False
    return (
        name in _MANIFESTS
        or fnmatch.fnmatch(name, "requirements*.txt")
        or fnmatch.fnmatch(name, ".eslintrc*")
        or fnmatch.fnmatch(name, "eslint.config.*")
        or name.endswith((".mojo", ".🔥"))
    )


def _pixi_mojo(text: str) -> bool:
    return bool(re.search(r"^\s*(mojo|max|modular)\s*=", text, re.MULTILINE))


def _python(names: set[str], listing: RepoListing, directory: str) -> bool:
    del listing, directory
    return bool(
        names & {"pyproject.toml", "setup.py", "setup.cfg", "Pipfile", "uv.lock", "poetry.lock", "pdm.lock"}
        or any(fnmatch.fnmatch(n, "requirements*.txt") for n in names)
    )


def _c(names: set[str], listing: RepoListing, directory: str) -> bool:
    if "CMakeLists.txt" in names:
        return True
    if not names & {"Makefile", "makefile", "GNUmakefile"}:
        return False
    return any(f.endswith(_C_SOURCES) for f in listing.under(directory))


def _mojo(names: set[str], listing: RepoListing, directory: str) -> bool:
    if "mojoproject.toml" in names:
        return True
    return "pixi.toml" in names and _pixi_mojo(listing.text(_join(directory, "pixi.toml")))


#: stack -> test on a directory's file names (the listing and the directory for deeper checks).
MARKERS: dict[Stack, Callable[[set[str], RepoListing, str], bool]] = {
    Stack.PYTHON: _python,
    Stack.NODE: lambda names, _l, _d: "package.json" in names,
    Stack.GO: lambda names, _l, _d: bool(names & {"go.mod", "go.work"}),
    Stack.RUST: lambda names, _l, _d: "Cargo.toml" in names,
    Stack.JAVA: lambda names, _l, _d: bool(
        names & {"pom.xml", "build.gradle", "build.gradle.kts", "settings.gradle", "settings.gradle.kts"}
    ),
    Stack.C: _c,
    Stack.MOJO: _mojo,
    Stack.DOCKER: lambda names, _l, _d: "Dockerfile" in names,
}


def _join(directory: str, name: str) -> str:
    return f"{directory}/{name}" if directory else name


def _ancestor(parent: str, child: str) -> bool:
    return parent in ("", child) or child.startswith(parent + "/")


def directories(listing: RepoListing) -> dict[str, set[str]]:
    """Directory ('' for the root) -> the names of the files directly in it."""
    by_dir: dict[str, set[str]] = defaultdict(set)
    for path in listing.files:
        by_dir[posixpath.dirname(path)].add(posixpath.basename(path))
    return by_dir


def find_components(listing: RepoListing) -> list[tuple[Stack, str]]:
    """``(stack, directory)`` of every component, outermost first, in a stable order."""
    by_dir = directories(listing)
    found: list[tuple[Stack, str]] = []
    for directory in sorted(by_dir, key=lambda d: (d.count("/") if d else -1, d)):
        if directory and directory.count("/") >= MAX_DEPTH:
            continue
        if any(part in GENERATED for part in directory.split("/") if part):
            continue
        names = by_dir[directory]
        for stack, test in MARKERS.items():
            if any(s is stack and _ancestor(p, directory) for s, p in found):
                continue  # a member of a component of this stack (workspace, module, subdirectory)
            if test(names, listing, directory):
                found.append((stack, directory))
    found += _loose_sources(listing, found)
    return found


def _loose_sources(listing: RepoListing, found: list[tuple[Stack, str]]) -> list[tuple[Stack, str]]:
    """Python or Mojo sources with no manifest: a component where they are (the root for Python
    files at the top; the common directory of the ``.mojo`` files)."""
    extra: list[tuple[Stack, str]] = []
    stacks = {s for s, _ in found}
    if Stack.PYTHON not in stacks and any(
        f.endswith(".py") and not generated(f) for f in listing.files if f.count("/") <= 2
    ):
        claimed = [p for _, p in found if p]
        loose = [f for f in listing.files if f.endswith(".py") and not any(_ancestor(c, f) for c in claimed)]
        if loose:
            extra.append((Stack.PYTHON, ""))
    if Stack.MOJO not in stacks:
        mojo = [f for f in listing.files if f.endswith((".mojo", ".🔥")) and not generated(f)]
        if mojo:
            common = posixpath.commonpath([posixpath.dirname(f) or "." for f in mojo])
            extra.append((Stack.MOJO, "" if common == "." else common))
    return extra


def generated(path: str) -> bool:
    """Whether ``path`` lies in a directory jobs or tools write (:data:`GENERATED`)."""
    return any(part in GENERATED for part in path.split("/")[:-1])


def component_files(listing: RepoListing, path: str, others: list[str]) -> tuple[str, ...]:
    """The files of the component at ``path`` (relative to it), without those of the components
    nested in it (``others``: their directories) and without generated directories."""
    nested = [o for o in others if o != path and _ancestor(path, o)]
    files = []
    for rel in listing.under(path):
        full = _join(path, rel)
        if any(_ancestor(n, full) for n in nested) or generated(rel):
            continue
        files.append(rel)
    return tuple(sorted(files))


def make_components(
    listing: RepoListing, tool_of: Callable[[Stack, str, tuple[str, ...]], Tool]
) -> list[Component]:
    """The components of ``listing``, each with its tool from ``tool_of(stack, path, files)``."""
    found = find_components(listing)
    paths = [p for _, p in found]
    components = []
    for stack, path in found:
        files = component_files(listing, path, paths)
        components.append(Component(stack=stack, path=path, tool=tool_of(stack, path, files), files=files))
    return components
