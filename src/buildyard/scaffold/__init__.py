"""``buildyard init``: look at a repository and write a ``buildyard.yml`` that passes on it first time.

The core is pure: :func:`scaffold` takes a :class:`RepoListing` (every file path and the text of the
small files :func:`wants_content` asks for) and returns the pipeline document; :func:`render` writes it
as commented YAML. :mod:`buildyard.scaffold.repo` is the thin, bounded I/O layer: :func:`read_repo`
makes a listing from a directory, :func:`update_gitignore` adds what the jobs write to ``.gitignore``.
"""

from __future__ import annotations

from buildyard.scaffold.detect import wants_content
from buildyard.scaffold.model import Component, RepoListing, Scaffold, Stack
from buildyard.scaffold.pipeline import scaffold
from buildyard.scaffold.render import render
from buildyard.scaffold.repo import InitOutcome, init_repository, read_repo, update_gitignore

__all__ = [
    "Component",
    "InitOutcome",
    "RepoListing",
    "Scaffold",
    "Stack",
    "init_repository",
    "read_repo",
    "render",
    "scaffold",
    "update_gitignore",
    "wants_content",
]
