"""The whole server in a real headless Chromium: a wrong password is refused, a maintainer logs in and
approves a waiting deployment from the run page, and the run proceeds (the deployment happens)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from server_testutil import wait_for

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]

PIPELINE = """\
name: shop
jobs:
  build:
    script: ["mkdir -p dist", "echo 'shop build' > dist/app.txt"]
    publish: {name: shop-api, paths: ["dist/*"], version: "1.0.0"}
  deploy:
    needs: [build]
    environment: {name: production, approval: required, promote: false}
    script: cp "$BUILDYARD_ARTIFACT_DIR/app.txt" "$LIVE"
"""


@pytest.fixture
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"], headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def test_login_and_approval_in_the_browser(make_project, serve, cli, monkeypatch, tmp_path, browser) -> None:
    live = tmp_path / "live.txt"
    root = make_project({"buildyard.yml": PIPELINE.replace("$LIVE", str(live))})
    assert cli("-C", root, "keys", "generate").code == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse battery\n"))
    assert cli("-C", root, "user", "create", "mia", "--role", "maintainer", "--password-stdin").code == 0
    operator = cli("-C", root, "token", "create", "--name", "ci", "--role", "operator").out.strip()
    server = serve(root, "--runners", "1", "--metrics-refresh", "0")
    api = server.client(operator)
    queued = api.post("/api/v1/projects/proj/runs", json={}).json()["queued"]

    def entry() -> dict[str, object]:
        return dict(api.get(f"/api/v1/projects/proj/queue/{queued['id']}").json())

    wait_for(lambda: entry()["status"] == "waiting", "the deployment to wait for its approval")
    number = api.get("/api/v1/projects/proj/runs").json()["runs"][0]["number"]

    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()  # type: ignore[attr-defined]
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.goto(f"{server.url}/p/proj/runs/{number}")
    assert "/login" in page.url  # anonymous: sent to the login page
    page.fill("#user", "mia")
    page.fill("#password", "not the password")
    page.click("button[type=submit]")
    assert "wrong user name or password" in page.content()
    page.fill("#password", "correct horse battery")
    page.click("button[type=submit]")
    page.wait_for_url(f"**/p/proj/runs/{number}")  # back where the login was asked for
    approve = page.locator("form.approve button")
    assert approve.count() == 1
    approve.click()
    page.wait_for_load_state("load")
    going = ("waiting", "resuming", "running")
    done = wait_for(lambda: entry() if entry()["status"] not in going else None, "the run")
    assert done["status"] == "success", done
    assert live.read_text() == "shop build\n"  # the approved deployment happened
    deployments = api.get("/api/v1/projects/proj/environments/production/deployments").json()
    rows = deployments["deployments"] if isinstance(deployments, dict) else deployments
    assert rows[0]["approved_by"] == "mia", rows[0]
    assert problems == []


def test_the_api_reference_renders_from_openapi_without_leaving_the_machine(
    make_project, serve, browser, tmp_path
) -> None:
    root = make_project({"buildyard.yml": PIPELINE})
    server = serve(root)
    doc = server.api.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.") and "/api/v1/projects/{project}/runs" in doc["paths"]
    page = browser.new_page()
    problems: list[str] = []
    page.on(
        "console",
        lambda m: problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None,
    )
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    response = page.goto(f"{server.url}/docs")
    assert response is not None and response.status == 200
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(tmp_path / "docs.png"), full_page=True)
    assert problems == []
    assert requested and all(u.startswith((f"{server.url}/", "data:")) for u in requested), requested
    # every operation of the OpenAPI document is on the page, with its parameters
    operations = page.locator("section.op")
    assert operations.count() == sum(
        1 for item in doc["paths"].values() for m in item if m in ("get", "post", "put", "delete")
    )
    trigger = page.locator(
        f"section#{doc['paths']['/api/v1/projects/{project}/runs']['post']['operationId']}"
    )
    assert "POST" in trigger.locator("h3").inner_text() and "Trigger" in trigger.inner_text()
    runs = page.locator(f"section#{doc['paths']['/api/v1/projects/{project}/runs']['get']['operationId']}")
    assert "cursor" in runs.locator("table").inner_text()
    assert page.locator('a[href="/openapi.json"]').count() == 1
    assert page.evaluate("document.scripts.length") == 2  # the dashboard's own htmx and app.js, no more
