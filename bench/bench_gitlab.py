"""A 100-job shell-only ``.gitlab-ci.yml``: ``buildyard run -f`` vs ``gitlab-ci-local`` (shell executor).

The pipeline: 4 stages of 25 jobs; the jobs of stage 2 and 4 use ``needs`` (one job of the stage
before), stage 3 waits for whole stages; each job runs ``before_script`` + two script lines and
writes a file. Both tools run it cold in the same git repository, alternating, ``--rounds`` times;
buildyard with ``--no-cache`` (every job runs, as in GitLab) and ``-j`` = CPUs, gitlab-ci-local with
``--force-shell-executor`` and its default concurrency. Same job results are checked (every job of
both succeeds). Prints medians and the ratio (target: buildyard ≥ 3× faster).

Run: ``.venv/bin/python bench/bench_gitlab.py [--rounds N] [--gcl 'node .../gitlab-ci-local/dist/index.js']``.
gitlab-ci-local 4.x needs Node ≥ 22 and rsync: ``npm install --prefix /tmp/gcl gitlab-ci-local@4`` and,
if the system Node is older, ``npm install --prefix /tmp/node22 node@22`` (then ``--gcl
"/tmp/node22/node_modules/.bin/node /tmp/gcl/node_modules/gitlab-ci-local/dist/index.js"``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUILDYARD = [sys.executable, "-m", "buildyard"]
STAGES = ("build", "test", "package", "deploy")
PER_STAGE = 25


def pipeline() -> str:
    """The 100-job GitLab file."""
    lines = [
        f"stages: [{', '.join(STAGES)}]",
        "variables:",
        "  OUT: out",
        "default:",
        "  before_script: [mkdir -p $OUT]",
        "",
    ]
    for s, stage in enumerate(STAGES):
        for i in range(PER_STAGE):
            lines += [f"{stage}_{i}:", f"  stage: {stage}"]
            if s in (1, 3):
                lines.append(f"  needs: [{STAGES[s - 1]}_{i}]")
            lines += [
                "  script:",
                f'    - echo "$CI_JOB_NAME in $CI_JOB_STAGE" > $OUT/{stage}_{i}.txt',
                f"    - test -s $OUT/{stage}_{i}.txt",
                "",
            ]
    return "\n".join(lines)


def make_repo(root: Path) -> None:
    root.mkdir(parents=True)
    (root / ".gitlab-ci.yml").write_text(pipeline())
    (root / ".gitignore").write_text(".buildyard/\n.gitlab-ci-local/\nout/\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "b"}
    env["GIT_COMMITTER_EMAIL"] = "b@x"
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "bench"]):
        subprocess.run(["git", *args], cwd=root, env=env, check=True)


def run_buildyard(root: Path, daemon: bool = False) -> tuple[float, dict[str, str]]:
    start = time.perf_counter()
    out = subprocess.run(
        [*BUILDYARD, "run", "-f", ".gitlab-ci.yml", "--no-cache", "--json"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "BUILDYARD_DAEMON": "1" if daemon else "0"},
    )
    took = time.perf_counter() - start
    if not out.stdout.strip():
        raise SystemExit(f"buildyard failed: {out.stderr[-2000:]}")
    jobs = {j["name"]: j["status"] for j in json.loads(out.stdout)["jobs"]}
    return took, jobs


def run_gcl(root: Path, gcl: list[str]) -> tuple[float, dict[str, str]]:
    shutil.rmtree(root / ".gitlab-ci-local", ignore_errors=True)
    start = time.perf_counter()
    out = subprocess.run(
        [*gcl, "--force-shell-executor", "--no-color"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    took = time.perf_counter() - start
    jobs: dict[str, str] = {}
    for line in out.stdout.splitlines():  # the summary: "PASS  job_name" / "FAIL  job_name"
        parts = line.split()
        if len(parts) >= 2 and parts[0] in ("PASS", "FAIL", "WARN"):
            jobs[parts[1]] = "success" if parts[0] == "PASS" else "failed"
    if out.returncode != 0:
        print(out.stdout[-2000:], out.stderr[-2000:], file=sys.stderr)
    return took, jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--gcl", default="gitlab-ci-local", help="command that runs gitlab-ci-local")
    parser.add_argument(
        "--daemon",
        action="store_true",
        help="buildyard as users run it by default: through its warm daemon (started by a first, "
        "untimed run; off by default here, and in CI)",
    )
    args = parser.parse_args()
    gcl = shlex.split(args.gcl)
    with tempfile.TemporaryDirectory(prefix="bench-gitlab-") as tmp:
        root = Path(tmp) / "repo"
        make_repo(root)
        if args.daemon:
            run_buildyard(root, daemon=True)  # starts the daemon: not timed
        by_times: list[float] = []
        gcl_times: list[float] = []
        for _ in range(args.rounds):
            took, by_jobs = run_buildyard(root, daemon=args.daemon)
            by_times.append(took)
            took, gcl_jobs = run_gcl(root, gcl)
            gcl_times.append(took)
        if args.daemon:
            subprocess.run([*BUILDYARD, "daemon", "stop"], cwd=root, capture_output=True, check=False)
        ok_by = sum(1 for s in by_jobs.values() if s == "success")
        ok_gcl = sum(1 for s in gcl_jobs.values() if s == "success")
        same = ok_by == ok_gcl == len(STAGES) * PER_STAGE
    by, peer = statistics.median(by_times), statistics.median(gcl_times)
    how = "daemon" if args.daemon else "no daemon"
    title = f"100-job GitLab pipeline, cold ({os.cpu_count()} CPUs, median of {args.rounds}, buildyard {how})"
    print(f"| {title} | buildyard | gitlab-ci-local | ratio |")
    print("|---|---|---|---|")
    row = f"{by:.2f} s | {peer:.2f} s | {peer / by:.2f}× faster"
    print(f"| run -f .gitlab-ci.yml / --force-shell-executor | {row} |")
    print(f"jobs succeeded: buildyard {ok_by}, gitlab-ci-local {ok_gcl} (same results: {same})")
    rounds = (
        f"buildyard {[round(t, 2) for t in by_times]}, gitlab-ci-local {[round(t, 2) for t in gcl_times]}"
    )
    print(f"all rounds: {rounds}")


if __name__ == "__main__":
    main()
