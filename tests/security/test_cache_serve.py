"""Hardening of the cache HTTP server (issue 21, items 6, 10, 11): a real ``buildyard cache serve``
process on a free loopback port, spoken to over real sockets."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from blake3 import blake3

from buildyard.cache.kv import KeyValueStore
from buildyard.cache.store import CacheStore
from by_testutil import CacheServer, start_cache_server, stop_cache_server

RW, RO = "sec-rw-token", "sec-ro-token"
W = {"authorization": f"Bearer {RW}"}
R = {"authorization": f"Bearer {RO}"}
Server = CacheServer


def _start(cache_dir: Path, *args: str, env: dict[str, str] | None = None) -> Server:
    return start_cache_server(cache_dir, *args, read_token=RO, env=env)


_stop = stop_cache_server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = _start(tmp_path / "cas", "--token", RW, "--read-token", RO, "--header-timeout", "1")
    yield srv
    _stop(srv.proc)


def _tmp_fd_bytes(pid: int, tmp_dir: Path) -> int:
    """Bytes held by the server in files (deleted or not) under its temp directory."""
    total = 0
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(fd_dir / fd)
            if target.startswith(str(tmp_dir)):
                total += os.stat(fd_dir / fd).st_size
        except OSError:
            continue
    return total


# -- item 6: large GETs stream off the event loop, bounded -----------------------------------------
def test_small_requests_answer_while_two_large_blobs_are_read_slowly_and_no_temp_file_grows(server):
    size = 200 * 1024 * 1024
    payload = os.urandom(1024 * 1024) * 200  # 200 MiB, generated fast; zstd still has to work on it
    assert len(payload) == size
    assert httpx.put(f"{server.url}/big/one", content=payload, headers=W, timeout=60).status_code == 200
    assert httpx.put(f"{server.url}/big/two", content=payload[::-1], headers=W, timeout=60).status_code == 200
    del payload

    started = threading.Barrier(3)
    release = threading.Event()
    got: dict[str, int] = {}

    def slow_reader(key: str) -> None:
        with httpx.stream("GET", f"{server.url}/big/{key}", headers=R, timeout=60) as resp:
            started.wait()
            n = 0
            for chunk in resp.iter_bytes(1024 * 1024):
                n += len(chunk)
                if n >= 8 * 1024 * 1024:
                    release.wait(20)  # a slow client: stop reading for a while
            got[key] = n

    threads = [threading.Thread(target=slow_reader, args=(k,)) for k in ("one", "two")]
    for t in threads:
        t.start()
    worst = 0.0
    temp_peak = 0
    server_proc = psutil.Process(server.proc.pid)
    rss_before = rss_peak = server_proc.memory_info().rss
    try:
        started.wait(timeout=30)
        for _ in range(10):
            t0 = time.monotonic()
            assert httpx.get(f"{server.url}/v8/artifacts/status", headers=R, timeout=30).status_code == 200
            worst = max(worst, time.monotonic() - t0)
            temp_peak = max(temp_peak, _tmp_fd_bytes(server.proc.pid, server.cache_dir / "tmp"))
            rss_peak = max(rss_peak, server_proc.memory_info().rss)
            time.sleep(0.05)
    finally:
        release.set()
        for t in threads:
            t.join(60)
    assert got == {"one": size, "two": size}
    assert worst < 0.5, f"a small request waited {worst:.2f}s behind two large GETs"
    assert temp_peak == 0, f"the server spooled {temp_peak} bytes to a temp file"
    growth = (rss_peak - rss_before) // 2**20
    assert growth < 100, f"the server grew by {growth} MiB to serve two streams"


def test_large_transfers_are_bounded_and_the_excess_gets_503_with_retry_after(tmp_path):
    srv = _start(
        tmp_path / "cas", "--token", RW, "--read-token", RO, "--max-transfers", "1", "--transfer-wait", "0.5"
    )
    try:
        big = os.urandom(1024 * 1024) * 32
        assert httpx.put(f"{srv.url}/big", content=big, headers=W, timeout=60).status_code == 200
        assert httpx.put(f"{srv.url}/small", content=b"s" * 1000, headers=W).status_code == 200
        with httpx.stream("GET", f"{srv.url}/big", headers=R, timeout=30) as held:
            assert held.status_code == 200
            reading = held.iter_bytes(1024 * 1024)  # (kept: a dropped iterator closes the response)
            next(reading)  # the one transfer slot is taken, the client reads slowly
            t0 = time.monotonic()
            busy = httpx.get(f"{srv.url}/big", headers=R, timeout=30)
            assert busy.status_code == 503 and int(busy.headers["retry-after"]) >= 1
            assert "detail" in busy.json() and time.monotonic() - t0 < 5
            assert httpx.get(f"{srv.url}/small", headers=R).content == b"s" * 1000  # small ones are not held
        assert httpx.get(f"{srv.url}/big", headers=R, timeout=30).content == big  # the slot came back
    finally:
        _stop(srv.proc)


def test_a_corrupt_large_blob_aborts_the_transfer_and_is_evicted(server):
    payload = os.urandom(24 * 1024 * 1024)
    assert httpx.put(f"{server.url}/corrupt/me", content=payload, headers=W, timeout=60).status_code == 200
    path = CacheStore(server.cache_dir).cas.path_for(blake3(payload).hexdigest())
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # random data is stored raw by zstd: the flip survives decompression
    path.write_bytes(bytes(data))

    received = b""
    failed = False
    try:
        with httpx.stream("GET", f"{server.url}/corrupt/me", headers=R, timeout=30) as resp:
            if resp.status_code != 200:
                failed = True
            else:
                for chunk in resp.iter_bytes():
                    received += chunk
    except httpx.TransportError:
        failed = True
    assert failed, "a corrupt blob was sent whole as a successful response"
    assert len(received) < len(payload)
    assert not path.exists(), "the corrupt blob was not evicted"
    assert httpx.get(f"{server.url}/corrupt/me", headers=R, timeout=10).status_code == 404
    assert httpx.get(f"{server.url}/v8/artifacts/status", headers=R).status_code == 200


def test_slow_header_and_idle_connections_are_closed_after_the_header_timeout(server):
    socks = []
    for i in range(20):
        s = socket.create_connection(("127.0.0.1", server.port))
        if i % 2:
            s.sendall(b"GET /v8/artifacts/status HTTP/1.1\r\nHost: x\r\n")  # headers never finish
        socks.append(s)
    t0 = time.monotonic()
    closed = 0
    try:
        for s in socks:
            s.settimeout(5)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                try:
                    s.sendall(b"X")  # trickle a byte: must not extend the deadline
                except OSError:
                    closed += 1
                    break
                try:
                    s.settimeout(0.2)
                    if s.recv(4096) == b"":
                        closed += 1
                        break
                except TimeoutError:
                    continue
                except OSError:
                    closed += 1
                    break
    finally:
        for s in socks:
            s.close()
    assert closed == 20
    assert time.monotonic() - t0 < 4
    assert httpx.get(f"{server.url}/v8/artifacts/status", headers=R).status_code == 200


# -- item 10: every body and header validated; 4xx with a JSON reason -------------------------------
def _assert_json_4xx(resp: httpx.Response) -> None:
    assert 400 <= resp.status_code < 500, resp.text
    assert isinstance(resp.json()["detail"], str)


def test_nested_json_and_bad_durations_are_4xx_with_a_json_reason(server):
    url = server.url
    deep = "[" * 100_000 + "]" * 100_000
    _assert_json_4xx(httpx.post(f"{url}/v8/artifacts", content=f'{{"hashes": {deep}}}', headers=R))
    _assert_json_4xx(httpx.post(f"{url}/v8/artifacts", content=f'{{"x": {deep}, "hashes": []}}', headers=R))
    _assert_json_4xx(httpx.post(f"{url}/v8/artifacts/events", content=deep, headers=R))
    bad_event = [{"source": "REMOTE", "event": "HIT", "hash": "h1", "duration": "abc"}]
    _assert_json_4xx(httpx.post(f"{url}/v8/artifacts/events", json=bad_event, headers=R))
    _assert_json_4xx(httpx.put(f"{url}/_buildyard/v1/ac/{'a' * 64}", content=deep, headers=W))
    _assert_json_4xx(
        httpx.put(f"{url}/v8/artifacts/h1", content=b"x", headers={**W, "x-artifact-duration": "notanumber"})
    )
    _assert_json_4xx(httpx.post(f"{url}/v8/artifacts", content=b"[" * 2_000_000, headers=R))  # too big

    q = httpx.post(f"{url}/v8/artifacts", json={"hashes": ["h1"]}, headers=R)
    assert q.status_code == 200 and "error" in q.json()["h1"]
    assert httpx.get(f"{url}/v8/artifacts/h1", headers=R).status_code == 404


def test_invalid_stored_metadata_never_fails_a_later_query(server):
    KeyValueStore(CacheStore(server.cache_dir), "turbo/_").put_bytes(
        "h2", b"artifact", {"x-artifact-duration": "notanumber", "x-artifact-tag": "t\x00\n"}
    )
    q = httpx.post(f"{server.url}/v8/artifacts", json={"hashes": ["h2", "h3"]}, headers=R)
    assert q.status_code == 200
    assert q.json()["h2"]["size"] == len(b"artifact") and "error" in q.json()["h3"]
    r = httpx.get(f"{server.url}/v8/artifacts/h2", headers=R)
    assert r.status_code == 200 and r.content == b"artifact"
    assert "x-artifact-duration" not in r.headers


# -- item 11: team namespaces are injective; tokens stay off the command line -----------------------
def test_turbo_team_names_that_used_to_collide_get_separate_namespaces(server):
    teams = ["acme/x", "acme_x", "acme x"]
    for team in teams:
        r = httpx.put(
            f"{server.url}/v8/artifacts/same", params={"slug": team}, content=team.encode(), headers=W
        )
        assert r.status_code == 202
    for team in teams:
        r = httpx.get(f"{server.url}/v8/artifacts/same", params={"slug": team}, headers=R)
        assert r.status_code == 200 and r.content == team.encode()


def test_token_on_the_command_line_warns_and_the_environment_does_not(tmp_path):
    srv = _start(tmp_path / "a", "--token", RW, "--read-token", RO)
    err = _stop(srv.proc)
    assert "--token" in err and "BUILDYARD_CACHE_TOKENS" in err and "--tokens-file" in err

    env = {"BUILDYARD_CACHE_TOKENS": RW, "BUILDYARD_CACHE_READ_TOKENS": RO}
    srv = _start(tmp_path / "b", env=env)
    try:
        assert httpx.put(f"{srv.url}/k", content=b"v", headers=W).status_code == 200
        assert httpx.put(f"{srv.url}/k", content=b"v", headers=R).status_code == 403
    finally:
        err = _stop(srv.proc)
    assert "warning" not in err.lower()

    tokens = tmp_path / "tokens"
    tokens.write_text(f"write {RW}\nread {RO}\n")
    tokens.chmod(0o644)
    srv = _start(tmp_path / "c", "--tokens-file", str(tokens))
    assert httpx.get(f"{srv.url}/k", headers=R).status_code == 404
    assert "chmod 600" in _stop(srv.proc)
