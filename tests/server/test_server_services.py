"""The server's services without HTTP, on SQLite and PostgreSQL: queue, auth, secrets, audit, config."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from buildyard.errors import NotFoundError, UsageError
from buildyard.server.audit import AuditLog
from buildyard.server.auth import FREE_FAILURES, Auth, Role
from buildyard.server.config import ConfigError, load_config, single_project
from buildyard.server.queue import AlreadyFinished, RunQueue
from buildyard.server.secrets import SecretsKeyError, SecretStore, load_key
from buildyard.server.state import ServerState
from buildyard.store.history import RunRecord, SqlHistory


@pytest.fixture
def store(history_url: str):
    history = SqlHistory(history_url)
    yield history
    history.close()


def test_claims_are_exclusive_and_in_queue_order(store) -> None:
    queue = RunQueue(store.engine)
    ids = [
        queue.enqueue(project="p", event="push", branch="main", sha=f"{i:040x}", requested_by="t").id
        for i in range(12)
    ]
    claimed: list[str] = []
    lock = threading.Lock()

    def runner(name: str) -> None:
        while (entry := queue.claim(name)) is not None:
            with lock:
                claimed.append(entry.id)

    threads = [threading.Thread(target=runner, args=(f"r{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(ids) and len(set(claimed)) == len(ids)
    assert queue.claim("late") is None
    entry = queue.get(ids[0])
    assert entry.status == "running" and entry.queue_s is not None and entry.queue_s >= 0


def test_cancel_queued_executing_and_finished(store) -> None:
    queue = RunQueue(store.engine)
    queued = queue.enqueue(project="p", event="push", branch="main", sha="a" * 40, requested_by="t")
    assert queue.cancel(queued.id).status == "cancelled"
    running = queue.enqueue(project="p", event="push", branch="main", sha="b" * 40, requested_by="t")
    assert queue.claim("r") is not None
    assert queue.cancel(running.id).status == "cancelling"
    assert queue.cancel(running.id).status == "cancelling"  # idempotent while it stops
    with pytest.raises(AlreadyFinished, match=r"already finished \(cancelled\)"):
        queue.cancel(queued.id)
    assert queue.counts() == {("p", "cancelling"): 1}


def test_passwords_tokens_sessions_and_login_slowdown(store) -> None:
    auth = Auth(store.engine)
    assert not auth.configured()
    auth.create_user("alice", Role.MAINTAINER, "a long password")
    assert auth.configured()
    with pytest.raises(UsageError, match="exists"):
        auth.create_user("alice", Role.VIEWER, "another password")
    stored = store.engine.connect().exec_driver_sql("SELECT password_hash FROM server_users").scalar()
    assert stored.startswith("scrypt$16384$8$1$") and "a long password" not in stored
    assert auth.check_password("alice", "a long password") == auth.check_password("alice", "a long password")
    assert auth.check_password("alice", "wrong") is None and auth.check_password("nobody", "x" * 10) is None
    value, info = auth.create_token("ci", Role.OPERATOR, created_by="t")
    user = auth.token_user(value)
    assert user is not None and (user.name, user.role) == ("token:ci", "operator")
    assert user.may(Role.VIEWER) and user.may(Role.OPERATOR) and not user.may(Role.MAINTAINER)
    assert value not in str(auth.list_tokens())
    auth.revoke_token(info.id)
    assert auth.token_user(value) is None
    cookie, session = auth.open_session(auth.check_password("alice", "a long password"))  # type: ignore[arg-type]
    found = auth.session(cookie)
    assert found is not None and found.user.name == "alice" and found.csrf == session.csrf
    auth.close_session(cookie)
    assert auth.session(cookie) is None
    keys = ["user:alice", "addr:10.0.0.1"]
    for _ in range(FREE_FAILURES):
        assert auth.login_delay(keys) == 0
        auth.login_failed(keys)
    assert 0 < auth.login_delay(keys) <= 2
    auth.login_failed(keys)
    assert 2 < auth.login_delay(keys) <= 4
    auth.login_succeeded(keys)
    assert auth.login_delay(keys) == 0


def test_secrets_are_sealed_bound_to_their_row_and_need_the_key(store, tmp_path: Path) -> None:
    key = load_key(tmp_path)
    assert (tmp_path / "secrets.key").stat().st_mode & 0o777 == 0o600
    assert load_key(tmp_path) == key
    secrets = SecretStore(store.engine, key)
    secrets.set("p", "TOKEN", "hunter2-value", actor="t")
    secrets.set("p", "TOKEN", "rotated-value", actor="t")
    assert secrets.values("p") == {"TOKEN": "rotated-value"}
    assert [s.name for s in secrets.list("p")] == ["TOKEN"] and secrets.values("q") == {}
    with pytest.raises(UsageError, match="letters, digits"):
        secrets.set("p", "BAD-NAME", "v", actor="t")
    other = SecretStore(store.engine, load_key(tmp_path / "other"))
    with pytest.raises(SecretsKeyError, match=r"does not open with this data directory's secrets\.key"):
        other.values("p")
    # a sealed value moved to another project does not open there
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE server_secrets SET project = 'q'")
    with pytest.raises(SecretsKeyError):
        secrets.values("q")
    secrets.set("p", "GONE", "x", actor="t")
    secrets.remove("p", "GONE")
    with pytest.raises(NotFoundError):
        secrets.remove("p", "GONE")


def test_audit_pages_newest_first(store) -> None:
    audit = AuditLog(store.engine)
    for i in range(5):
        audit.record(actor="a", action="run.trigger", obj=f"p@{i}", address="127.0.0.1")
    first = audit.entries(limit=2)
    assert [e.object for e in first] == ["p@4", "p@3"]
    assert [e.object for e in audit.entries(before=first[-1].id, limit=10)] == ["p@2", "p@1", "p@0"]


def test_runs_are_listed_by_cursor_with_filters(make_project, tmp_path: Path) -> None:
    root = make_project({"buildyard.yml": "jobs:\n  a:\n    script: 'true'\n"})
    state = ServerState(single_project(root, data_dir=tmp_path / "data"))
    try:
        history = state.sql_history("proj")
        now = time.time()
        for i in range(7):
            history.create_run(
                RunRecord(
                    id=f"{i:032x}",
                    pipeline="demo",
                    number=0,
                    status="success" if i % 2 else "failed",
                    event="push",
                    created_at=now + (i // 2),  # pairs share a timestamp: the id breaks ties
                    branch="main" if i < 5 else "dev",
                )
            )
        seen: list[int] = []
        cursor = None
        while True:
            page, cursor = state.list_runs("proj", limit=3, cursor=cursor)
            seen += [r.number for r in page]
            if cursor is None:
                break
        assert seen == [7, 6, 5, 4, 3, 2, 1]
        failed, nxt = state.list_runs("proj", status="failed", branch="main")
        assert [r.number for r in failed] == [5, 3, 1] and nxt is None
        with pytest.raises(UsageError, match="invalid cursor"):
            state.list_runs("proj", cursor="%%%")
        with pytest.raises(NotFoundError):
            state.run("nope", "1")
    finally:
        state.close()


def test_config_errors_name_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "server.yml"
    cases = {
        "projects:\n  - name: a\n    repo: x\n    colour: red\n": ":4: unknown project key 'colour'",
        "projects:\n  - name: 'a b'\n    repo: x\n": ":2: project name 'a b' must be",
        "projects: []\n": ":1: 'projects' must be a list",
        "projects:\n  - repo: x\n": ":2: project without 'name'",
        "prjects: []\n": ":1: unknown key 'prjects'",
        "projects:\n  - name: a\n    repo: x\n  - name: a\n    repo: y\n": ":4: project 'a' is listed twice",
        "projects: [\n": "invalid YAML",
    }
    for text, expected in cases.items():
        path.write_text(text)
        with pytest.raises(ConfigError) as info:
            load_config(path)
        assert str(info.value).startswith(str(path)) and expected in str(info.value), (text, str(info.value))
        assert "\n" not in str(info.value)
    path.write_text(
        "db: sqlite:///x.db\nprojects:\n  - name: shop\n    repo: ../shop\n    anonymous_read: true\n"
    )
    config = load_config(path)
    (project,) = config.projects
    assert project.repo == str((tmp_path.parent / "shop").resolve()) and project.anonymous_read
    assert project.root == tmp_path / ".buildyard-server" / "projects" / "shop"
    assert config.db_url == "sqlite:///x.db" and project.default_branch == "main"
    with pytest.raises(ConfigError, match="not in a git repository"):
        single_project(tmp_path)


def test_the_dashboard_source_shape(make_project, tmp_path: Path) -> None:
    from buildyard.store.history import JobRecord

    root = make_project({"buildyard.yml": "jobs:\n  a:\n    script: 'true'\n"})
    state = ServerState(single_project(root, data_dir=tmp_path / "data"))
    try:
        (project,) = state.projects()
        assert (project.name, project.root, project.default_branch, project.anonymous_read) == (
            "proj",
            root.resolve(),
            "main",
            False,
        )
        history = state.history("proj")
        assert history is state.history("proj")  # shared, opened once
        entry = state.trigger("proj", requested_by="alice", variables={"A": "1"})
        (queued,) = state.queue("proj")
        assert (queued.id, queued.status, queued.requested_by, queued.run_id) == (
            entry.id,
            "queued",
            "alice",
            None,
        )
        assert state.queue("other") == [] and len(state.queue()) == 1
        run = history.create_run(
            RunRecord(id="f" * 32, pipeline="demo", number=0, status="success", event="push", created_at=1.0)
        )
        inside = root / ".buildyard" / "logs" / "demo" / "1" / "a.log"
        inside.parent.mkdir(parents=True)
        inside.write_text("ok\n")
        outside = tmp_path / "secret.txt"
        outside.write_text("not yours\n")
        history.save_jobs(
            [
                JobRecord(run_id=run.id, id="a", job="a", status="success", log_path=str(inside)),
                JobRecord(run_id=run.id, id="b", job="b", status="success", log_path=str(outside)),
            ],
            insert=True,
        )
        assert state.log_file("proj", run.id, "a") == inside.resolve()
        assert state.log_file("proj", "1", "b") is None  # a recorded path outside the project's home
        with pytest.raises(UsageError, match="variable name"):
            state.trigger("proj", requested_by="x", variables={"1BAD": "v"})
        with pytest.raises(UsageError, match="unknown event"):
            state.trigger("proj", requested_by="x", event="nope")
        with pytest.raises(UsageError, match="not a commit sha"):
            state.trigger("proj", requested_by="x", sha="--upload-pack=evil")
        with pytest.raises(UsageError, match="invalid branch name"):
            state.trigger("proj", requested_by="x", branch="-x")
    finally:
        state.close()
