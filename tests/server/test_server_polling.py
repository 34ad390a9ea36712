"""Repository polling through a real ``buildyard serve``: ``poll: 1s`` on a project whose repository is
a bare repository on disk; new heads and tags run once each, also across a kill -9 and restart."""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

import pytest
from server_testutil import stop, wait_for

from buildyard.server.config import ConfigError, load_config
from buildyard.server.polling import event_of, parse_ls_remote
from by_testutil import git

PIPELINE = """\
name: polled
on:
  push:
    branches: ["**"]
    tags: ["v*"]
jobs:
  hello:
    script: echo "polled $BUILDYARD_BRANCH"
"""
FINAL = ("success", "failed", "cancelled", "abandoned", "error", "skipped")


def _entries(data_dir: Path) -> list[tuple[str, str, str, str, str]]:
    with sqlite3.connect(data_dir / "server.db") as db:
        return db.execute(
            "SELECT event, branch, sha, status, requested_by FROM server_queue ORDER BY enqueued_at"
        ).fetchall()


def _seen(data_dir: Path) -> int:
    try:
        with sqlite3.connect(data_dir / "server.db") as db:
            return int(db.execute("SELECT count(*) FROM server_polled_refs").fetchone()[0])
    except sqlite3.OperationalError:  # not migrated yet
        return 0


def _commit(work: Path, name: str, branch: str = "main") -> str:
    git(work, "checkout", "-q", "-B", branch)
    (work / f"{name}.txt").write_text(name)
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", name)
    git(work, "push", "-q", "origin", branch)
    return git(work, "rev-parse", "HEAD").strip()


def test_polling_queues_new_heads_and_tags_once_across_restarts(tmp_path: Path, make_project, serve) -> None:
    work = make_project({"buildyard.yml": PIPELINE}, name="work")
    remote = tmp_path / "polled.git"
    git(tmp_path, "clone", "-q", "--bare", str(work), str(remote))
    git(work, "remote", "add", "origin", str(remote))
    git(work, "tag", "old-tag")
    git(work, "push", "-q", "origin", "old-tag")
    config = tmp_path / "server.yml"
    config.write_text(
        f"projects:\n  - name: polled\n    repo: file://{remote}\n    default_branch: main\n    poll: 1s\n"
    )
    data_dir = tmp_path / ".buildyard-server"
    first = serve(None, "--config", config, "--runners", "2")
    wait_for(lambda: _seen(data_dir) == 2, "the first poll to record main and old-tag")
    time.sleep(1.5)
    assert _entries(data_dir) == []  # what the repository held before polling started queues nothing

    main = _commit(work, "one")
    wait_for(lambda: len(_entries(data_dir)) == 1, "the new head of main to be queued")
    wait_for(lambda: _entries(data_dir)[0][3] in FINAL, "its run to end")
    assert _entries(data_dir) == [("push", "main", main, "success", "poll")]

    feature = _commit(work, "two", branch="feature/x")
    git(work, "tag", "-a", "-m", "release", "v1.0")  # annotated: its commit is the peeled sha
    git(work, "push", "-q", "origin", "v1.0")
    wait_for(lambda: len(_entries(data_dir)) == 3, "the new branch and the tag to be queued")
    stop(first, signal.SIGKILL)

    second = serve(None, "--config", config, "--runners", "2")
    wait_for(lambda: all(e[3] in FINAL for e in _entries(data_dir)), "every entry to be closed")
    time.sleep(2.5)  # two polls of the restarted server: nothing seen before is queued again
    entries = _entries(data_dir)
    assert len(entries) == 3, entries
    assert {(e[0], e[1], e[2], e[4]) for e in entries[1:]} == {
        ("push", "feature/x", feature, "poll"),
        ("tag", "", feature, "poll"),
    }
    last = _commit(work, "three")
    wait_for(lambda: len(_entries(data_dir)) == 4, "the moved head of main to be queued")
    wait_for(lambda: _entries(data_dir)[3][3] in FINAL, "its run to end")
    assert _entries(data_dir)[3] == ("push", "main", last, "success", "poll")
    runs = second.api.get("/api/v1/projects/polled/runs", params={"trigger": "poll"}).json()["runs"]
    assert any(r["sha"] == last and r["branch"] == "main" for r in runs)


def test_ls_remote_output_is_parsed_with_tags_peeled() -> None:
    a, b, c = "a" * 40, "b" * 40, "c" * 40
    text = f"{a}\tHEAD\n{a}\trefs/heads/main\n{b}\trefs/tags/v1\n{c}\trefs/tags/v1^{{}}\nzz\trefs/heads/x\n"
    assert parse_ls_remote(text) == {"refs/heads/main": a, "refs/tags/v1": c}
    assert event_of("refs/tags/v1", c).tag == "v1"
    assert event_of("refs/heads/a/b", a).branch == "a/b"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("    poll: soon", "poll: invalid duration 'soon'"),
        ("    poll: 100ms", "poll is at least 1s (got 0.1s)"),
    ],
)
def test_bad_poll_intervals_are_one_line_errors(tmp_path: Path, line: str, message: str) -> None:
    config = tmp_path / "server.yml"
    config.write_text(f"projects:\n  - name: p\n    repo: /nowhere\n{line}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert str(caught.value).startswith(f"{config}:4: {message}")


def test_bad_chain_limit_is_a_one_line_error(tmp_path: Path) -> None:
    config = tmp_path / "server.yml"
    config.write_text("trigger_chain_limit: many\nprojects:\n  - name: p\n    repo: /nowhere\n")
    with pytest.raises(ConfigError, match=r"server\.yml:1: trigger_chain_limit is a whole number"):
        load_config(config)
    config.write_text("trigger_chain_limit: 5\nprojects:\n  - name: p\n    repo: /nowhere\n    poll: 2m\n")
    loaded = load_config(config)
    assert loaded.chain_limit == 5 and loaded.projects[0].poll == 120.0
