"""The dask executor's overhead per job: N trivial jobs on 2 local agents vs the local executor.

Both runs in the same invocation, alternating rounds, medians: ``buildyard run --no-cache -j 2`` of
``N`` independent jobs (``echo x > out/<i>``, each declaring its output, so each goes through the
whole remote path: files shipped by content, a clean workspace on the agent, output uploaded and
restored) with ``--executor local`` (``-j 2``: the machine's cores) and with ``--executor dask://…`` (a
scheduler and 2 agents started here, on 127.0.0.1) at ``-j --slots`` (jobs in flight: a remote job
waits on the network, not on a core) and at ``-j 2``. Prints the table and the per-job overhead over local.

Run: ``.venv/bin/python bench/bench_dask.py [--jobs 500] [--rounds 3]``. Needs git and bash.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
ENV = {**os.environ, "PYTHONPATH": str(SRC), "BUILDYARD_DAEMON": "0"}


def _project(root: Path, jobs: int) -> None:
    root.mkdir()
    lines = ["jobs:"]
    for i in range(jobs):
        lines += [
            f"  j{i}:",
            f"    script: [mkdir -p out && echo x > out/{i}]",
            f"    artifacts: {{paths: [out/{i}]}}",
        ]
    (root / "buildyard.yml").write_text("\n".join(lines) + "\n")
    (root / "README").write_text("bench\n")
    (root / ".gitignore").write_text(".buildyard/\nout/\n")
    who = {
        "GIT_AUTHOR_NAME": "b",
        "GIT_AUTHOR_EMAIL": "b@b",
        "GIT_COMMITTER_NAME": "b",
        "GIT_COMMITTER_EMAIL": "b@b",
    }
    for cmd in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "init"]):
        subprocess.run(["git", *cmd], cwd=root, check=True, env={**ENV, **who})


def _run(root: Path, executor: str, slots: int = 2) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "buildyard", "-C", str(root), "run", "--no-cache", "-j", str(slots), "--json",
         "--executor", executor],
        env=ENV, capture_output=True, text=True, check=False,
    )  # fmt: skip
    took = time.perf_counter() - start
    statuses = {j["status"] for j in json.loads(done.stdout)["jobs"]}
    if done.returncode != 0 or statuses != {"success"}:
        raise SystemExit(f"{executor}: run failed ({statuses}): {done.stderr[-2000:]}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--slots", type=int, default=4, help="jobs in flight on the cluster (-j), agents' slots / 2"
    )
    args = parser.parse_args()
    sys.path.insert(0, str(SRC))
    from buildyard.dask.cluster import agent_argv, agent_env, scheduler_argv, wait_for_scheduler

    with tempfile.TemporaryDirectory(prefix="bench-dask-") as tmp:
        base = Path(tmp)
        procs: list[subprocess.Popen[bytes]] = []
        try:
            sched = subprocess.Popen(scheduler_argv(port=0, scheduler_file=base / "s.json"), env=ENV,
                                     stderr=subprocess.DEVNULL)  # fmt: skip
            procs.append(sched)
            address = wait_for_scheduler(base / "s.json", sched)
            for i in (1, 2):
                work = base / f"agent{i}"
                work.mkdir()
                argv = agent_argv(address, work_dir=work, slots=max(1, args.slots // 2), name=f"agent{i}")
                env = {**agent_env(work), **ENV}  # the blob cache in the work directory, as `buildyard agent`
                procs.append(subprocess.Popen(argv, env=env, cwd=work, stderr=subprocess.DEVNULL))
            _project(base / "proj", args.jobs)
            target = f"dask://{address.removeprefix('tcp://')}"
            _run(base / "proj", target)  # warm-up: agents import buildyard, blobs reach their caches
            times: dict[str, list[float]] = {"local": [], "dask": [], "dask -j2": []}
            for _ in range(args.rounds):
                times["local"].append(_run(base / "proj", "local"))
                times["dask"].append(_run(base / "proj", target, args.slots))
                times["dask -j2"].append(_run(base / "proj", target))
        finally:
            for proc in reversed(procs):
                proc.terminate()
            for proc in procs:
                proc.wait()
    medians = {name: statistics.median(values) for name, values in times.items()}
    local = medians["local"]
    print(f"{args.jobs} jobs, {args.rounds} rounds; local -j 2, dask -j {args.slots} (2 agents) and -j 2")
    print(f"{'executor':<10}{'median s':>10}{'per job ms':>12}{'overhead ms/job':>17}")
    for name, value in medians.items():
        extra = (value - local) / args.jobs * 1000
        print(f"{name:<10}{value:>10.2f}{value / args.jobs * 1000:>12.2f}{extra:>17.2f}")


if __name__ == "__main__":
    main()
