"""End to end against Turborepo on the monorepo of issue 3, same run, alternating, medians and ratios.

100 npm-workspace packages in 10 layers of 10 (package (l, i) depends on (l-1, i) and (l-1, (i+1) mod 10);
``build`` writes ``dist/index.txt``), with an equivalent ``buildyard.yml`` (one job per package running the
same ``npm run build`` in its directory, ``needs`` mirroring the workspace dependencies, ``dist/`` as
outputs, ``env_mode: strict`` like turbo's default env mode). ``buildyard run -j 2`` (through its warm
daemon, started once before measuring) vs ``turbo run build --concurrency=2`` (npm ``turbo@^2``), each in
its own copy of the repository:

- cold: no cache entries (both caches deleted, outputs deleted) — target buildyard ≤ 1.1× turbo;
- fully cached re-run — target buildyard ≤ turbo;
- one bottom-layer source file changed (a new content every round, so 55 jobs re-run) — target ≤ turbo;
- for information: the fully cached re-run without the daemon (``BUILDYARD_DAEMON=0``).

Run: ``python bench/bench_monorepo.py [--rounds 5] [--turbo PATH]``.
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

sys.path.insert(0, str(Path(__file__).parent))
from bench_cache import LAYERS, TURBO_ENV, WIDTH, deps_of, install_turbo, make_monorepo, name

BUILDYARD = str(Path(sys.executable).with_name("buildyard"))
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def write_pipeline(root: Path) -> None:
    # turbo 2 runs tasks in its default strict env mode (only PATH, HOME… reach the job): the
    # equivalent pipeline asks for the same, so neither tool's jobs pay for variables the other drops
    lines = ["name: mono", "env_mode: strict", "jobs:"]
    for layer in range(LAYERS):
        for i in range(WIDTH):
            n = name(layer, i)
            lines.append(f"  {n}:")
            lines.append(f"    working_directory: packages/{n}")
            lines.append(f"    needs: {json.dumps(deps_of(layer, i))}")
            lines.append("    script: npm run build")
            lines.append("    artifacts: {paths: [dist/]}")  # relative to working_directory
    (root / "buildyard.yml").write_text("\n".join(lines) + "\n")


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return elapsed, proc.stdout


def clean(root: Path, tool: str) -> None:
    for pkg in (root / "packages").iterdir():
        shutil.rmtree(pkg / "dist", ignore_errors=True)
        shutil.rmtree(pkg / ".turbo", ignore_errors=True)
    if tool == "turbo":
        shutil.rmtree(root / ".turbo", ignore_errors=True)
        shutil.rmtree(root / "node_modules" / ".cache" / "turbo", ignore_errors=True)
    else:
        shutil.rmtree(root / ".buildyard" / "cas", ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--turbo", type=Path, default=None)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="by-bench-mono-"))
    try:
        turbo = args.turbo or install_turbo(base)
        roots = {"buildyard": base / "by", "turbo": base / "turbo"}
        make_monorepo(roots["buildyard"])
        write_pipeline(roots["buildyard"])
        subprocess.run(["git", "add", "buildyard.yml"], cwd=roots["buildyard"], check=True)
        subprocess.run(
            ["git", "-c", "user.email=b@b", "-c", "user.name=b", "commit", "-qm", "pipeline"],
            cwd=roots["buildyard"],
            check=True,
        )
        shutil.copytree(roots["buildyard"], roots["turbo"], symlinks=True)
        daemon_env = {**ENV, "BUILDYARD_DAEMON": "1", "BUILDYARD_DAEMON_DIR": str(base / "dd")}
        (base / "dd").mkdir(mode=0o700)
        subprocess.run([BUILDYARD, "daemon", "start"], env=daemon_env, check=True, capture_output=True)
        commands = {
            "buildyard": ([BUILDYARD, "run", "-j", "2"], daemon_env),
            "turbo": ([str(turbo), "run", "build", "--concurrency=2"], {**os.environ, **TURBO_ENV}),
        }
        no_daemon = {**ENV, "BUILDYARD_DAEMON": "0"}
        results: dict[tuple[str, str], list[float]] = {}
        for tool in ("buildyard", "turbo"):  # warm-up: create history DB, turbo daemon-less config, .pyc
            timed(commands[tool][0], roots[tool], commands[tool][1])
        for r in range(args.rounds):
            order = ("buildyard", "turbo") if r % 2 == 0 else ("turbo", "buildyard")
            for tool in order:
                root = roots[tool]
                cmd, env = commands[tool]
                clean(root, tool)
                results.setdefault(("cold", tool), []).append(timed(cmd, root, env)[0])
                results.setdefault(("fully cached", tool), []).append(timed(cmd, root, env)[0])
                if tool == "buildyard":  # the same without the warm daemon (what a first command pays)
                    results.setdefault(("fully cached, no daemon", tool), []).append(
                        timed(cmd, root, no_daemon)[0]
                    )
                src = root / "packages" / name(0, 0) / "src" / "index.js"
                src.write_text(f"module.exports = 'p0-0 round {r}';\n")
                results.setdefault(("one bottom file changed", tool), []).append(timed(cmd, root, env)[0])
        # what changed re-ran: 55 jobs for buildyard (check it, the figure means nothing otherwise)
        out = subprocess.run(
            [BUILDYARD, "show", "--json"],
            cwd=roots["buildyard"],
            env=no_daemon,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        reran = sum(1 for j in json.loads(out)["jobs"] if j["status"] == "success")
    finally:
        subprocess.run(
            [BUILDYARD, "daemon", "stop"], env={**ENV, "BUILDYARD_DAEMON_DIR": str(base / "dd")}, check=False
        )
        shutil.rmtree(base, ignore_errors=True)
    med = statistics.median
    print(f"\n100-package monorepo, -j 2 / --concurrency=2, median of {args.rounds} alternating rounds")
    print(f"{'case':<26}{'buildyard':>11}{'turbo':>11}{'ratio':>8}  target")
    targets = {
        "cold": "≤ 1.10",
        "fully cached": "≤ 1.00",
        "fully cached, no daemon": "(info)",
        "one bottom file changed": "≤ 1.00",
    }
    for case, target in targets.items():
        theirs_case = "fully cached" if case == "fully cached, no daemon" else case
        ours, theirs = med(results[(case, "buildyard")]), med(results[(theirs_case, "turbo")])
        print(f"{case:<26}{ours * 1000:>9.0f}ms{theirs * 1000:>9.0f}ms{ours / theirs:>8.2f}  {target}")
    print(f"jobs re-run after the one-file change: {reran} (expected 55)")


if __name__ == "__main__":
    main()
