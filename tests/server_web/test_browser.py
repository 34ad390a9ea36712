"""The dashboard in a real headless Chromium (Debian's ``chromium``, driven by Playwright): every view
loads without console errors (a screenshot of each is kept), a job's log follows live while the job
prints, and a viewer does not see the approve button a maintainer sees."""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dashboard_testutil import make_repo, wait_for
from playwright.sync_api import Browser, Page, sync_playwright

from buildyard.server.web.source import ProjectDirSource
from buildyard.server.web.standalone import User

CHROMIUM = Path("/usr/bin/chromium")
TICK = re.compile(r"tick (\d) ([\d.]+)")
NO_CHROMIUM = "needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=NO_CHROMIUM,
    ),
]


@pytest.fixture
def browser() -> Iterator[Browser]:
    """A headless Chromium for one test (closed after it: no process outlives the test)."""
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"], headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def _watch(page: Page) -> list[str]:
    """Console errors and uncaught exceptions of ``page``, collected as they happen."""
    problems: list[str] = []
    page.on(
        "console",
        lambda msg: problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None,
    )
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    return problems


def test_each_view_loads_without_console_errors(yard_source, serve, browser: Browser, tmp_path: Path) -> None:
    served = serve(yard_source, user=User("ana", "maintainer"), header_users=False)
    run = yard_source.history("yard").get_run("2").id
    views = {
        "projects": "/",
        "runs": "/p/yard",
        "run": f"/p/yard/runs/{run}",
        "log": f"/p/yard/runs/{run}/jobs/build/log",
        "metrics": "/p/yard/metrics",
        "tests": "/p/yard/tests?test=test_add",
        "artifacts": "/p/yard/artifacts",
    }
    shots = tmp_path / "screenshots"
    shots.mkdir()
    for scheme, width in (("light", 1280), ("dark", 390)):  # a laptop, and a phone in dark mode
        context = browser.new_context(viewport={"width": width, "height": 900}, color_scheme=scheme)
        page = context.new_page()
        problems = _watch(page)
        for name, path in views.items():
            response = page.goto(served.url + path, wait_until="load")
            assert response is not None and response.status == 200, name
            if name == "metrics":
                page.wait_for_selector(".chart canvas")
                assert page.locator(".chart canvas").count() >= 3  # uPlot drew the three charts
            page.screenshot(path=str(shots / f"{name}-{scheme}.png"), full_page=True)
            # the page itself never scrolls sideways: wide tables and graphs scroll in their own box
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 1, f"{name} at {width}px is {overflow}px too wide"
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert (background == "rgb(13, 17, 23)") is (scheme == "dark")
        assert problems == [], problems
        context.close()
    assert len(list(shots.glob("*.png"))) == 14


LIVE = """\
name: live
jobs:
  ticker:
    script: |
      sleep 2
      for i in 1 2 3 4 5 6 7 8 9; do echo "tick $i $(date +%s.%N)"; sleep 0.3; done
"""

ARRIVALS = """
window.__arrivals = {};
window.__initial = null;
new MutationObserver((records) => {
  for (const r of records) for (const n of r.addedNodes)
    if (n.nodeType === 1 && n.classList.contains("ln")) window.__arrivals[n.id] = [Date.now(), n.textContent];
}).observe(document, {childList: true, subtree: true});
document.addEventListener("DOMContentLoaded", () => {
  window.__initial = Array.from(document.querySelectorAll(".ln")).map((n) => n.id);
});
"""


def test_a_log_follows_live_while_the_job_prints(tmp_path: Path, serve, background, browser: Browser) -> None:
    root = make_repo(tmp_path / "live", {"buildyard.yml": LIVE, ".gitignore": ".buildyard/\n"})
    source = ProjectDirSource(root, name="live")
    try:
        served = serve(source)
        proc = background("-C", root, "run")
        history = source.history("live")

        def running() -> bool:
            runs = history.list_runs(limit=1)
            return bool(runs) and any(j.status == "running" for j in history.jobs(runs[0].id))

        wait_for(running, "the ticker to start")
        run = history.list_runs(limit=1)[0]
        page = browser.new_page()
        problems = _watch(page)
        page.add_init_script(ARRIVALS)
        page.goto(f"{served.url}/p/live/runs/{run.id}/jobs/ticker/log")
        assert page.locator("#follow-state").inner_text() == "following live"
        page.wait_for_selector("#log[data-finished]", timeout=30_000)
        assert proc.wait(30) == 0
        assert page.locator("#follow-state").inner_text() == "finished: success"
        assert page.locator("#job-status").inner_text().endswith("success")
        arrivals: dict[str, Any] = page.evaluate("window.__arrivals")
        initial = set(page.evaluate("window.__initial") or [])
        ticks = {key: (at / 1000, TICK.search(text)) for key, (at, text) in arrivals.items()}
        shown = page.locator("#log .ln").all_inner_texts()
        assert [m.group(1) for m in map(TICK.search, shown) if m] == [str(i) for i in range(1, 10)]
        opened = float(page.locator("#log").get_attribute("data-open") or 0) / 1000
        # lines written once the browser follows (earlier ones came with the page or at connection)
        delays = [
            at - float(m.group(2))
            for key, (at, m) in ticks.items()
            if m and key not in initial and float(m.group(2)) > opened
        ]
        assert len(delays) >= 5, f"only {len(delays)} lines arrived live"
        median, worst = statistics.median(delays) * 1000, max(delays) * 1000
        print(f"live log delay: median {median:.0f} ms, max {worst:.0f} ms")
        assert max(delays) < 0.5, delays
        # line anchors: each line links to itself
        assert page.locator("#L3 a.n").get_attribute("href") == "#L3"
        assert problems == [], problems
    finally:
        source.close()


APPROVAL = """\
name: gate
jobs:
  build:
    script: echo build
  deploy:
    needs: [build]
    environment: {name: production, approval: required, approval_timeout: 2m}
    script: echo deployed
"""


def test_a_viewer_does_not_see_the_approve_button(
    tmp_path: Path, serve, background, browser: Browser
) -> None:
    root = make_repo(tmp_path / "gate", {"buildyard.yml": APPROVAL, ".gitignore": ".buildyard/\n"})
    source = ProjectDirSource(root, name="gate")
    try:
        viewer = serve(source, user=User("vic", "viewer"), header_users=False)
        maintainer = serve(source, user=User("mia", "maintainer"), header_users=False)
        background("-C", root, "run")
        history = source.history("gate")

        def waiting() -> bool:
            runs = history.list_runs(limit=1)
            return bool(runs) and any(j.status == "waiting" for j in history.jobs(runs[0].id))

        wait_for(waiting, "the deployment to wait for approval")
        run = history.list_runs(limit=1)[0]
        page = browser.new_page()
        problems = _watch(page)
        for path in (f"/p/gate/runs/{run.id}", "/p/gate/artifacts"):
            page.goto(viewer.url + path)
            assert page.get_by_role("heading", name="Waiting for approval").count() == 1
            assert "deploy" in page.locator(".waiting").inner_text()
            assert page.get_by_role("button", name="Approve").count() == 0
            assert page.get_by_role("button", name="Reject").count() == 0
            page.goto(maintainer.url + path)
            approve = page.get_by_role("button", name="Approve")
            assert approve.count() == 1 and approve.is_visible()
            form = page.locator("form.approve")
            assert form.get_attribute("action") == f"/api/v1/projects/gate/runs/{run.id}/jobs/deploy/approve"
            assert form.locator("input[name=csrf_token]").get_attribute("value") == "test-csrf-token"
        assert problems == [], problems
    finally:
        source.close()
