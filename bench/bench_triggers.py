"""Benchmark: webhook deliveries and notifications through the trigger and notify services.

Issue 15's load targets, measured on the services the server's routes call and, with ``--http``
(the default), through a real ``buildyard serve`` process (HTTP, threads, its runner executing the
queued runs meanwhile):

1. 1,000 GitHub-style push deliveries from 20 concurrent senders, 10 % of them duplicates (same
   ``X-GitHub-Delivery``) and 5 % with bad signatures, on one SQLite history: exactly one run queued
   per distinct authentic delivery, none lost, none doubled; p50/p99 of ``DeliveryService.receive``
   (target: p99 <= 50 ms for the whole answer).
2. 1,000 queued notifications to a receiver on 127.0.0.1 that fails every other request: all
   delivered within the backoff schedule (base 0.05 s here, so the run takes seconds).

3. The same 1,000 deliveries as HTTP requests from 20 keep-alive clients to ``buildyard serve`` (a
   project on a local bare repository, 1 runner busy with the queued runs): answer time p50/p99/max
   as the senders see it, and the queue entries the server made (exact: one per distinct authentic
   delivery).

Run: ``nice python bench/bench_triggers.py [--deliveries 1000] [--notifications 1000] [--no-http]``
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.server
import json
import random
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

from buildyard.model import RunStatus
from buildyard.notify.decide import RunSummary
from buildyard.notify.messages import messages_for
from buildyard.notify.outbox import Backoff, Outbox, OutboxStatus
from buildyard.notify.worker import OutboxWorker
from buildyard.spec import loads
from buildyard.store.history import SqlHistory
from buildyard.triggers.deliveries import DeliveryService
from buildyard.triggers.events import TriggerEvent
from buildyard.triggers.webhooks import Source, Verdict

SECRET = b"bench secret"
PUSH = json.dumps(
    {
        "ref": "refs/heads/main",
        "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
        "after": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
        "repository": {"full_name": "acme/shop", "clone_url": "https://github.com/acme/shop.git"},
        "head_commit": {"message": "change"},
        "commits": [{"added": [f"src/f{i}.py" for i in range(20)], "modified": ["README.md"], "removed": []}],
    }
).encode()


def deliveries(n: int, seconds: float, root: Path) -> None:
    history = SqlHistory(f"sqlite:///{root / 'hooks.db'}")
    queued: list[str] = []
    lock = threading.Lock()

    def enqueue(conn: Connection, event: TriggerEvent) -> str:
        with lock:
            queued.append(event.delivery_id)
            return f"run-{len(queued)}"

    service = DeliveryService(history.engine, enqueue)
    rng = random.Random(15)
    plan: list[tuple[str, bool]] = []  # (delivery id, authentic)
    distinct = 0
    for i in range(n):
        roll = rng.random()
        if roll < 0.10 and distinct:
            plan.append((f"d-{rng.randrange(distinct)}", True))  # a duplicate of an earlier delivery
        elif roll < 0.15:
            plan.append((f"forged-{i}", False))
        else:
            plan.append((f"d-{distinct}", True))
            distinct += 1
    good = "sha256=" + hmac.new(SECRET, PUSH, hashlib.sha256).hexdigest()
    timings: list[float] = []
    verdicts: list[Verdict] = []

    pace = seconds / n  # the rate: n deliveries spread over ``seconds``
    t0 = time.perf_counter()

    def send(index_item: tuple[int, tuple[str, bool]]) -> None:
        index, (delivery, authentic) = index_item
        time.sleep(max(0.0, t0 + index * pace - time.perf_counter()))
        headers = {
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": good if authentic else "sha256=" + "0" * 64,
        }
        started = time.perf_counter()
        result = service.receive(Source.GITHUB, "shop", headers, PUSH, SECRET)
        took = time.perf_counter() - started
        with lock:
            timings.append(took)
            verdicts.append(result.verdict)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=20) as pool:
        list(pool.map(send, enumerate(plan)))
    wall = time.perf_counter() - started
    history.close()
    timings.sort()
    p99 = timings[int(len(timings) * 0.99) - 1]
    forged = sum(1 for _, ok in plan if not ok)
    print(f"| deliveries | {n} from 20 senders in {wall:.2f} s ({n / wall:.0f}/s) |")
    doubled = len(queued) - len(set(queued))
    print(f"| distinct authentic / queued runs | {distinct} / {len(queued)} (doubled: {doubled}) |")
    print(
        f"| duplicates answered / forged rejected | {verdicts.count(Verdict.DUPLICATE)} / "
        f"{verdicts.count(Verdict.REJECTED)} of {forged} |"
    )
    print(
        f"| answer time p50 / p99 / max | {statistics.median(timings) * 1000:.1f} / {p99 * 1000:.1f} / "
        f"{timings[-1] * 1000:.1f} ms |"
    )
    if len(queued) != distinct or len(set(queued)) != distinct:
        raise SystemExit("FAILED: runs lost or doubled")


def notifications(n: int, root: Path) -> None:
    count = [0]
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real receivers (Slack, GitHub) answer

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with lock:
                count[0] += 1
                fail = count[0] % 2 == 0
            self.send_response(500 if fail else 204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    text = f"notify:\n  - on: always\n    webhook: {{url: '{url}'}}\njobs:\n  a: {{script: 'true'}}\n"
    specs = loads(text).notify
    history = SqlHistory(f"sqlite:///{root / 'notify.db'}")
    outbox = Outbox(history.engine, backoff=Backoff(base=0.05, cap=1.0), max_attempts=12)
    started = time.perf_counter()
    for i in range(n):
        run = RunSummary(run_id=f"r{i}", pipeline="shop", number=i, status=RunStatus.SUCCESS, branch="main")
        outbox.put(messages_for(specs, run, str))
    queued_s = time.perf_counter() - started
    worker = OutboxWorker(outbox, lambda name: None, concurrency=8, batch=100, poll=0.02)
    done = worker.drain(time.monotonic() + 120)
    worker.stop()
    wall = time.perf_counter() - started
    delivered = len(outbox.entries(OutboxStatus.DELIVERED, limit=n + 10))
    dead = len(outbox.entries(OutboxStatus.DEAD, limit=n + 10))
    history.close()
    server.shutdown()
    server.server_close()
    print(f"| notifications queued | {n} in {queued_s:.2f} s |")
    print(f"| delivered / dead / requests (receiver fails every 2nd) | {delivered} / {dead} / {count[0]} |")
    print(f"| all delivered in | {wall:.2f} s (backoff 0.05 s base, jitter) |")
    if not done or delivered != n:
        raise SystemExit("FAILED: notifications not all delivered")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _plan(n: int) -> tuple[list[tuple[str, bool]], int]:
    rng = random.Random(15)
    plan: list[tuple[str, bool]] = []
    distinct = 0
    for i in range(n):
        roll = rng.random()
        if roll < 0.10 and distinct:
            plan.append((f"d-{rng.randrange(distinct)}", True))
        elif roll < 0.15:
            plan.append((f"forged-{i}", False))
        else:
            plan.append((f"d-{distinct}", True))
            distinct += 1
    return plan, distinct


def http_deliveries(n: int, seconds: float, root: Path, runners: int, *, held: bool = False) -> None:
    """Deliveries through a real ``buildyard serve`` (see the module docstring, 3)."""
    import http.client
    import os
    import signal
    import sqlite3
    import subprocess
    import sys

    import httpx

    work = root / "work"
    work.mkdir()
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "b",
        "GIT_AUTHOR_EMAIL": "b@x",
        "GIT_COMMITTER_NAME": "b",
        "GIT_COMMITTER_EMAIL": "b@x",
    }
    script = "sleep 600" if held else "true"  # held: the first run holds the runner, no more runs execute
    (work / "buildyard.yml").write_text(f"name: shop\njobs:\n  hello:\n    script: '{script}'\n")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "init"]):
        subprocess.run(["git", *args], cwd=work, check=True, env=env)
    remote = root / "shop.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(remote)], check=True)
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=work, check=True, capture_output=True, text=True)
    body = json.loads(PUSH)
    body["after"] = sha.stdout.strip()
    push = json.dumps(body).encode()
    config = root / "server.yml"
    config.write_text(f"projects:\n  - name: shop\n    repo: file://{remote}\n    default_branch: main\n")
    src = str(Path(__file__).resolve().parents[1] / "src")
    cli = [sys.executable, "-c", "import sys; from buildyard.cli import main; main(sys.argv[1:])"]
    child_env = {**os.environ, "PYTHONPATH": src}
    subprocess.run(
        [*cli, "secrets", "webhook", "--project", "shop", "--config", str(config), "--value-stdin"],
        check=True,
        env=child_env,
        capture_output=True,
        input=SECRET.decode() + "\n",
        text=True,
    )
    port = _free_port()
    log = (root / "serve.log").open("w")
    server = subprocess.Popen(
        [*cli, "serve", "--config", str(config), "--port", str(port), "--runners", str(runners)],
        env=child_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/openapi.json", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit(f"FAILED: the server did not start: {(root / 'serve.log').read_text()}")
            time.sleep(0.1)
        plan, distinct = _plan(n)
        good = "sha256=" + hmac.new(SECRET, push, hashlib.sha256).hexdigest()
        timings: list[float] = []
        codes: list[int] = []
        slowest: list[tuple[float, int]] = []
        lock = threading.Lock()
        local = threading.local()
        pace = seconds / n
        t0 = time.perf_counter()

        def send(index_item: tuple[int, tuple[str, bool]]) -> None:
            index, (delivery, authentic) = index_item
            if not hasattr(local, "client"):  # http.client: a light sender, so its own CPU hardly counts
                local.client = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            time.sleep(max(0.0, t0 + index * pace - time.perf_counter()))
            headers = {
                "Content-Type": "application/json",
                "X-GitHub-Event": "push",
                "X-GitHub-Delivery": delivery,
                "X-Hub-Signature-256": good if authentic else "sha256=" + "0" * 64,
            }
            started = time.perf_counter()
            local.client.request("POST", "/hooks/github/shop", body=push, headers=headers)
            answer = local.client.getresponse()
            answer.read()
            took = time.perf_counter() - started
            with lock:
                timings.append(took)
                codes.append(answer.status)
                slowest.append((took, index))

        def warm(_: int) -> None:
            # each sender's connection opened and the server's first-use costs paid (threads,
            # statement caches) before the clock starts: a server answers warm
            local.client = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            ping = b'{"zen": "warm", "hook_id": 1}'
            headers = {
                "Content-Type": "application/json",
                "X-GitHub-Event": "ping",
                "X-GitHub-Delivery": f"warm-{threading.get_ident()}",
                "X-Hub-Signature-256": "sha256=" + hmac.new(SECRET, ping, hashlib.sha256).hexdigest(),
            }
            for _round in range(3):
                local.client.request("POST", "/hooks/github/shop", body=ping, headers=headers)
                local.client.getresponse().read()

        barrier = threading.Barrier(20)

        def warm_all(i: int) -> None:
            warm(i)
            barrier.wait()

        import psutil

        proc = psutil.Process(server.pid)
        cpu0 = proc.cpu_times()
        with ThreadPoolExecutor(max_workers=20) as pool:
            list(pool.map(warm_all, range(20)))  # one connection per thread, all 20 threads
            t0 = time.perf_counter()
            started = time.perf_counter()
            list(pool.map(send, enumerate(plan)))
        wall = time.perf_counter() - started
        cpu1 = proc.cpu_times()
        own = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
        kids = (cpu1.children_user + cpu1.children_system) - (cpu0.children_user + cpu0.children_system)
        with sqlite3.connect(root / ".buildyard-server" / "server.db") as db:
            entries = db.execute("SELECT count(*) FROM server_queue").fetchone()[0]
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
    timings.sort()
    p99 = timings[int(len(timings) * 0.99) - 1]
    forged = sum(1 for _, ok in plan if not ok)
    what = f"HTTP deliveries (`buildyard serve`, {runners} runner {'held by one run' if held else 'busy'})"
    print(f"| {what} | {n} from 20 clients in {wall:.2f} s |")
    print(f"| distinct authentic / queue entries | {distinct} / {entries} |")
    print(f"| server CPU meanwhile: its own / its runs' processes | {own:.1f} s / {kids:.1f} s |")
    print(
        f"| answers 202 / 200 duplicate / 401 | {codes.count(202)} / {codes.count(200)} / {codes.count(401)} "
        f"(forged: {forged}) |"
    )
    print(
        f"| HTTP answer time p50 / p99 / max | {statistics.median(timings) * 1000:.1f} / {p99 * 1000:.1f} / "
        f"{timings[-1] * 1000:.1f} ms |"
    )
    late = sorted(slowest, reverse=True)[: max(1, n // 100)]
    numbers = ", ".join(str(i) for _, i in sorted(late, key=lambda x: x[1]))
    print(f"| the slowest 1 % were deliveries number | {numbers} |")
    if entries != distinct:
        raise SystemExit("FAILED: runs lost or doubled")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0, help="spread the deliveries over this long")
    parser.add_argument("--notifications", type=int, default=1000)
    parser.add_argument("--no-http", action="store_true", help="skip the deliveries through buildyard serve")
    parser.add_argument("--runners", type=int, default=1, help="runners of the served project (--http)")
    parser.add_argument(
        "--held", action="store_true", help="one run holds the runner: no run executes meanwhile"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print("| measure | value |\n|---|---|")
        if args.deliveries:
            deliveries(args.deliveries, args.seconds, Path(tmp))
        if args.notifications:
            notifications(args.notifications, Path(tmp))
        if args.deliveries and not args.no_http:
            http_deliveries(args.deliveries, args.seconds, Path(tmp), args.runners, held=args.held)


if __name__ == "__main__":
    main()
