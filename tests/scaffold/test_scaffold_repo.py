"""The I/O layer of ``buildyard init``: a bounded read of the repository, and the .gitignore update."""

from __future__ import annotations

import os
from pathlib import Path

from buildyard.scaffold import read_repo, update_gitignore


def test_dependency_trees_are_never_listed_and_only_manifests_are_read(make_project) -> None:
    root = make_project({"package.json": '{"name": "n"}', "index.js": "x", "src/app.py": "print(1)\n"})
    (root / "node_modules" / "left-pad").mkdir(parents=True)
    (root / "node_modules" / "left-pad" / "package.json").write_text("{}")
    (root / "target" / "debug").mkdir(parents=True)
    (root / "target" / "debug" / "Cargo.toml").write_text("")
    listing = read_repo(root)
    assert "node_modules/left-pad/package.json" not in listing.files
    assert "target/debug/Cargo.toml" not in listing.files
    assert {"package.json", "index.js", "src/app.py", ".gitignore"} <= set(listing.files)
    assert listing.contents == {"package.json": '{"name": "n"}'}  # index.js and app.py are not read
    assert listing.name == "proj" and not listing.truncated


def test_outside_git_the_walk_skips_the_same_trees(tmp_path: Path) -> None:
    (tmp_path / ".venv" / "lib").mkdir(parents=True)
    (tmp_path / ".venv" / "lib" / "pyproject.toml").write_text("")
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    assert read_repo(tmp_path).files == ("pyproject.toml",)


def test_the_listing_and_the_reads_are_capped(make_project) -> None:
    root = make_project({f"f{i:03}.txt": "" for i in range(30)} | {"package.json": "x" * 5000})
    listing = read_repo(root, max_files=10, max_file_bytes=100)
    assert len(listing.files) == 10 and listing.truncated
    big = read_repo(root, max_file_bytes=100)
    assert big.contents["package.json"] == "x" * 100


def test_a_symlink_or_a_fifo_named_like_a_manifest_is_not_read(make_project, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read")
    root = make_project({"index.js": ""})
    (root / "package.json").symlink_to(secret)
    os.mkfifo(root / "Makefile")  # opening it blocking would hang
    listing = read_repo(root)
    assert "package.json" not in listing.contents and "Makefile" not in listing.contents


def test_gitignore_gets_only_the_missing_patterns(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text(".buildyard/\nreports/")  # no final newline
    added = update_gitignore(tmp_path, (".buildyard/", "/reports/", "/dist/", "/web/node_modules/"))
    assert added == ["/dist/", "/web/node_modules/"]
    assert (tmp_path / ".gitignore").read_text() == (
        ".buildyard/\nreports/\n# written by the jobs of buildyard.yml (buildyard init)\n"
        "/dist/\n/web/node_modules/\n"
    )
    assert update_gitignore(tmp_path, ("/dist/",)) == []
