"""Users, roles, tokens, sessions, CSRF, the login slowdown and the audit log, through a real server."""

from __future__ import annotations

import io
import re

import httpx
import pytest
from server_testutil import wait_for

PIPELINE = "name: demo\njobs:\n  hello:\n    script: echo hello\n"


def create_user(cli, monkeypatch, root, name: str, role: str, password: str) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    result = cli("-C", root, "user", "create", name, "--role", role, "--password-stdin")
    assert result.code == 0, result.err
    assert result.out == f"user {name} ({role}) created\n"


def create_token(cli, root, name: str, role: str) -> str:
    result = cli("-C", root, "token", "create", "--name", name, "--role", role)
    assert result.code == 0, result.err
    token = result.out.strip()
    assert token.startswith("byt_") and "shown once" in result.err
    return token


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


def login(client: httpx.Client, user: str, password: str, next_url: str = "/") -> httpx.Response:
    page = client.get("/login", params={"next": next_url})
    assert page.status_code == 200
    return client.post(
        "/login",
        data={"user": user, "password": password, "csrf_token": csrf_of(page.text), "next": next_url},
    )


def test_roles_tokens_sessions_csrf_and_audit(make_project, serve, cli, monkeypatch) -> None:
    root = make_project({"buildyard.yml": PIPELINE})
    create_user(cli, monkeypatch, root, "alice", "operator", "correct horse")
    too_short = cli("-C", root, "user", "create", "bob", "--role", "viewer", "--password-stdin")
    assert too_short.code == 2 and "at least 8 characters" in too_short.err
    viewer = create_token(cli, root, "dash", "viewer")
    admin = create_token(cli, root, "ops", "admin")
    listed = cli("-C", root, "token", "list")
    assert "dash" in listed.out and viewer not in listed.out and admin not in listed.out
    server = serve(root)

    anonymous = server.client("")
    refused = anonymous.get("/api/v1/projects/proj/runs")
    assert refused.status_code == 401 and refused.json()["code"] == "unauthenticated"
    assert anonymous.get("/api/v1/projects").status_code == 401
    bad = server.client("byt_not-a-real-token").get("/api/v1/projects")
    assert bad.status_code == 401 and bad.json() == {
        "code": "invalid_token",
        "message": "the bearer token is unknown or revoked",
    }
    as_viewer = server.client(viewer)
    assert as_viewer.get("/api/v1/projects/proj/runs").json() == {"runs": [], "next": None}
    forbidden = as_viewer.post("/api/v1/projects/proj/runs", json={})
    assert forbidden.status_code == 403 and forbidden.json() == {
        "code": "forbidden",
        "message": "operator role required (you are viewer)",
    }
    assert as_viewer.get("/api/v1/audit").status_code == 403
    assert as_viewer.get("/metrics").status_code == 200

    # the browser: the dashboard sends an anonymous visitor to the login page, and back after it
    browser = server.client("", follow_redirects=False)
    page = browser.get("/p/proj")
    assert page.status_code == 303 and page.headers["location"] == "/login?next=%2Fp%2Fproj"
    wrong = login(browser, "alice", "wrong password")
    assert wrong.status_code == 401 and "wrong user name or password" in wrong.text
    ok = login(browser, "alice", "correct horse", "/p/proj")
    assert ok.status_code == 303 and ok.headers["location"] == "/p/proj"
    cookie = next(c for c in ok.headers.get_list("set-cookie") if c.startswith("by_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    me = browser.get("/api/v1/me").json()
    assert (me["name"], me["role"]) == ("alice", "operator")
    dashboard = browser.get("/p/proj", headers={"Accept": "text/html"})
    assert dashboard.status_code == 200 and "text/html" in dashboard.headers["content-type"]
    assert me["csrf_token"] in dashboard.text  # the dashboard's forms carry the session's CSRF token
    no_token = browser.post("/api/v1/projects/proj/runs", data={"branch": "main"})
    assert no_token.status_code == 403 and no_token.json()["code"] == "csrf"
    wrong_token = browser.post("/api/v1/projects/proj/runs", data={"branch": "main", "csrf_token": "x" * 43})
    assert wrong_token.status_code == 403
    posted = browser.post(
        "/api/v1/projects/proj/runs",
        data={"branch": "main", "csrf_token": me["csrf_token"], "next": "/p/proj", "var.COLOR": "blue"},
        headers={"Accept": "text/html"},
    )
    assert posted.status_code == 303 and posted.headers["location"] == "/p/proj"
    # a form may not send the browser to another site
    offsite = browser.post(
        "/api/v1/projects/proj/runs",
        data={"csrf_token": me["csrf_token"], "next": "//evil.example/"},
        headers={"Accept": "text/html", "Referer": f"{server.url}/p/proj?x=1"},
    )
    assert offsite.status_code == 303 and offsite.headers["location"] == "/p/proj"

    def both_finished() -> list[dict[str, object]] | None:
        rows = server.client(admin).get("/api/v1/projects/proj/runs").json()["runs"]
        return rows if len(rows) == 2 and all(r["finished_at"] for r in rows) else None

    runs = wait_for(both_finished, "both runs to finish")
    details = [server.client(admin).get(f"/api/v1/projects/proj/runs/{r['id']}").json() for r in runs]
    assert {d["queue"]["requested_by"] for d in details} == {"alice"}
    assert {"COLOR": "blue"} in [d["variables"] for d in details]
    entries = server.client(admin).get("/api/v1/audit").json()["entries"]
    actions = [(e["actor"], e["action"], e["result"], e["address"]) for e in entries]
    assert ("alice", "run.trigger", "ok", "127.0.0.1") in actions
    assert ("alice", "login", "ok", "127.0.0.1") in actions
    assert ("alice", "login", "error:password", "127.0.0.1") in actions
    # logout ends the session
    out = browser.post("/logout", data={"csrf_token": me["csrf_token"]})
    assert out.status_code == 303
    assert browser.get("/api/v1/projects/proj/runs").status_code == 401

    # tokens over the API: admin only; the value is shown once; revoked tokens stop working
    made = server.client(admin).post("/api/v1/tokens", json={"name": "ci", "role": "operator"})
    assert made.status_code == 201 and made.json()["token"].startswith("byt_")
    listed_api = server.client(admin).get("/api/v1/tokens").json()["tokens"]
    assert made.json()["token"] not in str(listed_api) and {"ci", "dash", "ops"} <= {
        t["name"] for t in listed_api
    }
    assert server.client(admin).delete(f"/api/v1/tokens/{made.json()['id']}").status_code == 200
    assert server.client(made.json()["token"]).get("/api/v1/projects").status_code == 401


def test_failed_logins_slow_down_even_a_right_password(make_project, serve, cli, monkeypatch) -> None:
    root = make_project({"buildyard.yml": PIPELINE})
    create_user(cli, monkeypatch, root, "carol", "viewer", "the right one")
    server = serve(root)
    browser = server.client("", follow_redirects=False)
    for _ in range(5):
        assert login(browser, "carol", "nope nope").status_code == 401
    blocked = login(browser, "carol", "the right one")
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) >= 1
    assert "too many failed logins" in blocked.text
    assert "by_session" not in blocked.headers.get("set-cookie", "")


def test_the_login_form_needs_its_csrf_token(make_project, serve, cli, monkeypatch) -> None:
    root = make_project({"buildyard.yml": PIPELINE})
    create_user(cli, monkeypatch, root, "dave", "viewer", "long enough")
    server = serve(root)
    forged = server.client("", follow_redirects=False).post(
        "/login", data={"user": "dave", "password": "long enough"}
    )
    assert forged.status_code == 403 and "by_session" not in forged.headers.get("set-cookie", "")


@pytest.mark.parametrize("role", ["root", "Admin "])
def test_unknown_roles_are_refused_in_one_line(make_project, cli, role) -> None:
    root = make_project({"buildyard.yml": PIPELINE})
    result = cli("-C", root, "token", "create", "--name", "x", "--role", role)
    assert result.code == 2 and len(result.err.strip().splitlines()) == 1


def test_a_visitor_without_csrf_cookie_gets_one_once_and_the_form_carries_it(
    make_project, serve, cli
) -> None:
    root = make_project({"buildyard.yml": PIPELINE})
    create_token(cli, root, "ops", "admin")  # not an open server: visitors are anonymous
    server = serve(root)
    browser = server.client("", follow_redirects=False)
    first = browser.get("/login")
    cookies = [c for c in first.headers.get_list("set-cookie") if c.startswith("by_csrf=")]
    assert len(cookies) == 1, first.headers
    value = cookies[0].split(";")[0].removeprefix("by_csrf=")
    assert csrf_of(first.text) == value
    assert {"httponly", "samesite=lax", "path=/"} <= {p.strip().lower() for p in cookies[0].split(";")[1:]}
    again = browser.get("/login")  # the client sends the cookie back: no new one, the same token
    assert not [c for c in again.headers.get_list("set-cookie") if c.startswith("by_csrf=")]
    assert csrf_of(again.text) == value
    # a refused bearer token is answered by the middleware itself, as JSON, without a cookie
    refused = server.client("byt_unknown").get("/api/v1/projects")
    assert refused.status_code == 401 and "set-cookie" not in refused.headers
