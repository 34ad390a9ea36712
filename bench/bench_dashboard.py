"""Dashboard server time on a large history: RUNS runs × JOBS jobs seeded directly through the store.

Serves the dashboard with uvicorn on 127.0.0.1 and times each page (HTML and JSON) from an HTTP
client on the same machine, sequentially, after one warm-up request: p50 and p95 over ROUNDS requests.
The metrics page four ways: as it is reused while no run changes; after a run finished before each
request (today's rollup is read again); for one branch; and cold (every rollup dropped: the first
view after a start, ``--cold-rounds`` requests).

    .venv/bin/python bench/bench_dashboard.py [--runs 10000] [--jobs 50] [--rounds 20] [--history DIR]

The full size (10,000 runs × 50 jobs, the target's) takes ~1 min to seed; ``--history DIR`` keeps the
seeded history there and reuses it next time. Smaller sizes only through the flags.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import uvicorn

from buildyard.server.web import ProjectDirSource, create_dashboard_app, data
from buildyard.server.web.rollups import ROLLUPS
from buildyard.store.deployments import DeploymentRecord
from buildyard.store.history import JobRecord, RunRecord, SqlHistory, default_url

PIPELINE = """\
name: big
jobs:
{jobs}
"""


def seed(root: Path, runs: int, jobs: int) -> None:
    """``runs`` runs of ``jobs`` jobs over the last 30 days (a chain of stages, some failures,
    cache hits, deployments every 20th run)."""
    rng = random.Random(7)
    names = [f"job{i:02d}" for i in range(jobs)]
    lines = []
    for i, name in enumerate(names):
        needs = f"[{names[i - 1]}, {names[i - 2]}]" if i >= 2 else (f"[{names[0]}]" if i == 1 else "[]")
        lines.append(f"  {name}:\n    needs: {needs}\n    script: echo {name}")
    (root / "buildyard.yml").write_text(PIPELINE.format(jobs="\n".join(lines)))
    home = root / ".buildyard"
    home.mkdir()
    history = SqlHistory(default_url(home))
    now = time.time()
    for n in range(runs):
        created = now - 30 * 86400 + n * (30 * 86400 / runs)
        status = "failed" if rng.random() < 0.15 else "success"
        run = history.create_run(
            RunRecord(
                id=uuid.uuid4().hex,
                pipeline="big",
                number=0,
                status=status,
                event=rng.choice(["push", "push", "pull_request", "schedule"]),
                created_at=created,
                branch=rng.choice(["main", "main", "dev", f"feature-{n % 30}"]),
                sha=uuid.uuid4().hex + uuid.uuid4().hex[:8],
                trigger=rng.choice(["cli", "api", "alice", "bob"]),
                project_dir=str(root),
                pipeline_file=str(root / "buildyard.yml"),
                started_at=created + 0.5,
                queue_s=0.5,
            )
        )
        t = created + 0.5
        rows = []
        for i, name in enumerate(names):
            hit = rng.random() < 0.4
            dur = 0.05 if hit else rng.uniform(1, 30) * (1 + i / jobs)
            failed = status == "failed" and i == jobs - 1
            rows.append(
                JobRecord(
                    run_id=run.id,
                    id=name,
                    job=name,
                    status="failed" if failed else ("cached" if hit else "success"),
                    attempts=1,
                    exit_code=1 if failed else 0,
                    ready_at=t,
                    started_at=t + 0.1,
                    finished_at=t + 0.1 + dur,
                    duration_s=dur,
                    queue_s=0.1,
                    cpu_seconds=dur * 0.8,
                    peak_rss=rng.randint(20, 900) * 1_000_000,
                    log_path="",
                    cache_status="hit" if hit else "miss",
                    saved_s=rng.uniform(1, 30) if hit else 0.0,
                )
            )
            t += dur + 0.1
        history.save_jobs(rows, insert=True)
        history.update_run(run.id, finished_at=t, duration_s=t - created - 0.5)
        if n % 20 == 0:
            dep = history.start_deployment(
                DeploymentRecord("production", "app", f"1.0.{n}", run.id, names[-1], "running", t)
            )
            history.finish_deployment(dep, "failed" if rng.random() < 0.1 else "success")
    history.close()


def finish_one(root: Path, jobs: int) -> None:
    """Record one more finished run of ``jobs`` jobs, created now (as a runner would)."""
    history = SqlHistory(default_url(root / ".buildyard"))
    now = time.time()
    run = history.create_run(
        RunRecord(
            id=uuid.uuid4().hex,
            pipeline="big",
            number=0,
            status="success",
            event="push",
            created_at=now,
            branch="main",
            sha=uuid.uuid4().hex,
            trigger="api",
            project_dir=str(root),
            pipeline_file=str(root / "buildyard.yml"),
            started_at=now,
            queue_s=0.5,
        )
    )
    rows = [
        JobRecord(
            run_id=run.id,
            id=f"job{i:02d}",
            job=f"job{i:02d}",
            status="success",
            attempts=1,
            exit_code=0,
            ready_at=now,
            started_at=now,
            finished_at=now + 1,
            duration_s=1.0,
            queue_s=0.1,
            cpu_seconds=0.5,
            peak_rss=50_000_000,
            log_path="",
            cache_status="miss",
            saved_s=0.0,
        )
        for i in range(jobs)
    ]
    history.save_jobs(rows, insert=True)
    history.update_run(run.id, finished_at=now + 1, duration_s=1.0)
    history.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--cold-rounds", type=int, default=3)
    parser.add_argument("--history", type=Path, help="seed here once and reuse (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp:
        root = args.history or Path(tmp) / "big"
        if not (root / ".buildyard").exists():
            root.mkdir(parents=True, exist_ok=True)
            started = time.perf_counter()
            seed(root, args.runs, args.jobs)
            print(f"seeded {args.runs} runs x {args.jobs} jobs in {time.perf_counter() - started:.1f}s")
        source = ProjectDirSource(root, name="big", default_branch="main")
        run = source.history("big").list_runs(limit=1)[0]
        server = uvicorn.Server(
            uvicorn.Config(create_dashboard_app(source), host="127.0.0.1", port=0, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        base = f"http://127.0.0.1:{port}"
        pages = {
            "projects": "/",
            "runs": "/p/big",
            "runs (filtered)": "/p/big?branch=main&status=failed",
            "run": f"/p/big/runs/{run.id}",
            "metrics (30 d)": "/p/big/metrics",
            "metrics, run done": "/p/big/metrics",
            "metrics, main": "/p/big/metrics?branch=main",
            "metrics, cold": "/p/big/metrics",
            "tests": "/p/big/tests",
            "artifacts": "/p/big/artifacts",
        }
        print(
            f"{'page':<18} {'HTML p50':>9} {'p95':>7} {'JSON p50':>9} {'p95':>7}"
            f" {'CPU p50':>8} {'p95':>7}  (ms; CPU: this process's, server and client, HTML and JSON)"
        )
        with httpx.Client(timeout=60) as client:
            for name, path in pages.items():
                figures = []
                cpu = []
                for fmt in ("html", "json"):
                    url = base + path + ("&" if "?" in path else "?") + f"format={fmt}"
                    assert client.get(url).status_code == 200, url
                    times = []
                    for _ in range(args.cold_rounds if "cold" in name else args.rounds):
                        if "cold" in name:
                            ROLLUPS.clear()  # the server runs in this process
                            data._metrics_cache.clear()
                        if "run done" in name:
                            finish_one(root, args.jobs)
                        t0, c0 = time.perf_counter(), time.process_time()
                        response = client.get(url)
                        times.append((time.perf_counter() - t0) * 1000)
                        cpu.append((time.process_time() - c0) * 1000)
                        assert response.status_code == 200
                    times.sort()
                    figures += [statistics.median(times), times[max(0, math.ceil(len(times) * 0.95) - 1)]]
                cpu.sort()
                figures += [statistics.median(cpu), cpu[max(0, math.ceil(len(cpu) * 0.95) - 1)]]
                print(
                    f"{name:<18} {figures[0]:>9.1f} {figures[1]:>7.1f} {figures[2]:>9.1f} {figures[3]:>7.1f}"
                    f" {figures[4]:>8.1f} {figures[5]:>7.1f}"
                )
        server.should_exit = True
        thread.join()
        source.close()


if __name__ == "__main__":
    sys.exit(main())
