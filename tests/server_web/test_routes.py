"""The dashboard over real HTTP (uvicorn on 127.0.0.1): HTML and the same data as JSON, who sees
which buttons, anonymous access, raw logs and the SSE follow of a finished job."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from buildyard.server.web import data
from buildyard.server.web.source import ProjectDirSource

VIEWS = [
    "/",
    "/p/yard",
    "/p/yard/runs/{run}",
    "/p/yard/runs/{run}/jobs/build/log",
    "/p/yard/metrics",
    "/p/yard/tests",
    "/p/yard/artifacts",
]


def _run_id(source: ProjectDirSource, number: int = 2) -> str:
    return source.history("yard").get_run(str(number)).id


def test_every_view_serves_html_and_the_same_data_as_json(yard_source, serve, client: httpx.Client) -> None:
    served = serve(yard_source)
    run = _run_id(yard_source)
    for view in VIEWS:
        url = served.url + view.format(run=run)
        page = client.get(url)
        assert page.status_code == 200, (url, page.text[:500])
        assert page.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        by_accept = client.get(url, headers={"Accept": "application/json"})
        by_query = client.get(url, params={"format": "json"})
        assert by_accept.headers["content-type"] == "application/json"
        assert by_accept.json() == by_query.json()
    assert (
        client.get(f"{served.url}/p/yard/runs/{run}", params={"format": "json"}).json()["dag"]
        == (data.run_data(yard_source, "yard", run)["dag"])
    )
    runs = client.get(f"{served.url}/p/yard", params={"format": "json", "status": "success"}).json()
    assert [r["number"] for r in runs["runs"]] == [1]


def test_run_page_draws_dag_gantt_and_status_words(yard_source, serve, client: httpx.Client) -> None:
    served = serve(yard_source)
    run = _run_id(yard_source)
    html = client.get(f"{served.url}/p/yard/runs/{run}").text
    assert '<svg class="dag"' in html and '<svg class="gantt"' in html
    assert 'class="node s-failed crit"' in html  # test: failed, on the critical path
    assert "✗</span> failed" in html and "✓</span> success" in html  # icon and word, not colour alone
    assert f'href="/p/yard/runs/{run}/jobs/test/log"' in html
    assert "1 failing test(s)" in html  # the gate's reason


def test_buttons_follow_the_role(yard_source, serve, client: httpx.Client) -> None:
    served = serve(yard_source)
    run = _run_id(yard_source)

    def page(path: str, who: str) -> str:
        return client.get(served.url + path, headers={"X-Test-User": who}).text

    for who, retry, rollback in (
        ("v:viewer", False, False),
        ("o:operator", True, False),
        ("m:maintainer", True, True),
    ):
        run_page = page(f"/p/yard/runs/{run}", who)
        assert (f"/api/v1/projects/yard/runs/{run}/retry" in run_page) is retry, who
        assert (f"/api/v1/projects/yard/runs/{run}/jobs/test/retry" in run_page) is retry, who
        artifacts = page("/p/yard/artifacts", who)
        assert ("/api/v1/projects/yard/environments/dev/rollback" in artifacts) is rollback, who
        assert ("Trigger a run" in page("/p/yard", who)) is retry, who
    assert 'name="csrf_token" value="test-csrf-token"' in page(f"/p/yard/runs/{run}", "o:operator")


def test_anonymous_visitors_log_in_unless_the_project_is_public(
    yard: Path, serve, client: httpx.Client
) -> None:
    private = ProjectDirSource(yard, name="yard")
    public = ProjectDirSource(yard, name="yard", anonymous_read=True)
    try:
        closed = serve(private, user=None, header_users=False)
        page = client.get(f"{closed.url}/p/yard/metrics?days=7")
        assert (
            page.status_code == 303
            and page.headers["location"] == "/login?next=%2Fp%2Fyard%2Fmetrics%3Fdays%3D7"
        )
        assert client.get(f"{closed.url}/", headers={"Accept": "application/json"}).status_code == 401
        assert client.get(f"{closed.url}/p/yard/runs/1/jobs/build/log/raw").status_code == 303
        assert client.get(f"{closed.url}/p/yard/runs/1/jobs/build/log/stream").status_code == 401
        opened = serve(public, user=None, header_users=False)
        page = client.get(f"{opened.url}/p/yard")
        assert page.status_code == 200 and "log in" in page.text and "Trigger a run" not in page.text
    finally:
        private.close()
        public.close()


def test_errors_are_one_line_with_the_right_status(yard_source, serve, client: httpx.Client) -> None:
    served = serve(yard_source)
    cases = {
        "/p/nope": (404, "no project 'nope'"),
        "/p/yard/runs/999": (404, "no run '999'"),
        "/p/yard?cursor=zzz": (400, "invalid cursor"),
        "/p/yard/metrics?days=many": (400, "parameter 'days' must be a whole number"),
        "/p/yard/runs/1/jobs/nope/log": (404, "has no job 'nope'"),
        "/p/yard/artifacts?view=sbom&ref=ghost": (404, "no artifact named 'ghost'"),
    }
    for path, (status, message) in cases.items():
        got = client.get(served.url + path, headers={"Accept": "application/json"})
        assert got.status_code == status, path
        assert message in got.json()["message"] and "\n" not in got.json()["message"], path
        assert client.get(served.url + path).status_code == status


def test_raw_log_download_and_follow_of_a_finished_job(yard_source, serve, client: httpx.Client) -> None:
    served = serve(yard_source)
    run = _run_id(yard_source, 1)
    raw = client.get(f"{served.url}/p/yard/runs/{run}/jobs/build/log/raw")
    assert raw.status_code == 200 and raw.content.startswith(b"\x1b[32mgreen\x1b[0m <b>&amp; tag\n")
    assert raw.headers["content-disposition"] == 'attachment; filename="1-build.log"'
    with client.stream("GET", f"{served.url}/p/yard/runs/{run}/jobs/build/log/stream") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        body = "".join(stream.iter_text())
    events = [block for block in body.split("\n\n") if block.startswith(("id:", "event:"))]
    lines = json.loads(events[0].split("data: ", 1)[1])["lines"]
    assert lines[0] == {"n": 1, "html": '<span class="f2">green</span> &lt;b&gt;&amp;amp; tag'}
    assert events[-1] == 'event: end\ndata: {"status": "success"}'
    resumed = client.get(
        f"{served.url}/p/yard/runs/{run}/jobs/build/log/stream",
        headers={"Last-Event-ID": events[0].split("\n")[0][4:]},
    ).text
    assert "green" not in resumed and "event: end" in resumed


def test_vendored_assets_are_served_with_their_licenses_in_the_package(
    serve, yard_source, client: httpx.Client
) -> None:
    served = serve(yard_source)
    from buildyard.server import web

    static = Path(web.__file__).parent / "static" / "vendor"
    assert {"htmx.LICENSE", "uPlot.LICENSE"} <= {p.name for p in static.iterdir()}
    for name in ("vendor/htmx-2.0.11.min.js", "vendor/uPlot-1.6.32.iife.min.js", "app.js", "app.css"):
        got = client.get(f"{served.url}/static/web/{name}")
        assert got.status_code == 200 and len(got.content) > 1000, name
    assert client.get(f"{served.url}/static/web/../routes.py").status_code == 404


@pytest.mark.parametrize("days", ["0", "400"])
def test_metrics_range_is_clamped(yard_source, serve, client: httpx.Client, days: str) -> None:
    served = serve(yard_source)
    got = client.get(f"{served.url}/p/yard/metrics", params={"days": days, "format": "json"}).json()
    assert got["days"] == (1 if days == "0" else 365)


def test_live_fragments_are_the_parts_htmx_swaps(yard_source, serve, client: httpx.Client) -> None:
    served = serve(yard_source)
    page = client.get(f"{served.url}/p/yard", params={"status": "success"}).text
    # the runs table re-reads itself (every 10 s while nothing runs) with the page's own filters
    assert 'hx-get="/p/yard?status=success&amp;fragment=rows"' in page and 'hx-trigger="every 10s"' in page
    rows = client.get(f"{served.url}/p/yard", params={"status": "success", "fragment": "rows"}).text
    assert (
        rows.startswith('<div id="runs"') and "<html" not in rows and ">#1</a>" in rows and ">#2<" not in rows
    )
    assert "fragment=rows&amp;fragment" not in rows  # the poll URL does not grow
    run = _run_id(yard_source)
    body = client.get(f"{served.url}/p/yard/runs/{run}", params={"fragment": "body"}).text
    assert body.startswith('<div id="run"') and "<html" not in body
    assert "hx-trigger" not in body  # a finished run is not polled
