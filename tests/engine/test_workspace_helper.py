"""``buildyard.engine.workspace`` used alone (the seam for importers and remote executors)."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from buildyard.cache.pathsafe import UnsafePathError
from buildyard.engine.workspace import (
    collect_outputs,
    make_overlay,
    make_workspace,
    overlay_supported,
    remove_workspace,
    workspace_files,
)
from buildyard.plan.build import TriggerContext, build
from buildyard.spec.load import load


def test_make_workspace_copies_git_visible_files_only(make_project, tmp_path: Path) -> None:
    root = make_project({"a.txt": "a\n", "src/b.py": "b\n", "ignored.log": "x\n"}, commit=False)
    (root / ".gitignore").write_text(".buildyard/\nignored.log\nout/\n")
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-qm", "init"], cwd=root, check=True)
    (root / ".buildyard").mkdir()
    (root / ".buildyard/secret").write_text("s")
    (root / "untracked.txt").write_text("u\n")
    (root / "out").mkdir()
    (root / "out/up.bin").write_text("upstream\n")
    (root / "link").symlink_to("a.txt")
    files = workspace_files(root, ["out/up.bin"])
    assert ".buildyard/secret" not in files and "ignored.log" not in files
    assert {"a.txt", "src/b.py", "untracked.txt", "out/up.bin", "link"} <= set(files)
    ws = make_workspace(root, tmp_path / "ws", files)
    assert (ws.path / "src/b.py").read_text() == "b\n"
    assert (ws.path / "out/up.bin").read_text() == "upstream\n"
    assert os.readlink(ws.path / "link") == "a.txt"
    assert not (ws.path / ".buildyard").exists() and not (ws.path / "ignored.log").exists()
    assert (ws.path / ".git").is_file()  # a gitdir pointer, not a copy of the repository
    env = dict(ws.env)
    assert env["BUILDYARD_WORKSPACE"] == str(ws.path)
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ws.path, capture_output=True, text=True, env={**os.environ, **env}
    )
    assert head.returncode == 0 and len(head.stdout.strip()) == 40
    (ws.path / "a.txt").write_text("edited in place\n")  # no hardlink: the project keeps its file
    assert (root / "a.txt").read_text() == "a\n"
    remove_workspace(ws.path)
    assert not ws.path.exists() and not (tmp_path / "ws.git-index").exists()


def test_make_workspace_refuses_git_and_buildyard_paths(tmp_path: Path) -> None:
    (tmp_path / "p/.git").mkdir(parents=True)
    (tmp_path / "p/.git/config").write_text("x")
    with pytest.raises(UnsafePathError):
        make_workspace(tmp_path / "p", tmp_path / "ws", [".git/config"], git=False)
    with pytest.raises(UnsafePathError):
        make_workspace(tmp_path / "p", tmp_path / "ws2", ["../outside"], git=False)


def test_collect_outputs_copies_declared_outputs_only_and_never_through_symlinks(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "dist").mkdir(parents=True)
    (ws / "dist/app.bin").write_text("app")
    (ws / "dist/run.sh").write_text("#!/bin/sh\n")
    (ws / "dist/run.sh").chmod(0o4777)
    (ws / "notes.txt").write_text("not declared")
    dest = tmp_path / "project"
    dest.mkdir()
    assert sorted(collect_outputs(ws, dest, ["dist/"])) == ["dist/app.bin", "dist/run.sh"]
    assert (dest / "dist/app.bin").read_text() == "app"
    assert (dest / "dist/run.sh").stat().st_mode & 0o7777 == 0o755
    assert not (dest / "notes.txt").exists()
    # a symlinked output directory in the project is never written through
    outside = tmp_path / "outside"
    outside.mkdir()
    (dest / "dist/app.bin").unlink()
    (dest / "dist/run.sh").unlink()
    (dest / "dist").rmdir()
    (dest / "dist").symlink_to(outside)
    with pytest.raises(UnsafePathError):
        collect_outputs(ws, dest, ["dist/"])
    assert list(outside.iterdir()) == []
    # nor is a job's symlink to outside its tree brought back
    (ws / "dist/escape").symlink_to("/etc/passwd")
    with pytest.raises(UnsafePathError):
        collect_outputs(ws, tmp_path / "other", ["dist/escape"])


def test_only_colliding_matrix_outputs_are_isolated(tmp_path: Path) -> None:
    file = tmp_path / "buildyard.yml"
    file.write_text(
        "jobs:\n"
        "  cov:\n    matrix: {py: [a, b]}\n    script: [x]\n    artifacts: {paths: [.coverage]}\n"
        "  lint:\n    matrix: {py: [a, b]}\n    script: [x]\n"
        "  pinned:\n    matrix: {py: [a, b]}\n    workspace: shared\n    script: [x]\n"
        "    artifacts: {paths: [out/]}\n"
        "  one:\n    script: [x]\n    artifacts: {paths: [out/]}\n"
    )
    plan = build(load(file), TriggerContext())
    modes = {i.id: (i.workspace, i.workspace_auto) for i in plan.instances.values()}
    assert {v for k, v in modes.items() if k.startswith("cov")} == {("isolated", True)}
    assert {v for k, v in modes.items() if k.startswith("lint")} == {("", False)}
    assert {v for k, v in modes.items() if k.startswith("pinned")} == {("shared", False)}
    assert modes["one"] == ("", False)


def test_overlay_workspace_replaced_directory_and_deleted_file(tmp_path: Path) -> None:
    if not overlay_supported(str(tmp_path)):
        pytest.skip("no overlayfs in a user namespace here (unshare -Urm)")
    project = tmp_path / "project"
    (project / "dist").mkdir(parents=True)
    (project / "dist/stale.txt").write_text("stale\n")
    (project / "keep.txt").write_text("keep\n")
    (project / "gone.txt").write_text("gone\n")
    lower = tmp_path / "lower"
    make_workspace(project, lower, ["dist/stale.txt", "keep.txt", "gone.txt"], git=False, link=True)
    made = make_overlay(lower, tmp_path / "ws", project, ())
    script = "rm -rf dist gone.txt && mkdir dist && echo new > dist/new.txt && echo more >> keep.txt"
    argv = [*shlex.split(made.shell("sh", made.path)), "-c", script]
    done = subprocess.run(argv, cwd=made.path, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    sources = {rel: root for root, rel in made.sources(["dist/", "keep.txt", "gone.txt"])}
    assert sorted(sources) == ["dist/new.txt", "keep.txt"]  # the replaced dir hides its old file
    assert sources["keep.txt"] == made.upper  # copied up, the project's file untouched
    assert (project / "keep.txt").read_text() == "keep\n" and (project / "gone.txt").exists()
    assert (project / "dist/stale.txt").exists()
    remove_workspace(made.path)
    assert not made.upper.exists() and not made.work.exists()


def test_outside_git_every_file_but_buildyard_goes_in(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src/a.c").write_text("int a;\n")
    (tmp_path / ".buildyard").mkdir()
    (tmp_path / ".buildyard/db").write_text("x")
    assert workspace_files(tmp_path) == ["src/a.c"]
