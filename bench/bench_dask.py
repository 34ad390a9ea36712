"""The dask executor against the local one (issue 16, "Speed"), same invocation, alternating rounds, medians.

Phases (``--phase``, default ``overhead``; ``all`` runs the three with one cluster: a scheduler and 2 agents
started here on 127.0.0.1, each agent run from its own directory, not the project's):

- ``overhead``: ``buildyard run --no-cache`` of ``N`` independent trivial jobs (``echo x > out/<i>``,
  each declaring its output, so each goes through the whole remote path: files shipped by content, a
  clean workspace on the agent, output uploaded and restored) with ``--executor local`` at ``-j 2`` (the
  machine's cores) and with ``--executor dask://…`` at ``-j --slots`` (jobs in flight: a remote job waits
  on the network, not on a core) and at ``-j 2``. Target: ≤ 10 ms of overhead per job over local.
- ``monorepo``: the 100-package npm monorepo of ``bench_monorepo.py`` (``npm run build`` per package,
  ``needs`` mirroring the workspace, ``dist/`` as outputs), ``buildyard run -j 2`` cold (outputs and
  cache entries deleted; the agents' blob caches stay warm) then fully cached, local against the cluster,
  each in its own copy of the repository, through the warm daemon (and the cached run without it).
  Target: fully cached through the cluster ≤ 1.2× local (cache hits are resolved on the orchestrator).
- ``workspace``: one trivial job (``date +%s.%N > stamp``, its first command) in a project of 1,000 input
  files of 10 KB, against the same job in a project without them, ``run --no-cache`` after a warm-up run (the
  agents' blob caches hold every blob). Measured: from the scheduler receiving the job (its first transition,
  i.e. the orchestrator's submit) to the job's first command on the agent (the workspace ready, plus a
  ``bash`` start), and the wall time of the whole run. Target: workspace ready ≤ 200 ms.

Run: ``.venv/bin/python bench/bench_dask.py [--phase overhead|monorepo|workspace|all] [--jobs 500]
[--rounds 3]``. Needs git and bash (and npm for ``monorepo``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
ENV = {**os.environ, "PYTHONPATH": str(SRC), "BUILDYARD_DAEMON": "0"}
BUILDYARD = str(Path(sys.executable).with_name("buildyard"))
WHO = {
    "GIT_AUTHOR_NAME": "b",
    "GIT_AUTHOR_EMAIL": "b@b",
    "GIT_COMMITTER_NAME": "b",
    "GIT_COMMITTER_EMAIL": "b@b",
}


def _commit(root: Path) -> None:
    for cmd in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "init"]):
        subprocess.run(["git", *cmd], cwd=root, check=True, env={**ENV, **WHO})


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
    _commit(root)


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


@contextlib.contextmanager
def _cluster(base: Path, slots: int) -> Iterator[str]:
    """A scheduler and 2 agents (``slots`` threads each), each agent run from its own directory; the
    ``dask://`` target."""
    from buildyard.dask.cluster import agent_argv, agent_env, scheduler_argv, wait_for_scheduler

    procs: list[subprocess.Popen[bytes]] = []
    try:
        sched = subprocess.Popen(scheduler_argv(port=0, scheduler_file=base / "s.json"), env=ENV,
                                 stderr=(base / "scheduler.log").open("wb"))  # fmt: skip
        procs.append(sched)
        address = wait_for_scheduler(base / "s.json", sched)
        for i in (1, 2):
            work = base / f"agent{i}"
            work.mkdir()
            argv = agent_argv(address, work_dir=work, slots=slots, name=f"agent{i}")
            argv += ["--preload", str(Path(__file__).with_name("dask_timing_preload.py"))]
            env = {**agent_env(work), **ENV}  # the blob cache in the work directory, as `buildyard agent`
            env["BUILDYARD_BENCH_TIMINGS"] = str(base / "timings.txt")
            log = (base / f"agent{i}.log").open("wb")
            procs.append(subprocess.Popen(argv, env=env, cwd=work, stderr=log))
        yield f"dask://{address.removeprefix('tcp://')}"
    except BaseException:
        for who in ("scheduler", "agent1", "agent2"):  # why it failed, if the cluster had a say
            with contextlib.suppress(OSError):
                tail = (base / f"{who}.log").read_text(errors="replace").splitlines()[-15:]
                print(f"--- {who}.log (end)", *tail, sep="\n", file=sys.stderr)
        raise
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            proc.wait()


def phase_overhead(base: Path, target: str, args: argparse.Namespace) -> None:
    _project(base / "proj", args.jobs)
    _run(base / "proj", target)  # warm-up: agents import buildyard, blobs reach their caches
    times: dict[str, list[float]] = {"local": [], "dask": [], "dask -j2": []}
    for _ in range(args.rounds):
        times["local"].append(_run(base / "proj", "local"))
        times["dask"].append(_run(base / "proj", target, args.slots))
        times["dask -j2"].append(_run(base / "proj", target))
    medians = {name: statistics.median(values) for name, values in times.items()}
    local = medians["local"]
    print(f"\n{args.jobs} jobs, {args.rounds} rounds; local -j 2, dask -j {args.slots} (2 agents) and -j 2")
    print(f"{'executor':<10}{'median s':>10}{'per job ms':>12}{'overhead ms/job':>17}")
    for name, value in medians.items():
        extra = (value - local) / args.jobs * 1000
        print(f"{name:<10}{value:>10.2f}{value / args.jobs * 1000:>12.2f}{extra:>17.2f}")


def _timed_run(argv: list[str], root: Path, env: dict[str, str], want: str) -> float:
    """Wall time of ``buildyard run … --json`` in ``root``; every job must end ``want``."""
    start = time.perf_counter()
    done = subprocess.run([*argv, "--json"], cwd=root, env=env, capture_output=True, text=True, check=False)
    took = time.perf_counter() - start
    try:
        statuses = {j["status"] for j in json.loads(done.stdout)["jobs"]}
    except (ValueError, KeyError):
        statuses = set()
    if done.returncode != 0 or statuses != {want}:
        raise SystemExit(f"{' '.join(argv)}: expected {want}, got {statuses}: {done.stderr[-2000:]}")
    return took


def phase_monorepo(base: Path, target: str, args: argparse.Namespace) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_cache import make_monorepo, name
    from bench_monorepo import clean, write_pipeline

    roots = {"local": base / "mono-local", "dask": base / "mono-dask"}
    make_monorepo(roots["local"])
    write_pipeline(roots["local"])
    subprocess.run(["git", "add", "buildyard.yml"], cwd=roots["local"], check=True)
    subprocess.run(["git", "commit", "-qm", "pipeline"], cwd=roots["local"], check=True, env={**ENV, **WHO})
    shutil.copytree(roots["local"], roots["dask"], symlinks=True)
    (base / "dd").mkdir(mode=0o700)
    daemon_env = {**ENV, "BUILDYARD_DAEMON": "1", "BUILDYARD_DAEMON_DIR": str(base / "dd")}
    subprocess.run([BUILDYARD, "daemon", "start"], env=daemon_env, check=True, capture_output=True)
    argv = {
        "local": [BUILDYARD, "run", "-j", "2"],
        "dask": [BUILDYARD, "run", "-j", "2", "--executor", target],
    }
    results: dict[tuple[str, str], list[float]] = {}
    try:
        for kind in ("local", "dask"):  # warm-up: history DB, .pyc, the agents' imports and blob caches
            clean(roots[kind], "buildyard")
            _timed_run(argv[kind], roots[kind], daemon_env, "success")
        for r in range(args.rounds):
            for kind in ("local", "dask") if r % 2 == 0 else ("dask", "local"):
                root = roots[kind]
                clean(root, "buildyard")
                results.setdefault(("cold", kind), []).append(
                    _timed_run(argv[kind], root, daemon_env, "success")
                )
                missing = [
                    p for p in (root / "packages").iterdir() if not (p / "dist" / "index.txt").is_file()
                ]
                if missing:
                    raise SystemExit(
                        f"{kind}: outputs not restored in {len(missing)} packages ({missing[0].name})"
                    )
                cached = _timed_run(argv[kind], root, daemon_env, "cached")
                results.setdefault(("fully cached", kind), []).append(cached)
                no_daemon = _timed_run(argv[kind], root, ENV, "cached")
                results.setdefault(("fully cached, no daemon", kind), []).append(no_daemon)
        assert (roots["dask"] / "packages" / name(9, 9) / "dist" / "index.txt").read_text() == "built"
    finally:
        subprocess.run([BUILDYARD, "daemon", "stop"], env=daemon_env, check=False, capture_output=True)
    med = statistics.median
    print(f"\n100-package monorepo, run -j 2, through the daemon, median of {args.rounds} alternating rounds")
    print(f"{'case':<26}{'local':>10}{'dask':>10}{'ratio':>8}  target")
    for case, goal in (("cold", "(info)"), ("fully cached", "≤ 1.20"), ("fully cached, no daemon", "(info)")):
        local, remote = med(results[(case, "local")]), med(results[(case, "dask")])
        print(f"{case:<26}{local * 1000:>8.0f}ms{remote * 1000:>8.0f}ms{remote / local:>8.2f}  {goal}")


def _workspace_project(root: Path, files: int) -> None:
    root.mkdir()
    rng = random.Random(16)
    for i in range(files):
        path = root / f"src{i % 20:02d}" / f"f{i:04d}.txt"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(rng.randbytes(10 * 1024))
    (root / "buildyard.yml").write_text(
        "jobs:\n  ws:\n    script: [date +%s.%N > stamp]\n    artifacts: {paths: [stamp]}\n"
    )
    (root / ".gitignore").write_text(".buildyard/\nstamp\n")
    _commit(root)


def _submitted_at(address: str) -> dict[str, float]:
    """Each ``buildyard-job-*`` task's first transition on the scheduler (when it received the submit)."""
    from distributed import Client

    def first_seen(dask_scheduler: object) -> dict[str, float]:
        seen: dict[str, float] = {}
        for item in dask_scheduler.transition_log:  # type: ignore[attr-defined]
            key = str(item.key)
            if key.startswith("buildyard-job-") and key not in seen:
                seen[key] = item.timestamp
        return seen

    with Client(address, set_as_default=False, timeout="10s") as client:  # type: ignore[no-untyped-call]
        return dict(client.run_on_scheduler(first_seen))


def _timings(base: Path) -> list[tuple[str, float, float, int]]:
    """The agents' own timings (``dask_timing_preload.py``): ``(phase, start, end, files)``."""
    path = base / "timings.txt"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        phase, start, end, files = line.split()
        rows.append((phase, float(start), float(end), int(files)))
    return rows


def phase_workspace(base: Path, target: str, args: argparse.Namespace) -> None:
    address = "tcp://" + target.removeprefix("dask://")
    roots = {"1,000 files": base / "ws-1000", "no inputs": base / "ws-0"}
    _workspace_project(roots["1,000 files"], 1000)
    _workspace_project(roots["no inputs"], 0)
    argv = [BUILDYARD, "run", "--no-cache", "-j", "2", "--executor", target]
    columns = ("submit→first command", "submit→task start", "workspace (agent)", "→first command", "run wall")
    values: dict[str, dict[str, list[float]]] = {k: {c: [] for c in columns} for k in roots}
    for root in roots.values():  # warm-up: the blobs reach the agents' caches (both agents, 2 runs each)
        for _ in range(4):
            _timed_run(argv, root, ENV, "success")
    for r in range(args.rounds * 3):
        for kind in roots if r % 2 == 0 else reversed(roots):
            before, seen = set(_submitted_at(address)), len(_timings(base))
            wall = _timed_run(argv, roots[kind], ENV, "success")
            new = [v for k, v in _submitted_at(address).items() if k not in before]
            timings = {phase: (start, end) for phase, start, end, _n in _timings(base)[seen:]}
            if len(new) != 1 or set(timings) != {"run_job", "materialize"}:
                raise SystemExit(f"expected one new task and its timings, saw {len(new)}, {sorted(timings)}")
            submitted, stamp = new[0], float((roots[kind] / "stamp").read_text())
            row = values[kind]
            row["submit→first command"].append(stamp - submitted)
            row["submit→task start"].append(timings["run_job"][0] - submitted)
            row["workspace (agent)"].append(timings["materialize"][1] - timings["materialize"][0])
            row["→first command"].append(stamp - timings["materialize"][1])
            row["run wall"].append(wall)
    med = statistics.median
    rounds = args.rounds * 3
    print(f"\none job, 1,000 input files of 10 KB (blobs in the agents' caches) vs none, {rounds} runs,")
    print("alternating, medians in ms (min in brackets); submit = the scheduler receiving the task")
    print(f"{'project':<13}" + "".join(f"{c:>24}" for c in columns))
    for kind in roots:
        cells = (f"{med(values[kind][c]) * 1000:.0f} ({min(values[kind][c]) * 1000:.0f})" for c in columns)
        print(f"{kind:<13}" + "".join(f"{cell:>24}" for cell in cells))
    ready = med(values["1,000 files"]["submit→first command"]) * 1000
    extra = (med(values["1,000 files"]["run wall"]) - med(values["no inputs"]["run wall"])) * 1000
    print(f"workspace ready (submit→first command, 1,000 files): {ready:.0f} ms, target ≤ 200 ms; "
          f"the files add {extra:.0f} ms to the run's wall time")  # fmt: skip


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phase", choices=("overhead", "monorepo", "workspace", "all"), default="overhead")
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--slots", type=int, default=4, help="jobs in flight on the cluster (-j), agents' slots / 2"
    )
    args = parser.parse_args()
    sys.path.insert(0, str(SRC))
    phases = ("overhead", "monorepo", "workspace") if args.phase == "all" else (args.phase,)
    with tempfile.TemporaryDirectory(prefix="bench-dask-") as tmp:
        base = Path(tmp)
        with _cluster(base, max(1, args.slots // 2)) as target:
            for phase in phases:
                print(f"[{phase}] load average {_load()}", flush=True)
                {"overhead": phase_overhead, "monorepo": phase_monorepo, "workspace": phase_workspace}[phase](
                    base, target, args
                )
                print(f"[{phase}] load average after {_load()}", flush=True)


if __name__ == "__main__":
    main()
