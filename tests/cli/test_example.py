"""The README's quick start: the bundled example project's main job runs green from a fresh copy."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_example_shop_package_job(cli, tmp_path) -> None:
    project = tmp_path / "shop"
    shutil.copytree(
        ROOT / "examples" / "shop",
        project,
        ignore=shutil.ignore_patterns(".buildyard", "build", "dist", "__pycache__"),
    )
    for args in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        ["-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "example"],
    ):
        subprocess.run(["git", *args], cwd=project, check=True)
    result = cli("-C", project, "run", "package", "--json")
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert [j["name"] for j in summary["jobs"]] == ["build", "lint", "test[cart]", "test[pricing]", "package"]
    assert {j["status"] for j in summary["jobs"]} == {"success"}
    archive = project / "dist" / "shop-1.4.0.tar.gz"
    with tarfile.open(archive) as tar:
        assert "src/shop/__init__.py" in tar.getnames()
    assert "Ran 2 tests" in Path(summary["jobs"][2]["log"]).read_text()
    dry = cli("-C", project, "run", "--dry-run")
    assert "deploy ← package  [manual" in dry.out
