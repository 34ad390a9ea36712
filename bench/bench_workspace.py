"""Benchmark: making an isolated workspace of a 5,000-file repository (issue 19, target ≤ 150 ms).

Tree: 5,000 files of 1–20 KiB in 200 directories (~52 MiB), a git repository. Measured in the same
run, alternating, medians of N rounds (each makes a fresh destination, then removes it untimed):

- buildyard ``overlay`` (the default where it works): per job, ``make_overlay`` + the first step's
  ``unshare -Urm`` + overlay mount (+ ``true``), over the run's hardlink farm, made once per run
  (its own row);
- buildyard ``copy`` (``make_workspace``; reflink where the filesystem can, else ``copy_file_range``;
  the file list from ``git ls-files`` is made once per run, timed separately);
- ``cp -a`` and ``cp -a --reflink=auto`` of the same tree (peers);
- a hardlink farm (``cp -al``): fast but NOT correct (a job appending to a file changes the
  project's) — a reference only;

Run: ``nice python bench/bench_workspace.py [--rounds 5] [--dir /tmp]``
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from buildyard.cache.hashing import git_input_files
from buildyard.engine.workspace import make_overlay, make_workspace, overlay_supported, remove_workspace


def make_tree(root: Path, files: int = 5000, dirs: int = 200) -> None:
    """``files`` files of 1–20 KiB in ``dirs`` directories, committed to git."""
    rng = random.Random(19)
    data = os.urandom(20 * 1024)
    for i in range(files):
        path = root / f"pkg{i % dirs:03d}" / f"file{i:05d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data[: rng.randint(1024, 20 * 1024)] + i.to_bytes(4, "little"))
    (root / ".gitignore").write_text(".buildyard/\n")
    # the repository lives beside the tree (``.git`` is a gitdir file): the peers copy the same tree
    for args in (
        ["init", "-q", f"--separate-git-dir={root.parent / 'gitdir'}"],
        ["add", "-A"],
        ["-c", "user.email=b@b", "-c", "user.name=b", "-c", "gc.auto=0", "commit", "-qm", "t"],
    ):
        subprocess.run(["git", *args], cwd=root, check=True)


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="by-bench-ws-", dir=args.dir))
    try:
        project = base / "project"
        project.mkdir()
        make_tree(project)
        listing = []
        files: list[str] = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            files = git_input_files(project) or []
            listing.append(time.perf_counter() - start)
        dest = base / "ws"

        def ours() -> object:
            return make_workspace(project, dest, files)

        farm = base / ".lower"

        def farm_once() -> object:
            return make_workspace(project, dest, files, link=True)

        def ours_overlay() -> object:
            made = make_overlay(farm, dest, project, ())
            argv = shlex.split(made.shell("true", dest))
            return subprocess.run(argv, cwd=dest, check=True)

        def cp(*extra: str) -> Callable[[], object]:
            return lambda: subprocess.run(["cp", "-a", *extra, str(project), str(dest)], check=True)

        methods: dict[str, Callable[[], object]] = {"copy: make_workspace (by)": ours}
        if overlay_supported(str(base)):
            make_workspace(project, farm, files, link=True)
            methods["overlay per job (by)"] = ours_overlay
            methods["overlay farm, once a run (by)"] = farm_once
        methods |= {
            "cp -a": cp(),
            "cp -a --reflink=auto": cp("--reflink=auto"),
            "cp -al (hardlinks: unsafe)": cp("-l"),
        }
        times: dict[str, list[float]] = {name: [] for name in methods}
        method = _method_of(base)
        for _ in range(args.rounds):
            for name, action in methods.items():
                times[name].append(timed(action))
                remove_workspace(dest)
                shutil.rmtree(dest, ignore_errors=True)
        cp_a = statistics.median(times["cp -a"])
        print(
            f"5,000 files, {sum((project / f).stat().st_size for f in files) / 2**20:.0f} MiB, "
            f"{args.rounds} rounds, medians; file list (git ls-files, once per run): "
            f"{statistics.median(listing) * 1000:.0f} ms; buildyard copied by: {method}"
        )
        print(f"| {'method':<30} | {'median':>9} | {'min':>9} | {'vs cp -a':>8} |")
        print(f"|{'-' * 32}|{'-' * 11}|{'-' * 11}|{'-' * 10}|")
        for name, values in times.items():
            median = statistics.median(values)
            low = min(values) * 1000
            print(f"| {name:<30} | {median * 1000:7.0f} ms | {low:7.0f} ms | {median / cp_a:7.2f}× |")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _method_of(base: Path) -> str:
    """reflink or copy: whether the filesystem of ``base`` takes a FICLONE (probed on one file)."""
    import fcntl

    probe = base / ".probe"
    probe.write_bytes(b"x")
    target = base / ".probe2"
    try:
        with probe.open("rb") as src, target.open("wb") as dst:
            fcntl.ioctl(dst.fileno(), 0x40049409, src.fileno())
    except OSError:
        return "copy (no reflinks on this filesystem)"
    else:
        return "reflink"
    finally:
        probe.unlink()
        target.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
