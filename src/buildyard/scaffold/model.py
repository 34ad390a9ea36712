"""The values ``buildyard init`` works with: what it read of a repository, what it found, what it plans.

Plain frozen dataclasses (no I/O): :class:`RepoListing` in, :class:`Component` and :class:`JobPlan`
in between, :class:`Scaffold` out.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Stack(StrEnum):
    """The toolchains ``buildyard init`` recognises."""

    PYTHON = "python"
    NODE = "node"
    GO = "go"
    RUST = "rust"
    JAVA = "java"
    C = "c"
    MOJO = "mojo"
    DOCKER = "docker"


class Tool(StrEnum):
    """The package manager or build tool a component is driven with."""

    PIP = "pip"
    UV = "uv"
    POETRY = "poetry"
    PDM = "pdm"
    HATCH = "hatch"
    NPM = "npm"
    PNPM = "pnpm"
    YARN = "yarn"
    BERRY = "berry"  # yarn 2 and later
    GO = "go"
    CARGO = "cargo"
    MAVEN = "maven"
    GRADLE = "gradle"
    GRADLEW = "gradlew"
    CMAKE = "cmake"
    MAKE = "make"
    MOJO = "mojo"
    PIXI = "pixi"
    DOCKER = "docker"


@dataclass(frozen=True)
class RepoListing:
    """A repository as the detection sees it: every file path (POSIX, relative to the root) and the
    text of the small files it asked for (:func:`buildyard.scaffold.detect.wants_content`)."""

    name: str
    files: tuple[str, ...]
    contents: Mapping[str, str] = field(default_factory=dict)
    truncated: bool = False  # the reader stopped at its file cap: the listing is partial

    def text(self, path: str) -> str:
        """The content of ``path`` ('' when it was not read or does not exist)."""
        return self.contents.get(path, "")

    def has(self, path: str) -> bool:
        """Whether ``path`` is a file of the repository."""
        return path in self._set

    @property
    def _set(self) -> frozenset[str]:
        cached: frozenset[str] | None = self.__dict__.get("_fileset")
        if cached is None:
            cached = frozenset(self.files)
            object.__setattr__(self, "_fileset", cached)
        return cached

    def under(self, directory: str) -> list[str]:
        """Files under ``directory`` ('' is the root), relative to it."""
        if not directory:
            return list(self.files)
        prefix = directory.rstrip("/") + "/"
        return [f[len(prefix) :] for f in self.files if f.startswith(prefix)]


@dataclass(frozen=True)
class Component:
    """One buildable part of the repository: a stack in a directory ('' is the root).

    ``tool`` names the package manager or build tool (``pip``, ``uv``, ``npm``, ``maven``, ``cmake``...).
    """

    stack: Stack
    path: str
    tool: Tool
    files: tuple[str, ...] = ()  # relative to ``path``, nested components' files excluded

    def rel(self, name: str) -> str:
        """``name`` (relative to the component) relative to the repository root."""
        return posixpath.normpath(posixpath.join(self.path, name)) if self.path else name


@dataclass(frozen=True)
class JobPlan:
    """One job of the generated pipeline, with the comment written above it."""

    name: str
    comment: str
    script: tuple[str, ...]
    needs: tuple[str, ...] = ()
    working_directory: str = ""
    inputs: tuple[str, ...] | None = None  # None: the default (git-visible files); () none
    outputs: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cache: tuple[Mapping[str, Any], ...] = ()
    key_commands: tuple[str, ...] = ()
    publish: Mapping[str, Any] | None = None
    timeout: str | None = None
    junit: tuple[str, ...] = ()  # report paths relative to the working directory
    coverage: tuple[str, ...] = ()

    def document(self) -> dict[str, Any]:
        """The job as ``buildyard.yml`` writes it (keys in a reading order)."""
        doc: dict[str, Any] = {}
        if self.needs:
            doc["needs"] = list(self.needs)
        if self.working_directory:
            doc["working_directory"] = self.working_directory
        if self.env:
            doc["env"] = dict(self.env)
        if self.inputs is not None:
            doc["inputs"] = list(self.inputs)
        if self.key_commands:
            doc["key_commands"] = list(self.key_commands)
        if self.cache:
            doc["cache"] = [dict(c) for c in self.cache]
        if self.timeout:
            doc["timeout"] = self.timeout
        doc["script"] = list(self.script)
        if self.outputs:
            doc["artifacts"] = {"paths": list(self.outputs)}
        if self.publish is not None:
            doc["publish"] = dict(self.publish)
        return doc


@dataclass(frozen=True)
class Scaffold:
    """The generated pipeline: its document (what ``spec.from_raw`` reads), the components found,
    the comments per job, and notes for the user (what was guessed or left out)."""

    document: dict[str, Any]
    components: tuple[Component, ...]
    comments: Mapping[str, str]
    notes: tuple[str, ...] = ()
    ignores: tuple[str, ...] = ()  # .gitignore patterns for what the jobs write


@dataclass(frozen=True)
class StackPlan:
    """What a stack planner makes of one component: its jobs, the job whose outputs are published and
    which of them (paths relative to the component), its manifests and lockfiles (inputs of the
    dependency scan and SBOM), pipeline variables it wants, and notes for the user."""

    jobs: tuple[JobPlan, ...]
    build_job: str | None = None
    published: tuple[str, ...] = ()
    manifests: tuple[str, ...] = ()
    setup_job: str | None = None
    variables: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    version_file: str | None = None  # pyproject.toml / package.json holding a static version
    library: bool = False
    name: str | None = None  # the name the project gives itself (pyproject, package.json)
    writes: tuple[str, ...] = ()  # what its jobs and tools write (.gitignore patterns, component-relative)
