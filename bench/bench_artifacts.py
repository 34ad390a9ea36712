"""Benchmark: push and pull of a 1 GiB artifact against ``cp -r`` of the same data, same run.

The artifact is ``--many`` MiB in 128 KiB files (half random, half compressible text) plus one large
random file (the rest of ``--size-mib``). Each round, on the same filesystem:

- ``cp -r`` of the tree (the peer), and ``cp -r`` followed by ``sync`` (pushes fsync their blobs);
- ``buildyard artifacts push`` into a fresh repository (hashing SHA-256/SHA-512/BLAKE3, zstd, fsync,
  signing), run as the real CLI in a subprocess;
- a re-push of the same version (must write 0 blobs) and a push of a new version with the same files
  (must write only its manifest and envelope);
- ``buildyard artifacts pull`` into a new directory (signature, BLAKE3, SHA-256 and SHA-512 checked).

Medians are printed with the ratio to ``cp -r`` (target: push and pull ≤ 2×).
Run: ``nice python bench/bench_artifacts.py [--size-mib 1024] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FILE_KIB = 128
CLI = [sys.executable, "-m", "buildyard"]


def make_tree(root: Path, size_mib: int, many_mib: int) -> None:
    many = root / "many"
    many.mkdir(parents=True)
    words = os.urandom(4096).hex()
    n_files = many_mib * 1024 // FILE_KIB
    for i in range(n_files):
        sub = many / f"d{i // 256:02}"
        sub.mkdir(exist_ok=True)
        if i % 2:
            data = os.urandom(FILE_KIB * 1024)
        else:
            start = (i * 97) % 4096
            data = ((f"line {i} " + words[start : start + 200] + "\n") * 10_000).encode()[: FILE_KIB * 1024]
        (sub / f"f{i:05}.dat").write_bytes(data)
    with (root / "large.bin").open("wb") as f:
        for _ in range(size_mib - many_mib):
            f.write(os.urandom(1024 * 1024))


CPU: dict[str, list[float]] = {}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: list[str], label: str = "", **kw: object) -> tuple[float, str]:
    """Wall time of ``cmd`` (and its user+system CPU time, recorded under ``label``)."""
    cpu0 = _children_cpu()
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)  # type: ignore[call-overload]
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    if label:
        CPU.setdefault(label, []).append(_children_cpu() - cpu0)
    return elapsed, proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--many-mib", type=int, default=512, help="MiB in small files")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path, help="Where to put the data (default: a temp dir)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-artifacts-", dir=args.workdir))
    try:
        src = work / "src"
        print(f"generating {args.size_mib} MiB ({args.many_mib} MiB in {FILE_KIB} KiB files) in {src} ...")
        make_tree(src, args.size_mib, args.many_mib)
        n_files = sum(1 for _ in src.rglob("*") if _.is_file())
        keys = work / "keys"
        env = {**os.environ, "BUILDYARD_KEYS_DIR": str(keys), "BUILDYARD_HOME": str(work / "home")}
        timed([*CLI, "keys", "generate"], env=env)
        subprocess.run(["cat", *map(str, src.rglob("*.dat"))], stdout=subprocess.DEVNULL, check=True)  # warm

        cp, cp_sync, push, repush, newver, pull = [], [], [], [], [], []
        for r in range(args.rounds):
            dst = work / f"cp{r}"
            t, _ = timed(["cp", "-r", str(src), str(dst)], "cp")
            cp.append(t)
            shutil.rmtree(dst)
            start = time.perf_counter()
            subprocess.run(["cp", "-r", str(src), str(dst)], check=True)
            subprocess.run(["sync"], check=True)
            cp_sync.append(time.perf_counter() - start)
            shutil.rmtree(dst)

            repo = work / f"repo{r}"
            base = [*CLI, "artifacts"]
            push_cmd = [*base, "push", "bench", str(src), "--no-sbom", "--json", "--repo", str(repo)]
            t, out = timed([*push_cmd, "--version", "1.0.0"], "push", env=env)
            push.append(t)
            first = json.loads(out)
            t, out = timed([*push_cmd, "--version", "1.0.0"], "repush", env=env)
            repush.append(t)
            again = json.loads(out)
            if again["blobs_written"] != 0 or again["created"]:
                raise SystemExit(f"re-push wrote {again['blobs_written']} blobs (expected 0)")
            t, out = timed([*push_cmd, "--version", "1.0.1"], "newver", env=env)
            newver.append(t)
            if json.loads(out)["blobs_written"] != 2:
                raise SystemExit("a new version of unchanged files wrote more than manifest + envelope")

            dest = work / f"pull{r}"
            t, _ = timed(
                [*base, "pull", "bench@1.0.0", "--dest", str(dest), "--repo", str(repo)], "pull", env=env
            )
            pull.append(t)
            same = subprocess.run(["diff", "-r", "-q", str(src), str(dest)], capture_output=True, check=False)
            if same.returncode != 0:
                raise SystemExit("pulled tree differs from the source")
            stored = sum(p.stat().st_size for p in (repo / "blobs").rglob("*") if p.is_file())
            shutil.rmtree(dest)
            shutil.rmtree(repo)
            print(f"round {r + 1}: cp {cp[-1]:.2f}s  push {push[-1]:.2f}s  pull {pull[-1]:.2f}s")

        med = statistics.median
        peer = med(cp)
        print()
        print(
            f"data: {args.size_mib} MiB, {n_files} files; first push wrote {first['blobs_written']} blobs, "
            f"{stored / 2**20:.0f} MiB stored (zstd)"
        )
        print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print(f"{'operation':<40}{'median s':>10}{'MiB/s':>9}{'vs cp -r':>10}{'CPU s':>8}")
        rows = [
            ("cp -r (peer)", peer, "cp"),
            ("cp -r + sync", med(cp_sync), ""),
            ("artifacts push", med(push), "push"),
            ("artifacts push, unchanged (0 blobs)", med(repush), "repush"),
            ("artifacts push, new version (2 blobs)", med(newver), "newver"),
            ("artifacts pull (verified)", med(pull), "pull"),
        ]
        for label, value, key in rows:
            cpu = f"{med(CPU[key]):>8.2f}" if key else f"{'':>8}"
            print(f"{label:<40}{value:>10.2f}{args.size_mib / value:>9.0f}{value / peer:>9.2f}×{cpu}")
        ok = med(push) <= 2 * peer and med(pull) <= 2 * peer
        print(f"\ntarget push and pull ≤ 2× cp -r: {'met' if ok else 'NOT met'}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
