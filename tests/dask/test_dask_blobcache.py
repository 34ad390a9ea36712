"""An agent's blob cache stays under its size limit: least recently used blobs go first, blobs a
running job uses never do."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from buildyard.dask.blobcache import BlobCache


def _blob(cache: BlobCache, size: int, age: float) -> str:
    digest = cache.cas().put_bytes(os.urandom(size))  # incompressible: stored size ~ size
    old = time.time() - age
    os.utime(cache.cas().path_for(digest), (old, old))
    return digest


def test_trim_evicts_the_least_recently_used_unpinned_blobs(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path / "cas", limit=25_000)
    oldest, pinned, middle, newest = (_blob(cache, 10_000, age) for age in (400, 300, 200, 100))
    assert cache.size() > 40_000
    with cache.pinned([pinned]) as held:
        fresh = cache.cas().put_bytes(os.urandom(1000))
        cache.pin(held, fresh)
        freed = cache.trim()
        assert freed > 0
        kept = {d for d, _s, _m in cache.cas().iter_blobs()}
        # the oldest go first; the pinned one stays although it is older than the others
        assert oldest not in kept and middle not in kept
        assert {pinned, newest, fresh} <= kept
        assert cache.size() == sum(s for _d, s, _m in cache.cas().iter_blobs()) <= 25_000
    cache.cas().touch(pinned)  # used again: now the newest
    cache.limit = 12_000
    cache.trim()
    assert {d for d, _s, _m in cache.cas().iter_blobs()} == {pinned, fresh}  # "newest" was older


def test_the_size_is_counted_from_what_jobs_add(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path / "cas", limit=None)
    assert cache.size() == 0
    cas = cache.cas()
    cas.put_bytes(os.urandom(5000))
    cache.added(cas.take_added())
    assert cache.size() == sum(s for _d, s, _m in cas.iter_blobs()) > 5000
    assert cache.trim() == 0  # no limit


@pytest.mark.integration
def test_an_agent_cache_stays_bounded_over_a_run(cli, make_project, cluster) -> None:
    limit = 160 * 1024  # one job needs ~190 KiB (inputs and output); all four ~490 KiB
    cluster.start_agent(
        "small", labels=("small",), resources={"cpus": 2}, slots=1, extra=("--cache-size", f"{limit}")
    )
    try:
        cluster.wait_for(3)
        files = {f"data/{i}.bin": os.urandom(40 * 1024).hex()[: 40 * 1024] for i in range(4)}
        jobs = "".join(
            f"  j{i}:\n    runs_on: [small]\n    needs: [{'j' + str(i - 1) if i else ''}]\n"
            f"    script: [mkdir -p out && sha256sum data/*.bin > out/{i}.txt && head -c 100000 /dev/urandom"
            f" > out/{i}.bin]\n    artifacts: {{paths: [out/{i}.txt, out/{i}.bin]}}\n"
            for i in range(4)
        ).replace("needs: []\n", "needs: []\n")
        root = make_project({**files, "buildyard.yml": "jobs:\n" + jobs})
        (root / ".gitignore").write_text(".buildyard/\nout/\n")
        address = cluster.address.removeprefix("tcp://")
        result = cli("-C", root, "run", "--json", "--executor", f"dask://{address}")
        assert result.code == 0, result.out + result.err
        statuses = {j["id"]: j["status"] for j in json.loads(result.out)["jobs"]}
        assert set(statuses.values()) == {"success"}, statuses
        # every job saw all four inputs although they did not fit in the cache together with outputs
        assert (root / "out" / "3.txt").read_text().count(".bin") == 4
        assert (root / "out" / "3.bin").stat().st_size == 100000  # a large output: uploaded, not inline
        blobs = cluster.agents["small"][1] / "buildyard" / "cas" / "blobs"
        stored = sum(p.stat().st_size for p in blobs.rglob("*") if p.is_file())
        assert 0 < stored <= limit
    finally:
        pid, _work = cluster.agents.pop("small")
        cluster.kill(pid)
