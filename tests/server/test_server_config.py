"""``serve --config server.yml``: several projects, a repository reached by URL (mirrored), anonymous
read per project, the CLI's admin and client commands, and the whole state in PostgreSQL."""

from __future__ import annotations

import json

import pytest
from server_testutil import wait_for

from by_testutil import git

PIPELINE = "name: {name}\njobs:\n  hello:\n    script: echo hello from {name}\n"


def write_config(tmp_path, make_project, db: str = "") -> tuple:
    shop = make_project({"buildyard.yml": PIPELINE.format(name="shop")}, name="shop")
    docs = make_project({"buildyard.yml": PIPELINE.format(name="docs")}, name="docs")
    git(docs, "branch", "-m", "main", "trunk")
    config = tmp_path / "server.yml"
    config.write_text(
        (f"db: {db}\n" if db else "")
        + "projects:\n"
        + "  - name: shop\n    repo: shop\n    default_branch: main\n"
        + f"  - name: docs\n    repo: file://{docs}\n    default_branch: trunk\n    anonymous_read: true\n"
    )
    return config, shop, docs


def finished(client, project: str, entry_id: str) -> dict | None:
    e = client.get(f"/api/v1/projects/{project}/queue/{entry_id}").json()
    return e if e["status"] not in ("queued", "running", "waiting", "resuming", "cancelling") else None


def run_both(cli, serve, config, tmp_path, monkeypatch) -> None:
    made = cli("token", "create", "--config", config, "--name", "ci", "--role", "operator")
    assert made.code == 0, made.err
    token = made.out.strip()
    server = serve(None, "--config", config, token=token)
    assert "(shop, docs; 1 runner)" in server.log()
    names = [p["name"] for p in server.api.get("/api/v1/projects").json()["projects"]]
    assert names == ["shop", "docs"]
    # the CLI as a client of the running server
    monkeypatch.setenv("BUILDYARD_TOKEN", token)
    queued = cli("trigger", "--server", server.url, "--project", "docs", "--json")
    assert queued.code == 0, queued.err
    docs_entry = json.loads(queued.out)
    assert docs_entry["branch"] == "trunk" and docs_entry["requested_by"] == "token:ci"
    # ... or enqueueing straight into the state (the server's runners pick it up)
    local = cli("trigger", "--config", config, "--project", "shop", "--var", "X=1", "--json")
    assert local.code == 0, local.err
    shop_entry = json.loads(local.out)
    for project, entry in (("docs", docs_entry), ("shop", shop_entry)):
        done = wait_for(lambda p=project, e=entry: finished(server.api, p, e["id"]), f"the {project} run")
        assert done["status"] == "success", done
    log = server.api.get("/api/v1/projects/docs/runs/1/jobs/hello/log").text
    assert log == "hello from docs\n"
    assert (tmp_path / ".buildyard-server" / "mirrors" / "docs.git").is_dir()
    assert (tmp_path / ".buildyard-server" / "projects" / "shop" / ".buildyard" / "buildyard.db").exists()
    # anonymous read: docs only
    anonymous = server.client("")
    assert anonymous.get("/api/v1/projects/docs/runs").status_code == 200
    assert anonymous.get("/api/v1/projects/shop/runs").status_code == 401
    assert [p["name"] for p in anonymous.get("/api/v1/projects").json()["projects"]] == ["docs"]
    assert anonymous.post("/api/v1/projects/docs/runs", json={}).status_code == 401
    monkeypatch.delenv("BUILDYARD_TOKEN")
    refused = cli("trigger", "--server", server.url, "--project", "shop")
    assert refused.code == 2 and refused.err.strip() == (
        "buildyard: error: server: unauthenticated: log in or send 'Authorization: Bearer TOKEN' "
        "(set BUILDYARD_TOKEN)"
    )
    unknown = cli("trigger", "--config", config, "--project", "nope")
    assert unknown.code == 2 and "no project 'nope'" in unknown.err
    assert cli("trigger", "--config", config, "--project", "shop", "--branch", "nope").err.strip() == (
        "buildyard: error: project shop has no branch 'nope'"
    )


def test_several_projects_from_a_config_file(make_project, serve, cli, tmp_path, monkeypatch) -> None:
    config, _shop, _docs = write_config(tmp_path, make_project)
    run_both(cli, serve, config, tmp_path, monkeypatch)


@pytest.mark.postgres
def test_the_whole_server_state_in_postgresql(
    make_project, serve, cli, tmp_path, monkeypatch, postgres_url
) -> None:
    config, _shop, _docs = write_config(tmp_path, make_project, db=postgres_url)
    run_both(cli, serve, config, tmp_path, monkeypatch)
    assert not (tmp_path / ".buildyard-server" / "server.db").exists()
