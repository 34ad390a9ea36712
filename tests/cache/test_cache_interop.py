"""Real third-party clients against a real ``buildyard cache serve``: turbo (npm) and ccache (Debian).

Install for CI: ``apt-get install -y ccache`` (turbo is installed by the fixture with ``npm install turbo``;
node and npm must be present). Each test skips only when its tool is absent on this machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from buildyard.cache.store import CacheStore
from conftest import RO, RW

pytestmark = pytest.mark.integration

_TURBO_ENV = {
    "TURBO_TELEMETRY_DISABLED": "1",
    "TURBO_NO_UPDATE_NOTIFIER": "1",
    "DO_NOT_TRACK": "1",
    "CI": "1",
}


@pytest.fixture(scope="session")
def turbo_bin(tmp_path_factory) -> Path:
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.skip("node/npm not installed (CI: apt-get install -y nodejs npm)")
    where = tmp_path_factory.mktemp("turbo-install")
    (where / "package.json").write_text('{"name": "turbo-install", "private": true}')
    subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--silent", "turbo@^2"],
        cwd=where,
        check=True,
        capture_output=True,
        timeout=300,
    )
    return where / "node_modules" / ".bin" / "turbo"


def _monorepo(root: Path) -> None:
    (root / "package.json").parent.mkdir(parents=True)
    (root / "package.json").write_text(
        json.dumps(
            {"name": "mono", "private": True, "packageManager": "npm@10.8.2", "workspaces": ["packages/*"]}
        )
    )
    (root / "turbo.json").write_text(
        json.dumps({"tasks": {"build": {"dependsOn": ["^build"], "outputs": ["dist/**"]}}})
    )
    for name, deps in (("lib", {}), ("app", {"lib": "*"})):
        pkg = root / "packages" / name
        pkg.mkdir(parents=True)
        script = (
            "node -e \"require('fs').mkdirSync('dist',{recursive:true});"
            f"require('fs').writeFileSync('dist/index.txt','built {name}')\""
        )
        (pkg / "package.json").write_text(
            json.dumps({"name": name, "version": "1.0.0", "dependencies": deps, "scripts": {"build": script}})
        )
    subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--offline"],
        cwd=root,
        check=True,
        capture_output=True,
        timeout=120,
    )
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    (root / ".gitignore").write_text("node_modules\n.turbo\ndist\n")
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(
        ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init"], cwd=root, check=True
    )


def _turbo(turbo: Path, cwd: Path, url: str, token: str) -> str:
    proc = subprocess.run(
        [str(turbo), "run", "build", "--api", url, "--token", token, "--team", "buildyard-team"],
        check=False,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **_TURBO_ENV},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def test_turbo_second_clean_clone_is_a_full_remote_hit(turbo_bin, cache_server, tmp_path):
    first = tmp_path / "clone1"
    _monorepo(first)
    out = _turbo(turbo_bin, first, cache_server.url, RW)
    assert "0 cached, 2 total" in out
    assert len(list(CacheStore(cache_server.cache_dir).refs.iter_refs("kv/turbo/buildyard-team"))) == 2

    second = tmp_path / "clone2"
    shutil.copytree(first, second, ignore=shutil.ignore_patterns(".turbo", "dist"))
    assert not (second / ".turbo").exists()
    out = _turbo(turbo_bin, second, cache_server.url, RO)  # a read-only token is enough to hit
    assert "2 cached, 2 total" in out and "FULL TURBO" in out
    assert (second / "packages" / "app" / "dist" / "index.txt").read_text() == "built app"
    assert CacheStore(cache_server.cache_dir).stats().hits == 2  # from turbo's REMOTE HIT events


def _ccache(cc_dir: Path, src: Path, remote: str) -> dict[str, int]:
    env = {**os.environ, "CCACHE_DIR": str(cc_dir), "CCACHE_REMOTE_STORAGE": remote, "CCACHE_NOHASHDIR": "1"}
    subprocess.run(
        ["ccache", "gcc", "-c", str(src), "-o", str(src.with_suffix(".o"))],
        cwd=src.parent,
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    stats = subprocess.run(
        ["ccache", "--print-stats"], env=env, check=True, capture_output=True, text=True
    ).stdout
    return {
        k: int(v)
        for k, v in (line.split("\t") for line in stats.splitlines() if "\t" in line)
        if v.strip().isdigit()
    }


@pytest.mark.parametrize("layout", ["subdirs", "flat", "bazel"])
def test_ccache_second_compile_with_clean_local_cache_is_a_remote_hit(cache_server, tmp_path, layout):
    if shutil.which("ccache") is None or shutil.which("gcc") is None:
        pytest.skip("ccache/gcc not installed (CI: apt-get install -y ccache gcc)")
    src = tmp_path / "hello.c"
    src.write_text("int answer(void) { return 42; }\n")
    remote = f"{cache_server.url}/ccache|layout={layout}|bearer-token={RW}"
    first = _ccache(tmp_path / "cc1", src, remote)
    assert first["remote_storage_miss"] == 1 and first["remote_storage_hit"] == 0
    second = _ccache(tmp_path / "cc2", src, remote)
    assert second["remote_storage_hit"] == 1
    assert second["remote_storage_error"] == 0 and second.get("cache_miss", 0) == 0


def test_ccache_with_a_read_only_token_reads_but_cannot_write(cache_server, tmp_path):
    if shutil.which("ccache") is None or shutil.which("gcc") is None:
        pytest.skip("ccache/gcc not installed (CI: apt-get install -y ccache gcc)")
    src = tmp_path / "ro.c"
    src.write_text("int ro(void) { return 7; }\n")
    _ccache(tmp_path / "cc1", src, f"{cache_server.url}/ccache|bearer-token={RO}")
    assert not list(CacheStore(cache_server.cache_dir).refs.iter_refs("kv"))  # the PUT got 403
