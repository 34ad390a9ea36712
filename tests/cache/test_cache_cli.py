"""``buildyard cache`` commands through the real CLI entry point, in-process and as a server process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from buildyard.cache.action_cache import ActionCache
from buildyard.cache.store import CacheStore
from buildyard.cli import run_cli
from conftest import CLI, free_port, stop_server


@pytest.fixture
def filled(tmp_path):
    store = CacheStore(tmp_path / "cas")
    ws = tmp_path / "ws"
    ws.mkdir()
    ac = ActionCache(store)
    for i in range(3):
        (ws / "out.bin").write_bytes(os.urandom(20_000))
        ac.store_outputs(f"{i}" * 64, workspace=ws, outputs=["out.bin"], job=f"job{i}", duration_s=1.5)
        past = time.time() - 86400 * (40 - i * 20)  # 40, 20 and 0 days ago
        os.utime(store.refs.path("ac", f"{i}" * 64), (past, past))
    for blob in store.cas.blobs_dir.rglob("*"):
        if blob.is_file():
            os.utime(blob, (time.time() - 86400 * 50,) * 2)
    return store


def test_stats_and_ls(filled, capsys):
    ws = filled.root.parent / "restored"
    ws.mkdir()
    ac = ActionCache(filled)
    ac.restore(ac.lookup("2" * 64), ws, outputs=["out.bin"])
    ac.record_miss("9" * 64)
    assert run_cli(["cache", "stats", "--cache-dir", str(filled.root), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["entries"] == {"ac": 3}
    assert stats["blobs"] == 3 and stats["hits"] == 1 and stats["misses"] == 1 and stats["hit_rate"] == 0.5
    assert stats["time_saved_s"] == 1.5
    assert run_cli(["cache", "stats", "--cache-dir", str(filled.root)]) == 0
    assert "hit rate    50%" in capsys.readouterr().out
    assert run_cli(["cache", "ls", "--cache-dir", str(filled.root), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["job"] for r in rows] == ["job2", "job1", "job0"]  # most recently used first


def test_default_cache_dir_is_buildyard_home_cas(filled, capsys, monkeypatch):
    monkeypatch.setenv("BUILDYARD_HOME", str(filled.root.parent))
    assert run_cli(["cache", "ls"]) == 0
    assert capsys.readouterr().out.count("\n") == 3


def test_verify_exit_code_reports_corruption(filled, capsys):
    assert run_cli(["cache", "verify", "--cache-dir", str(filled.root)]) == 0
    blob = next(p for p in filled.cas.blobs_dir.rglob("*") if p.is_file())
    data = bytearray(blob.read_bytes())
    data[-2] ^= 0xFF
    blob.write_bytes(bytes(data))
    capsys.readouterr()
    assert run_cli(["cache", "verify", "--cache-dir", str(filled.root)]) == 1
    out = capsys.readouterr().out
    assert f"corrupt  {blob.name}" in out and "1 entries dropped" in out


def test_prune_older_than_and_max_size(filled, capsys):
    assert run_cli(["cache", "prune", "--cache-dir", str(filled.root), "--older-than", "30d", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["entries_removed"] == 1
    assert run_cli(["cache", "prune", "--cache-dir", str(filled.root), "--max-size", "25KB"]) == 0
    assert "removed 1 entries and 1 blobs" in capsys.readouterr().out  # the 0-day entry (~20 KB) stays
    assert [r.name for r in filled.refs.iter_refs("ac")] == ["2" * 64]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["prune", "--max-size", "lots"], "invalid size 'lots'"),
        (["prune", "--older-than", "1 fortnight"], "invalid age"),
        (["serve"], "needs at least one token"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, message):
    assert run_cli(["cache", *args, "--cache-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("buildyard: error: ") and message in err


def test_bad_tokens_file_names_file_and_line(tmp_path, capsys):
    tokens = tmp_path / "tokens"
    tokens.write_text("# comment\nwrite good\nadmin bad\n")
    assert run_cli(["cache", "serve", "--tokens-file", str(tokens), "--cache-dir", str(tmp_path)]) == 2
    assert f"{tokens}:3: expected '<read|write> <token>'" in capsys.readouterr().err


def test_serve_with_tokens_file(tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("write w1\nread r1\n")
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CLI,
            "cache",
            "serve",
            "--tokens-file",
            str(tokens),
            "--port",
            str(port),
            "--cache-dir",
            str(tmp_path / "cas"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                httpx.get(url, timeout=0.5)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert httpx.put(f"{url}/k", content=b"v", headers={"authorization": "Bearer w1"}).status_code == 200
        assert httpx.put(f"{url}/k", content=b"v", headers={"authorization": "Bearer r1"}).status_code == 403
        assert httpx.get(f"{url}/k", headers={"authorization": "Bearer r1"}).content == b"v"
    finally:
        stop_server(proc)


def test_serve_on_a_busy_port_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("BUILDYARD_CACHE_TOKENS", "t")  # a --token would add its warning line
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        code = run_cli(["cache", "serve", "--port", str(port), "--cache-dir", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot listen on 127.0.0.1:{port}" in err


def test_cache_serve_without_the_server_extra_says_what_to_install(tmp_path):
    """FastAPI and uvicorn are the ``server`` extra: without them, one line naming the extra, exit 2."""
    code = (
        # a None entry in sys.modules makes the import fail as if the package were not installed
        "import sys; sys.modules['fastapi'] = sys.modules['uvicorn'] = None;"
        "from buildyard.cli import run_cli;"
        f"sys.exit(run_cli(['cache', 'serve', '--cache-dir', {str(tmp_path / 'c')!r}, '--port', '0']))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        "buildyard: error: buildyard cache serve needs fastapi and uvicorn, which are not installed: "
        "pip install 'buildyard[server]'"
    ]
    assert not (tmp_path / "c").exists()


def test_importing_a_server_module_without_the_extra_names_it(tmp_path):
    code = (
        "import sys; sys.modules['uvicorn'] = None\n"
        "try:\n    import buildyard.server.cache_app\n"
        "except Exception as exc:\n    print(type(exc).__name__, exc)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.stdout.strip() == (
        "MissingExtraError buildyard.server needs uvicorn, which is not installed: "
        "pip install 'buildyard[server]'"
    )
