"""Benchmark: hashing a 1 GiB tree cold, and re-checking 10,000 unchanged files.

Targets (issue 3): cold hashing >= 1 GiB/s; re-check of 10,000 unchanged files < 100 ms.
Peers, measured in the same run, alternating, medians of N rounds:
- cold hashing: ``sha256sum`` (coreutils) over the same files (one process, xargs batches);
- re-check: ``git status --porcelain`` on the same 10,000 files (git's own stat cache, the index).

"Cold" means no stat cache: every byte is read and hashed. The files were just written, so they sit
in the page cache (dropping caches would disturb other users of the machine); both sides see the same.

Run: ``nice python bench/bench_hashing.py [--rounds 5] [--dir /tmp]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from buildyard.cache.hashing import FileHasher, StatCache, digest_inputs, list_inputs

GiB = 1024**3


def make_tree(root: Path) -> list[str]:
    """1 GiB: 32 files of 16 MiB (multi-threaded path) + 8,192 files of 64 KiB (thread-pool path)."""
    rels = []
    block = os.urandom(1 << 20)
    for i in range(32):
        rel = f"large/blob{i:02d}.bin"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        with (root / rel).open("wb") as f:
            for j in range(16):
                f.write(block[j:] + block[:j] + i.to_bytes(4, "little"))
        rels.append(rel)
    small = os.urandom(64 * 1024)
    for i in range(8192):
        rel = f"small/d{i % 64:02d}/f{i:05d}.dat"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(i.to_bytes(4, "little") + small[4:])
        rels.append(rel)
    return rels


def make_repo(root: Path, n: int = 10_000) -> None:
    """A git repo of ``n`` small committed files, mtimes in the past (not racy)."""
    for i in range(n):
        p = root / f"pkg{i % 100:02d}" / f"src{i:05d}.ts"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"export const v{i} = {i};\n")
    past = time.time() - 60
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            os.utime(os.path.join(dirpath, name), (past, past))
    git = ["git", "-c", "user.email=b@b", "-c", "user.name=b"]
    subprocess.run([*git, "init", "-q"], cwd=root, check=True)
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", "bench"], cwd=root, check=True)
    subprocess.run(["git", "update-index", "--refresh", "-q"], cwd=root, check=False)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dir", default=None, help="where to create the temporary trees")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="by-bench-hash-", dir=args.dir))
    try:
        tree = base / "tree"
        rels = make_tree(tree)
        size = sum((tree / r).stat().st_size for r in rels)
        sha_cmd = f"cd {tree} && find . -type f -print0 | xargs -0 sha256sum > /dev/null"

        ours_cold, sha = [], []
        for _ in range(args.rounds):
            ours_cold.append(timed(lambda: FileHasher(StatCache()).digest_paths(tree, rels)))
            sha.append(timed(lambda: subprocess.run(sha_cmd, shell=True, check=True)))
        shutil.rmtree(tree)

        repo = base / "repo"
        repo.mkdir()
        make_repo(repo)
        cache_file = base / "statcache.json"
        warm = StatCache(cache_file)
        digest_inputs(repo, hasher=FileHasher(warm))
        warm.save()
        listed = list_inputs(repo)

        def recheck_listed() -> None:  # a new process: load the stat cache from disk, stat every file
            hasher = FileHasher(StatCache(cache_file))
            hasher.digest_paths(repo, listed)
            assert hasher.files_read == 0

        def recheck_git() -> None:  # plus discovering the input set with git ls-files
            hasher = FileHasher(StatCache(cache_file))
            digest_inputs(repo, hasher=hasher)
            assert hasher.files_read == 0

        ours_re, ours_re_git, git_status = [], [], []
        for _ in range(args.rounds):
            ours_re.append(timed(recheck_listed))
            ours_re_git.append(timed(recheck_git))
            git_status.append(
                timed(
                    lambda: subprocess.run(
                        ["git", "status", "--porcelain"], cwd=repo, check=True, capture_output=True
                    )
                )
            )
    finally:
        shutil.rmtree(base, ignore_errors=True)

    med = statistics.median
    gib = size / GiB
    rows = [
        (
            "cold hash 1 GiB tree (8,224 files)",
            f"{med(ours_cold) * 1000:8.0f} ms",
            f"{gib / med(ours_cold):6.2f} GiB/s",
            "sha256sum",
            f"{med(sha) * 1000:8.0f} ms",
            f"{med(sha) / med(ours_cold):5.2f}x",
            ">= 1 GiB/s",
            "ok" if gib / med(ours_cold) >= 1 else "MISSED",
        ),
        (
            "re-check 10,000 unchanged (stat cache)",
            f"{med(ours_re) * 1000:8.1f} ms",
            "",
            "git status",
            f"{med(git_status) * 1000:8.1f} ms",
            f"{med(git_status) / med(ours_re):5.2f}x",
            "< 100 ms",
            "ok" if med(ours_re) < 0.1 else "MISSED",
        ),
        (
            "re-check 10,000 + git ls-files",
            f"{med(ours_re_git) * 1000:8.1f} ms",
            "",
            "git status",
            f"{med(git_status) * 1000:8.1f} ms",
            f"{med(git_status) / med(ours_re_git):5.2f}x",
            "< 100 ms",
            "ok" if med(ours_re_git) < 0.1 else "MISSED",
        ),
    ]
    header = ("case", "buildyard", "rate", "peer", "peer time", "peer/ours", "target", "")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(f"rounds={args.rounds}, cpus={os.cpu_count()}, medians")
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
