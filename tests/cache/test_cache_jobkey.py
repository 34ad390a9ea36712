"""Job keys computed from a real git project, and the engine-facing flow through ``open_job_cache``."""

from __future__ import annotations

import stat
import subprocess
import sys
import textwrap

import pytest

from buildyard.cache import (
    CacheMissReason,
    CacheStore,
    FileHasher,
    JobKeySpec,
    compute_key_manifest,
    explain,
    open_job_cache,
    open_stat_cache,
)


def _git(cwd, *args):
    subprocess.run(
        ["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=cwd, check=True, capture_output=True
    )


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "proj"
    (root / "lib").mkdir(parents=True)
    (root / "app").mkdir()
    (root / "lib" / "a.c").write_text("int a;")
    (root / "app" / "main.c").write_text("int main;")
    (root / "package-lock.json").write_text("{}")
    (root / ".gitignore").write_text("dist/\n.buildyard/\n")
    (root / "tool-version").write_text("1.0")
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "init")
    return root


def _spec(root, **overrides):
    kwargs = {
        "definition": {"commands": ["make"], "shell": "bash", "cwd": "lib"},
        "workdir": root / "lib",
        "project_root": root,
        "env": {"MODE": "release"},
        "secrets": {"NPM_TOKEN": "tok-123"},
        "global_inputs": ["package-lock.json"],
        "key_commands": ["cat ../tool-version"],
    }
    kwargs.update(overrides)
    return JobKeySpec(**kwargs)


def test_key_follows_inputs_global_inputs_key_commands_and_secrets(project, tmp_path):
    store = CacheStore(project / ".buildyard" / "cas")
    hasher = FileHasher(open_stat_cache(project / ".buildyard"))
    salt = store.salt()
    base = compute_key_manifest(_spec(project), hasher=hasher, salt=salt)
    assert set(base.inputs) == {"a.c"}  # only the job's working directory
    assert "tok-123" not in str(base.to_json())
    assert compute_key_manifest(_spec(project), hasher=hasher, salt=salt).key() == base.key()

    (project / "lib" / "new.c").write_text("untracked but not ignored")
    (project / "lib" / "dist").mkdir()
    (project / "lib" / "dist" / "out.o").write_text("ignored")
    m = compute_key_manifest(_spec(project), hasher=hasher, salt=salt)
    assert set(m.inputs) == {"a.c", "new.c"}

    (project / "package-lock.json").write_text('{"lockfileVersion": 3}')
    (project / "tool-version").write_text("2.0")
    changed = compute_key_manifest(_spec(project, secrets={"NPM_TOKEN": "rotated"}), hasher=hasher, salt=salt)
    reasons = {d.reason: d.names for d in explain(base, changed)}
    assert reasons == {
        CacheMissReason.INPUT_ADDED: ("new.c",),
        CacheMissReason.ENV_CHANGED: ("NPM_TOKEN (secret)",),
        CacheMissReason.GLOBAL_INPUT_CHANGED: ("package-lock.json",),
        CacheMissReason.KEY_COMMAND_CHANGED: ("cat ../tool-version",),
    }


def test_salt_is_private_and_shared_by_concurrent_creators(tmp_path):
    root = tmp_path / "cas"
    code = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from buildyard.cache.store import CacheStore
        print(CacheStore(Path(sys.argv[1])).salt().hex())
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(root)], stdout=subprocess.PIPE) for _ in range(4)
    ]
    salts = {p.communicate(timeout=30)[0].strip() for p in procs}
    assert len(salts) == 1 and len(salts.pop()) == 64
    assert stat.S_IMODE((root / "salt").stat().st_mode) == 0o600


def test_engine_flow_miss_run_store_then_hit_in_a_clean_clone(project, tmp_path):
    cache_dir = tmp_path / "shared-cas"
    hasher = FileHasher()
    cache = open_job_cache(project, cache_dir=cache_dir)
    spec = _spec(project, secrets={})
    manifest = compute_key_manifest(spec, hasher=hasher, salt=cache.local.store.salt())
    key = manifest.key()
    assert cache.lookup(key) is None
    assert [d.reason for d in cache.explain("lib:build", manifest)] == [CacheMissReason.NO_ENTRY]
    cache.record_miss(key)
    (project / "lib" / "dist").mkdir()
    (project / "lib" / "dist" / "liba.a").write_bytes(b"\x7fELF archive")
    log = tmp_path / "job.log"
    log.write_text("$ make\nok\n")
    cache.store_outputs(
        key,
        workspace=project / "lib",
        outputs=["dist"],
        log=log,
        duration_s=4.2,
        job="lib:build",
        key_manifest=manifest,
    )

    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "-q", str(project), str(clone))
    other = open_job_cache(clone, cache_dir=cache_dir)
    clone_manifest = compute_key_manifest(
        _spec(clone, secrets={}), hasher=FileHasher(), salt=other.local.store.salt()
    )
    assert clone_manifest.key() == key  # same content in another directory: same key
    entry = other.lookup(key)
    assert entry is not None
    restored = other.restore(entry, clone / "lib", outputs=["dist"])
    assert restored is not None and restored.log == b"$ make\nok\n" and restored.saved_s == 4.2
    assert (clone / "lib" / "dist" / "liba.a").read_bytes() == b"\x7fELF archive"
    assert other.explain("lib:build", clone_manifest) == []
