"""A/B of two buildyard installs on the trivial-jobs graph of ``bench_engine``, with make as the yardstick.

Day-to-day speed on a shared 2-core VM moves ratios by ±30 %, so a change to the per-job path is judged
by running the code before and after it in the same alternating rounds: each install through its own
warm daemon, in its own project directory (its own history database), ``sh`` as the jobs' shell.

Run: ``python bench/ab_engine.py --old OLD/.venv/bin/buildyard [--new PATH] [--rounds 9] [--jobs 500]``
(make an OLD install with ``git worktree add /tmp/old REV`` and a venv there).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_engine import write_trivial

ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True, type=Path, help="the other install's buildyard executable")
    parser.add_argument("--new", type=Path, default=Path(sys.executable).with_name("buildyard"))
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--jobs", type=int, default=500)
    args = parser.parse_args()
    tools = {"old": str(args.old), "new": str(args.new)}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        envs: dict[str, dict[str, str]] = {"make": ENV}
        for name, exe in tools.items():
            daemon_dir = work / f"daemon-{name}"
            daemon_dir.mkdir(mode=0o700)
            write_trivial(work / name, args.jobs)
            envs[name] = {**ENV, "BUILDYARD_DAEMON": "1", "BUILDYARD_DAEMON_DIR": str(daemon_dir)}
            subprocess.run([exe, "daemon", "start"], env=envs[name], check=True, capture_output=True)
        times: dict[str, list[float]] = {"old": [], "new": [], "make": []}
        try:
            for r in range(args.rounds + 1):  # round 0 warms up and is discarded
                for name in ("old", "new", "make") if r % 2 else ("make", "new", "old"):
                    root = work / ("old" if name == "make" else name)
                    shutil.rmtree(root / "out", ignore_errors=True)
                    (root / "out").mkdir()
                    command = (
                        ["make", "-s", "-j2"]
                        if name == "make"
                        else [tools[name], "run", "-f", "sh.yml", "-j", "2", "--no-cache"]
                    )
                    start = time.perf_counter()
                    subprocess.run(
                        command, cwd=root, env=envs[name], check=True,
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    )  # fmt: skip
                    elapsed = time.perf_counter() - start
                    assert len(list((root / "out").iterdir())) == args.jobs
                    if r:
                        times[name].append(elapsed)
        finally:
            for name, exe in tools.items():
                subprocess.run([exe, "daemon", "stop"], env=envs[name], check=False, capture_output=True)
    median = {name: statistics.median(values) for name, values in times.items()}
    print(f"\n{args.jobs} trivial jobs, -j 2, sh, through each daemon (median of {args.rounds} rounds)")
    print(f"{'tool':<8}{'wall':>10}")
    for name, seconds in median.items():
        print(f"{name:<8}{seconds * 1000:>8.0f}ms")
    print(f"ratio old/make = {median['old'] / median['make']:.2f}")
    print(f"ratio new/make = {median['new'] / median['make']:.2f}")
    print(f"new/old        = {median['new'] / median['old']:.3f}")


if __name__ == "__main__":
    main()
