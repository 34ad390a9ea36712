"""Benchmark: the cache layer's share of a fully cached 100-job run, against turbo's "FULL TURBO".

The monorepo of issue 3: 100 npm-workspace packages in 10 layers of 10; package (l, i) depends on
(l-1, i) and (l-1, (i+1) mod 10); ``build`` writes ``dist/index.txt``. Turbo (npm) is run with
``turbo run build --concurrency=2`` until its local cache is full, then timed on fully cached runs.

buildyard's side is what its cache does for the same fully cached run, in a fresh process: one
``InputIndex`` (one git call), then per job in dependency order: the key manifest (stat cache loaded
from disk, inputs re-checked, upstream keys), lookup, restore of ``dist/index.txt`` and the log.
It excludes what the engine adds (spec loading, planning, the scheduler), so it is the budget the
cache leaves to the engine, not the end-to-end figure (that needs ``buildyard run``).

Run: ``nice python bench/bench_cache.py [--rounds 5] [--turbo PATH]`` (without --turbo, turbo is
installed with ``npm install turbo`` into a temp dir).
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
import textwrap
import time
from pathlib import Path

LAYERS, WIDTH = 10, 10
TURBO_ENV = {"TURBO_TELEMETRY_DISABLED": "1", "TURBO_NO_UPDATE_NOTIFIER": "1", "DO_NOT_TRACK": "1"}


def name(layer: int, i: int) -> str:
    return f"p{layer}-{i}"


def deps_of(layer: int, i: int) -> list[str]:
    return [] if layer == 0 else [name(layer - 1, i), name(layer - 1, (i + 1) % WIDTH)]


def make_monorepo(root: Path) -> None:
    root.mkdir(parents=True)
    (root / "package.json").write_text(
        json.dumps(
            {"name": "mono", "private": True, "packageManager": "npm@10.8.2", "workspaces": ["packages/*"]}
        )
    )
    (root / "turbo.json").write_text(
        json.dumps({"tasks": {"build": {"dependsOn": ["^build"], "outputs": ["dist/**"]}}})
    )
    (root / ".gitignore").write_text("node_modules\n.turbo\ndist\n.buildyard\n")
    for layer in range(LAYERS):
        for i in range(WIDTH):
            pkg = root / "packages" / name(layer, i)
            (pkg / "src").mkdir(parents=True)
            (pkg / "src" / "index.js").write_text(f"module.exports = '{name(layer, i)}';\n")
            script = (
                "node -e \"require('fs').mkdirSync('dist',{recursive:true});"
                "require('fs').writeFileSync('dist/index.txt','built')\""
            )
            (pkg / "package.json").write_text(
                json.dumps(
                    {
                        "name": name(layer, i),
                        "version": "1.0.0",
                        "dependencies": dict.fromkeys(deps_of(layer, i), "*"),
                        "scripts": {"build": script},
                    }
                )
            )
    subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--offline"], cwd=root, check=True, capture_output=True
    )
    git = ["git", "-c", "user.email=b@b", "-c", "user.name=b"]
    subprocess.run([*git, "init", "-q"], cwd=root, check=True)
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", "init"], cwd=root, check=True)
    past = time.time() - 60
    for dirpath, _d, files in os.walk(root / "packages"):
        for f in files:
            os.utime(os.path.join(dirpath, f), (past, past))


# One buildyard "fully cached run" of the cache layer, as a fresh process would do it.
BUILDYARD_RUN = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from buildyard.cache import (FileHasher, InputIndex, JobKeySpec, compute_key_manifest, open_job_cache,
                                 open_stat_cache)
    root = Path(sys.argv[1]); mode = sys.argv[2]; layers, width = int(sys.argv[3]), int(sys.argv[4])
    start = time.perf_counter()
    cache = open_job_cache(root)
    salt = cache.local.store.salt()
    stat_cache = open_stat_cache(root / ".buildyard")
    hasher = FileHasher(stat_cache)
    index = InputIndex(root)
    keys = {}
    hits = 0
    for layer in range(layers):
        for i in range(width):
            n = f"p{layer}-{i}"
            deps = [] if layer == 0 else [f"p{layer-1}-{i}", f"p{layer-1}-{(i+1) % width}"]
            spec = JobKeySpec(definition={"commands": ["npm run build"], "cwd": f"packages/{n}"},
                              workdir=root / "packages" / n, project_root=root,
                              upstream={d: keys[d] for d in deps}, env={"CI": "true"})
            manifest = compute_key_manifest(spec, hasher=hasher, salt=salt, index=index)
            key = keys[n] = manifest.key()
            entry = cache.lookup(key)
            if entry is not None and cache.restore(entry, spec.workdir) is not None:
                hits += 1
                continue
            out = spec.workdir / "dist"; out.mkdir(exist_ok=True); (out / "index.txt").write_text("built")
            cache.store_outputs(key, workspace=spec.workdir, outputs=["dist"], log=b"> build\\n",
                                duration_s=0.2, job=n, key_manifest=manifest)
    stat_cache.save()
    print(hits, f"{time.perf_counter() - start:.6f}")
    """
)


def run_buildyard(root: Path) -> tuple[int, float, float]:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", BUILDYARD_RUN, str(root), "run", str(LAYERS), str(WIDTH)],
        check=True,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    hits, inner = proc.stdout.split()
    return int(hits), float(inner), wall


def run_turbo(turbo: Path, root: Path) -> tuple[str, float]:
    start = time.perf_counter()
    proc = subprocess.run(
        [str(turbo), "run", "build", "--concurrency=2"],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **TURBO_ENV},
    )
    return proc.stdout, time.perf_counter() - start


def install_turbo(base: Path) -> Path:
    """``npm install turbo@^2`` into ``base/t``; the path of its binary."""
    (base / "t").mkdir()
    subprocess.run(
        ["npm", "install", "--silent", "--no-audit", "--no-fund", "turbo@^2"],
        cwd=base / "t",
        check=True,
        capture_output=True,
    )
    return base / "t" / "node_modules" / ".bin" / "turbo"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--turbo", type=Path, default=None)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="by-bench-cache-"))
    try:
        turbo = args.turbo or install_turbo(base)
        ours_root, turbo_root = base / "by", base / "turbo"
        make_monorepo(ours_root)
        shutil.copytree(ours_root, turbo_root, symlinks=True)

        cold_hits, _, by_cold = run_buildyard(ours_root)
        _, turbo_cold = run_turbo(turbo, turbo_root)
        assert cold_hits == 0
        ours_inner, ours_wall, theirs = [], [], []
        for _ in range(args.rounds):
            hits, inner, wall = run_buildyard(ours_root)
            assert hits == LAYERS * WIDTH, hits
            ours_inner.append(inner)
            ours_wall.append(wall)
            out, t = run_turbo(turbo, turbo_root)
            assert "FULL TURBO" in out, out[-500:]
            theirs.append(t)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    med = statistics.median
    print(
        f"100 jobs, rounds={args.rounds}, cpus={os.cpu_count()}, medians (cold run: buildyard cache layer "
        f"{by_cold * 1000:.0f} ms incl. storing; turbo {turbo_cold * 1000:.0f} ms incl. running builds)"
    )
    rows = [
        ("case", "buildyard", "turbo", "turbo/buildyard"),
        (
            "fully cached: keys+lookup+restore (in-process)",
            f"{med(ours_inner) * 1000:.0f} ms",
            f"{med(theirs) * 1000:.0f} ms",
            f"{med(theirs) / med(ours_inner):.2f}x",
        ),
        (
            "fully cached: same incl. python start+imports",
            f"{med(ours_wall) * 1000:.0f} ms",
            f"{med(theirs) * 1000:.0f} ms",
            f"{med(theirs) / med(ours_wall):.2f}x",
        ),
    ]
    widths = [max(len(r[c]) for r in rows) for c in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
