"""The cache server over real HTTP (a real ``buildyard cache serve`` process) and the remote client."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from blake3 import blake3

from buildyard.cache.action_cache import ActionCache
from buildyard.cache.keys import KeyManifest
from buildyard.cache.remote import RemoteCache, TieredActionCache
from buildyard.cache.store import CacheStore
from conftest import RO, RW

W = {"authorization": f"Bearer {RW}"}
R = {"authorization": f"Bearer {RO}"}


def test_auth_no_token_401_unknown_401_read_only_write_403(cache_server):
    url = cache_server.url
    assert httpx.get(f"{url}/v8/artifacts/status").status_code == 401
    assert (
        httpx.get(f"{url}/v8/artifacts/status", headers={"authorization": "Bearer nope"}).status_code == 401
    )
    assert httpx.put(f"{url}/some/key", content=b"x", headers=R).status_code == 403
    assert httpx.put(f"{url}/v8/artifacts/abc", content=b"x", headers=R).status_code == 403
    assert httpx.put(f"{url}/some/key", content=b"x", headers=W).status_code == 200
    assert httpx.get(f"{url}/some/key", headers=R).content == b"x"
    basic = base64.b64encode(f"gradle:{RW}".encode()).decode()  # Gradle sends HTTP Basic
    assert httpx.get(f"{url}/some/key", headers={"authorization": f"Basic {basic}"}).status_code == 200


def test_turborepo_artifacts_with_duration_tag_and_team_namespaces(cache_server):
    url = cache_server.url
    body = b"\x1f\x8b turbo tarball"
    r = httpx.put(
        f"{url}/v8/artifacts/h1?slug=team-a",
        content=body,
        headers={**W, "x-artifact-duration": "1234", "x-artifact-tag": "sig=="},
    )
    assert r.status_code == 202 and r.json()["urls"]
    r = httpx.get(f"{url}/v8/artifacts/h1?slug=team-a", headers=R)
    assert r.status_code == 200 and r.content == body
    assert r.headers["x-artifact-duration"] == "1234" and r.headers["x-artifact-tag"] == "sig=="
    head = httpx.head(f"{url}/v8/artifacts/h1?slug=team-a", headers=R)
    assert head.status_code == 200 and head.headers["content-length"] == str(len(body))
    assert httpx.get(f"{url}/v8/artifacts/h1?slug=team-b", headers=R).status_code == 404
    assert httpx.get(f"{url}/v8/artifacts/h1?teamId=team_x", headers=R).status_code == 404
    q = httpx.post(f"{url}/v8/artifacts?slug=team-a", json={"hashes": ["h1", "h2"]}, headers=R).json()
    assert q["h1"]["taskDurationMs"] == 1234 and "error" in q["h2"]
    events = [{"sessionId": "s", "source": "REMOTE", "event": "HIT", "hash": "h1", "duration": 1234}]
    assert httpx.post(f"{url}/v8/artifacts/events?slug=team-a", json=events, headers=R).status_code == 200
    assert CacheStore(cache_server.cache_dir).stats().hits == 1


def test_bazel_cas_uploads_are_verified_against_sha256(cache_server):
    url = cache_server.url
    blob = b"output file content"
    good = hashlib.sha256(blob).hexdigest()
    assert httpx.put(f"{url}/cas/{good}", content=blob, headers=W).status_code == 200
    assert httpx.get(f"{url}/cas/{good}", headers=R).content == blob
    bad = hashlib.sha256(b"other").hexdigest()
    assert httpx.put(f"{url}/cas/{bad}", content=blob, headers=W).status_code == 400
    assert httpx.get(f"{url}/cas/{bad}", headers=R).status_code == 404
    ac = hashlib.sha256(b"action").hexdigest()
    assert httpx.put(f"{url}/ac/{ac}", content=b"ActionResult proto", headers=W).status_code == 200
    assert httpx.get(f"{url}/ac/{ac}", headers=R).content == b"ActionResult proto"
    assert (
        httpx.get(f"{url}/instance/ac/{ac}", headers=R).content == b"ActionResult proto"
    )  # instance ignored
    assert httpx.head(f"{url}/ac/{'0' * 64}", headers=R).status_code == 404


def test_plain_keys_share_blobs_with_other_protocols(cache_server):
    url = cache_server.url
    body = b"same bytes everywhere" * 100
    httpx.put(f"{url}/ccache/ab/cdef0123", content=body, headers=W)
    httpx.put(f"{url}/v8/artifacts/x?slug=t", content=body, headers=W)
    httpx.put(f"{url}/cas/{hashlib.sha256(body).hexdigest()}", content=body, headers=W)
    store = CacheStore(cache_server.cache_dir)
    assert store.stats().blobs == 1
    assert httpx.delete(f"{url}/ccache/ab/cdef0123", headers=W).status_code == 200
    assert httpx.get(f"{url}/ccache/ab/cdef0123", headers=R).status_code == 404


def test_corrupt_blob_on_the_server_is_a_404_not_bad_bytes(cache_server):
    url = cache_server.url
    httpx.put(f"{url}/k", content=b"precious" * 50, headers=W)
    store = CacheStore(cache_server.cache_dir)
    path = store.cas.path_for(blake3(b"precious" * 50).hexdigest())
    data = bytearray(path.read_bytes())
    data[-2] ^= 0xFF
    path.write_bytes(bytes(data))
    assert httpx.get(f"{url}/k", headers=R).status_code == 404


def _job(tmp_path, name):
    ws = tmp_path / name
    (ws / "dist").mkdir(parents=True)
    (ws / "dist" / "index.txt").write_text("built by " + name)
    return ws


def test_two_clean_clones_share_job_results_through_the_server(cache_server, tmp_path, request):
    manifest = KeyManifest(definition={"commands": ["build"]}, inputs={"src": "1" * 64})
    key = manifest.key()
    warnings: list[str] = []
    with TieredActionCache(
        ActionCache(CacheStore(tmp_path / "a-cas")), RemoteCache(cache_server.url, RW, warn=warnings.append)
    ) as a:
        assert a.lookup(key) is None
        a.store_outputs(
            key,
            workspace=_job(tmp_path, "a"),
            outputs=["dist"],
            log=b"log-a",
            duration_s=3.0,
            job="build",
            key_manifest=manifest,
        )

    b_store = CacheStore(tmp_path / "b-cas")
    b = TieredActionCache(ActionCache(b_store), RemoteCache(cache_server.url, RO, warn=warnings.append))
    request.addfinalizer(b.close)
    entry = b.lookup(key)
    assert entry is not None
    out = tmp_path / "b-clone"
    out.mkdir()
    result = b.restore(entry, out, outputs=["dist"])
    assert result is not None and result.log == b"log-a"
    assert (out / "dist" / "index.txt").read_text() == "built by a"
    assert ActionCache(b_store).lookup(key) is not None  # imported into the local store
    assert b.explain("build", manifest) == []
    assert warnings == []
    # a read-only token reads but does not write, with one warning
    b.store_outputs("f" * 64, workspace=out, outputs=["dist"])
    b.store_outputs("e" * 64, workspace=out, outputs=["dist"])
    assert len(warnings) == 1 and "read-only" in warnings[0]


def test_a_down_remote_degrades_to_local_with_one_warning(tmp_path, request):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    warnings: list[str] = []
    cache = TieredActionCache(
        ActionCache(CacheStore(tmp_path / "cas")),
        RemoteCache(f"http://127.0.0.1:{port}", RW, warn=warnings.append),
    )
    request.addfinalizer(cache.close)
    for i in range(3):
        assert cache.lookup(f"{i}" * 64) is None
    entry = cache.store_outputs("a" * 64, workspace=_job(tmp_path, "ws"), outputs=["dist"])
    assert cache.lookup(entry.key) is not None
    assert len(warnings) == 1 and "unavailable" in warnings[0]


def test_a_slow_remote_times_out_quickly_once(tmp_path, request):
    with socket.socket() as listener:  # accepts connections (backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        port = listener.getsockname()[1]
        warnings: list[str] = []
        cache = TieredActionCache(
            ActionCache(CacheStore(tmp_path / "cas")),
            RemoteCache(f"http://127.0.0.1:{port}", RW, timeout=0.3, warn=warnings.append),
        )
        request.addfinalizer(cache.close)
        started = time.monotonic()
        for i in range(5):
            assert cache.lookup(f"{i}" * 64) is None
        assert time.monotonic() - started < 2.0
    assert len(warnings) == 1 and "timed out" in warnings[0]


@pytest.mark.parametrize("token", [None, "wrong"])
def test_a_refused_token_is_one_warning(cache_server, token, monkeypatch, request):
    monkeypatch.delenv("BUILDYARD_REMOTE_CACHE_TOKEN", raising=False)
    warnings: list[str] = []
    remote = RemoteCache(cache_server.url, token, warn=warnings.append)
    request.addfinalizer(remote.close)
    assert remote.get_entry("a" * 64) is None and remote.get_entry("b" * 64) is None
    assert len(warnings) == 1 and "401" in warnings[0]


def test_concurrent_uploads_and_downloads_stay_consistent(cache_server):
    url = cache_server.url
    bodies = {f"k{i}": bytes([i]) * (50_000 + i) for i in range(16)}

    def work(i: int) -> bool:
        with httpx.Client(headers=W, timeout=10) as client:
            key = f"k{i % 16}"
            assert client.put(f"{url}/{key}", content=bodies[key]).status_code == 200
            assert client.put(f"{url}/shared", content=b"same for all").status_code == 200
            got = client.get(f"{url}/{key}")
            return got.status_code == 200 and got.content == bodies[key]

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(work, range(48)))
    store = CacheStore(cache_server.cache_dir)
    assert store.verify().ok
    assert store.stats().blobs == 17
    assert not any(store.cas.tmp_dir.iterdir())


def test_buildyard_blob_uploads_are_verified_and_large_outputs_stream(cache_server, tmp_path, request):
    url = cache_server.url
    digest = blake3(b"right").hexdigest()
    assert httpx.put(f"{url}/_buildyard/v1/blobs/{digest}", content=b"wrong", headers=W).status_code == 400
    assert httpx.head(f"{url}/_buildyard/v1/blobs/{digest}", headers=R).status_code == 404
    assert httpx.put(f"{url}/_buildyard/v1/ac/{'a' * 64}", content=b"{}", headers=W).status_code == 400

    ws = tmp_path / "big"
    (ws / "dist").mkdir(parents=True)
    payload = os.urandom(20 * 1024 * 1024)
    (ws / "dist" / "big.bin").write_bytes(payload)
    a = TieredActionCache(ActionCache(CacheStore(tmp_path / "a")), RemoteCache(url, RW))
    b = TieredActionCache(ActionCache(CacheStore(tmp_path / "b")), RemoteCache(url, RO))
    request.addfinalizer(a.close)
    request.addfinalizer(b.close)
    a.store_outputs("b" * 64, workspace=ws, outputs=["dist"])
    entry = b.lookup("b" * 64)
    assert entry is not None
    out = tmp_path / "out"
    out.mkdir()
    assert b.restore(entry, out, outputs=["dist"]) is not None
    assert (out / "dist" / "big.bin").read_bytes() == payload
