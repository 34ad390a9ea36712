"""A 100-job GitHub Actions workflow: ``buildyard run -f`` cold vs cached (and the step runner's cost).

The workflow: 4 layers of 25 jobs; a job of layers 2 and 4 needs one job of the layer before and
reads its output (``needs.<job>.outputs.v``), layer 3 needs nothing; each job runs two steps: one
writes a file and sets a step output through ``$GITHUB_OUTPUT``, the next reads the output and the
file. Measured in one git repository, alternating, ``--rounds`` times (medians):

- cold: ``run -f .github/workflows/ci.yml`` with an empty cache (``.buildyard`` removed), every job runs;
- cached: the same command again: every job is a cache hit;
- native: the same shell commands as a ``buildyard.yml`` of 100 one-step jobs (cold, ``--no-cache``),
  to show what the GitHub step runner (one Python process per job) costs.

``act`` (the usual peer) is a Go binary downloaded from GitHub releases and needs Docker; neither is
available on the development machine, so there is no peer column. Every job of every run must succeed.

Run: ``.venv/bin/python bench/bench_github.py [--rounds N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUILDYARD = [sys.executable, "-m", "buildyard"]
LAYERS = 4
PER_LAYER = 25
WORKFLOW = ".github/workflows/ci.yml"


def workflow() -> str:
    """The 100-job workflow."""
    lines = ["name: bench", "on: [push]", "env:", "  OUT: out", "jobs:"]
    for layer in range(LAYERS):
        for i in range(PER_LAYER):
            name = f"l{layer}_{i}"
            lines += [f"  {name}:", "    runs-on: ubuntu-latest"]
            need = f"l{layer - 1}_{i}" if layer in (1, 3) else None
            if need:
                lines.append(f"    needs: {need}")
            lines += [
                "    outputs:",
                "      v: ${{ steps.w.outputs.v }}",
                "    steps:",
                "      - id: w",
                "        run: |",
                f'          mkdir -p "$OUT" && echo "{name}" > "$OUT/{name}.txt"',
                f'          echo "v={name}" >> "$GITHUB_OUTPUT"',
                "      - run: |",
                f'          test "${{{{ steps.w.outputs.v }}}}" = "{name}" && test -s "$OUT/{name}.txt"',
            ]
            if need:
                lines.append(f'          test "${{{{ needs.{need}.outputs.v }}}}" = "{need}"')
    return "\n".join(lines) + "\n"


def native() -> str:
    """The same shell commands as a plain ``buildyard.yml``."""
    lines = ["name: native", "variables:", "  OUT: out", "jobs:"]
    for layer in range(LAYERS):
        for i in range(PER_LAYER):
            name = f"l{layer}_{i}"
            lines.append(f"  {name}:")
            if layer in (1, 3):
                lines.append(f"    needs: [l{layer - 1}_{i}]")
            lines += [
                "    script:",
                f'      - mkdir -p "$OUT" && echo "{name}" > "$OUT/{name}.txt"',
                f'      - test -s "$OUT/{name}.txt"',
            ]
    return "\n".join(lines) + "\n"


def make_repo(root: Path) -> None:
    (root / WORKFLOW).parent.mkdir(parents=True)
    (root / WORKFLOW).write_text(workflow())
    (root / "native.yml").write_text(native())
    (root / ".gitignore").write_text(".buildyard/\nout/\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "b"}
    env["GIT_COMMITTER_EMAIL"] = "b@x"
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "bench"]):
        subprocess.run(["git", *args], cwd=root, env=env, check=True)


def run(root: Path, *args: str) -> tuple[float, dict[str, str]]:
    start = time.perf_counter()
    out = subprocess.run(
        [*BUILDYARD, "run", *args, "--json"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "BUILDYARD_DAEMON": "0"},
    )
    took = time.perf_counter() - start
    if not out.stdout.strip():
        raise SystemExit(f"buildyard failed: {out.stderr[-2000:]}")
    jobs = {j["name"]: j["status"] for j in json.loads(out.stdout)["jobs"]}
    return took, jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    cold: list[float] = []
    cached: list[float] = []
    plain: list[float] = []
    total = LAYERS * PER_LAYER
    with tempfile.TemporaryDirectory(prefix="bench-github-") as tmp:
        root = Path(tmp) / "repo"
        make_repo(root)
        for _ in range(args.rounds):
            for path in (".buildyard", ".buildyard-github", "out"):
                shutil.rmtree(root / path, ignore_errors=True)
            took, jobs = run(root, "-f", WORKFLOW)
            assert sum(s == "success" for s in jobs.values()) == total, jobs
            cold.append(took)
            took, jobs = run(root, "-f", WORKFLOW)
            assert sum(s == "cached" for s in jobs.values()) == total, jobs
            cached.append(took)
            took, jobs = run(root, "-f", "native.yml", "--no-cache")
            assert sum(s == "success" for s in jobs.values()) == total, jobs
            plain.append(took)
    c, h, n = statistics.median(cold), statistics.median(cached), statistics.median(plain)
    print(f"| 100-job GitHub workflow ({os.cpu_count()} CPUs, median of {args.rounds}) | time | ratio |")
    print("|---|---|---|")
    print(f"| run -f, cold (empty cache, every job runs) | {c:.2f} s | 1.00 |")
    print(f"| run -f, cached (every job a hit) | {h * 1000:.0f} ms | {c / h:.1f}× faster than cold |")
    print(f"| same commands as buildyard.yml, --no-cache | {n:.2f} s | step runner costs {c / n:.2f}× |")
    print("act: not measured (a Go binary from GitHub releases needing Docker; neither is available here)")
    print(f"all rounds: cold {[round(t, 2) for t in cold]}, cached {[round(t, 3) for t in cached]}, ", end="")
    print(f"native {[round(t, 2) for t in plain]}")


if __name__ == "__main__":
    main()
