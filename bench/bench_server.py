"""Server response times over a large history: 10,000 runs × 50 jobs seeded into a project's history.

Starts a real ``buildyard serve`` on a free loopback port, then times (client side, so an upper bound of
the server's time) the API requests the dashboard and scrapers make: the runs list (first page and a
deep cursor page), one run with its 50 jobs, a job's log tail, and ``/metrics`` (steady state: answered
from the last background refresh; the first, cold build is reported apart). Prints p50/p95 per request.

Then the load phase: ``--clients`` concurrent dashboard clients (asyncio, httpx) for ``--duration``
seconds, each going round the dashboard's pages (HTML and JSON) and ``/metrics``; every error
(transport error or a status other than 200) is counted and the first few printed; p50/p95/p99 per
page. The server's RSS is read idle after start-up and the first requests, and after the load.

Run: ``python bench/bench_server.py [--runs 10000] [--jobs 50] [--requests 200]``
``[--clients 50] [--duration 30]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed(root: Path, runs: int, jobs: int) -> None:
    """A git project whose history holds ``runs`` finished runs of ``jobs`` jobs each."""
    from buildyard.store.history import SqlHistory, default_url
    from buildyard.store.schema import jobs as jobs_table
    from buildyard.store.schema import runs as runs_table

    root.mkdir(parents=True)
    (root / "buildyard.yml").write_text("name: big\njobs:\n  a:\n    script: 'true'\n")
    (root / ".gitignore").write_text(".buildyard/\n")
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "b",
        "GIT_AUTHOR_EMAIL": "b@b",
        "GIT_COMMITTER_NAME": "b",
        "GIT_COMMITTER_EMAIL": "b@b",
    }
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "init"]):
        subprocess.run(["git", *args], cwd=root, check=True, env=env)
    history = SqlHistory(default_url(root / ".buildyard"))
    rng = random.Random(14)
    start = time.time() - runs * 60
    log_dir = root / ".buildyard" / "logs" / "big"
    with history.engine.begin() as conn:
        for chunk in range(0, runs, 500):
            run_rows, job_rows = [], []
            for n in range(chunk, min(chunk + 500, runs)):
                run_id = uuid.uuid4().hex
                created = start + n * 60
                status = "success" if rng.random() < 0.9 else "failed"
                run_rows.append(
                    {
                        "id": run_id,
                        "pipeline": "big",
                        "number": n + 1,
                        "status": status,
                        "event": "push",
                        "ref": "refs/heads/main",
                        "branch": rng.choice(["main", "dev", "feature"]),
                        "tag": "",
                        "sha": uuid.uuid4().hex + "0" * 8,
                        "trigger": "server",
                        "project_dir": "",
                        "pipeline_file": "",
                        "variables": {},
                        "selected": [],
                        "created_at": created,
                        "started_at": created + 1,
                        "finished_at": created + 50,
                        "duration_s": 49.0,
                        "queue_s": 1.0,
                        "jobs_total": jobs,
                        "message": "",
                    }
                )
                for j in range(jobs):
                    duration = rng.uniform(0.5, 30)
                    job_rows.append(
                        {
                            "run_id": run_id,
                            "id": f"job{j:02d}",
                            "job": f"job{j:02d}",
                            "status": "success",
                            "stage": None,
                            "matrix": {},
                            "attempts": 1,
                            "exit_code": 0,
                            "allow_failure": False,
                            "ready_at": created + 1,
                            "started_at": created + 1,
                            "finished_at": created + 1 + duration,
                            "duration_s": duration,
                            "queue_s": 0.01,
                            "cpu_seconds": duration / 2,
                            "peak_rss": 10**8,
                            "skip_reason": None,
                            "message": "",
                            "log_path": str(log_dir / str(n + 1) / f"job{j:02d}.log"),
                            "cache_status": rng.choice(["hit", "miss"]),
                            "cache_key": "",
                            "saved_s": 0.0,
                            "miss_reasons": [],
                        }
                    )
            conn.execute(runs_table.insert(), run_rows)
            conn.execute(jobs_table.insert(), job_rows)
    history.close()
    last = log_dir / str(runs)
    last.mkdir(parents=True)
    for j in range(jobs):
        (last / f"job{j:02d}.log").write_text("".join(f"line {i} of a job's output\n" for i in range(2000)))


def timed(client: httpx.Client, path: str, n: int, **kwargs: object) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        response = client.get(path, **kwargs)  # type: ignore[arg-type]
        out.append((time.perf_counter() - t) * 1000)
        assert response.status_code in (200, 206), (path, response.status_code, response.text[:200])
    return out


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18]


def quantile(values: list[float], q: float) -> float:
    """The ``q`` quantile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def rss_mb(pid: int) -> float:
    out = subprocess.run(["ps", "-o", "rss=", "-p", str(pid)], capture_output=True, text=True, check=False)
    return int(out.stdout) / 1024


async def load(
    base: str, pages: dict[str, str], clients: int, duration: float
) -> tuple[dict[str, list[float]], list[str]]:
    """``clients`` clients going round ``pages`` for ``duration`` seconds: times per page, and errors."""
    times: dict[str, list[float]] = {name: [] for name in pages}
    errors: list[str] = []
    deadline = time.monotonic() + duration
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(k: int, http: httpx.AsyncClient) -> None:
        order = list(pages.items())
        random.Random(k).shuffle(order)
        i = 0
        while time.monotonic() < deadline:
            name, path = order[i % len(order)]
            i += 1
            t = time.perf_counter()
            try:
                response = await http.get(path)
                if response.status_code != 200:
                    errors.append(f"{name}: HTTP {response.status_code} {response.text[:120]!r}")
            except httpx.HTTPError as exc:
                errors.append(f"{name}: {type(exc).__name__}: {exc}")
                continue
            times[name].append((time.perf_counter() - t) * 1000)

    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:
        await asyncio.gather(*(client(k, http) for k in range(clients)))
    return times, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument(
        "--clients", type=int, default=50, help="concurrent dashboard clients (0: no load phase)"
    )
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of the load phase")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "big"
        t = time.perf_counter()
        seed(root, args.runs, args.jobs)
        print(f"seeded {args.runs} runs x {args.jobs} jobs in {time.perf_counter() - t:.1f} s")
        port = free_port()
        env = {**os.environ, "BUILDYARD_DAEMON": "0"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "buildyard", "-C", str(root), "serve", "--port", str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=base, timeout=60) as client:
                deadline = time.monotonic() + 60
                while True:
                    try:
                        client.get("/openapi.json")
                        break
                    except httpx.TransportError:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.2)
                page = client.get("/api/v1/projects/big/runs", params={"limit": 50}).json()
                cursor = page["next"]
                for _ in range(40):  # 2,000 runs deep
                    cursor = client.get(
                        "/api/v1/projects/big/runs", params={"limit": 50, "cursor": cursor}
                    ).json()["next"]
                t = time.perf_counter()
                client.get("/metrics")
                cold = (time.perf_counter() - t) * 1000
                n = args.requests
                cases = {
                    "runs list, first page (50)": timed(
                        client, "/api/v1/projects/big/runs", n, params={"limit": 50}
                    ),
                    "runs list, 2,000 deep": timed(
                        client, "/api/v1/projects/big/runs", n, params={"limit": 50, "cursor": cursor}
                    ),
                    "runs list, filtered branch+status": timed(
                        client, "/api/v1/projects/big/runs", n, params={"branch": "dev", "status": "failed"}
                    ),
                    "run + 50 jobs": timed(client, f"/api/v1/projects/big/runs/{args.runs}", n),
                    "job log tail (Range -4096)": timed(
                        client,
                        f"/api/v1/projects/big/runs/{args.runs}/jobs/job07/log",
                        n,
                        headers={"Range": "bytes=-4096"},
                    ),
                    "/metrics (warm)": timed(client, "/metrics", n),
                }
                run_id = client.get(f"/api/v1/projects/big/runs/{args.runs}").json()["id"]
                pages = {
                    "projects": "/",
                    "runs": "/p/big",
                    "runs (filtered)": "/p/big?branch=dev&status=failed",
                    "run": f"/p/big/runs/{run_id}",
                    "log": f"/p/big/runs/{run_id}/jobs/job07/log",
                    "metrics page": "/p/big/metrics",
                    "tests": "/p/big/tests",
                    "artifacts": "/p/big/artifacts",
                }
                pages.update(
                    {f"{k} JSON": v + ("&" if "?" in v else "?") + "format=json" for k, v in pages.items()}
                )
                pages["/metrics"] = "/metrics"
                for path in pages.values():  # each page once: the first view of a page is not the load
                    assert client.get(path).status_code == 200, path
            time.sleep(2)
            idle_rss = rss_mb(proc.pid)
            loaded: dict[str, list[float]] = {}
            errors: list[str] = []
            if args.clients:
                loaded, errors = asyncio.run(load(base, pages, args.clients, args.duration))
            rss = rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(30)
    print(f"{'request':<36} {'p50 ms':>8} {'p95 ms':>8}")
    for name, values in cases.items():
        print(f"{name:<36} {statistics.median(values):>8.1f} {p95(values):>8.1f}")
    print(f"{'/metrics (cold build, first scrape)':<36} {cold:>8.1f}")
    print(f"server RSS idle after start-up and a first view of each page: {idle_rss:.0f} MB")
    if loaded:
        total = sum(len(v) for v in loaded.values())
        print(
            f"\nload: {args.clients} clients for {args.duration:.0f} s: {total} requests "
            f"({total / args.duration:.0f}/s), {len(errors)} errors"
        )
        for error in errors[:5]:
            print(f"  error: {error}")
        print(f"{'page':<24} {'n':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
        for name, values in loaded.items():
            if values:
                print(
                    f"{name:<24} {len(values):>6} {quantile(values, 0.5):>8.1f} "
                    f"{quantile(values, 0.95):>8.1f} {quantile(values, 0.99):>8.1f}"
                )
        everything = [v for values in loaded.values() for v in values]
        print(
            f"{'all':<24} {len(everything):>6} {quantile(everything, 0.5):>8.1f} "
            f"{quantile(everything, 0.95):>8.1f} {quantile(everything, 0.99):>8.1f}"
        )
    print(f"server RSS after the load: {rss:.0f} MB")


if __name__ == "__main__":
    main()
