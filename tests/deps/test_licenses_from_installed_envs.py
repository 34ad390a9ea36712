"""``deps licenses`` on a requirements file reads licenses from installed environments by itself (the
project's .venv, the activated virtualenv, the running interpreter, node_modules) and says where each
license came from."""

from __future__ import annotations

import importlib.metadata
import json
import sys
from pathlib import Path

PYVER = f"python{sys.version_info.major}.{sys.version_info.minor}"


def _dist_info(site: Path, name: str, version: str, license_expression: str) -> Path:
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.4\nName: {name}\nVersion: {version}\nLicense-Expression: {license_expression}\n"
    )
    return info


def _licenses(cli, root: Path) -> dict[str, dict]:
    result = cli("-C", root, "deps", "licenses", "--json", "--allow-unknown")
    return {r["package"]: r for r in json.loads(result.out)}


def test_the_running_interpreters_site_packages_supply_licenses(cli, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    version = importlib.metadata.version("click")  # installed next to buildyard itself
    (tmp_path / "requirements.txt").write_text(f"click=={version}\nnot-installed-anywhere==1.0\n")
    found = _licenses(cli, tmp_path)
    click = found["click"]
    assert click["license"] == "BSD-3-Clause"
    assert click["license_source"].endswith(f"click-{version}.dist-info")
    assert "site-packages" in click["license_source"]
    assert found["not-installed-anywhere"]["license"] is None
    assert found["not-installed-anywhere"]["license_source"] is None
    text = cli("-C", tmp_path, "deps", "licenses", "--allow-unknown").out
    assert f"click-{version}.dist-info" in text and "from" in text.splitlines()[0]


def test_the_project_venv_then_the_activated_virtualenv(cli, tmp_path: Path, monkeypatch) -> None:
    project = tmp_path / "project"
    _dist_info(project / ".venv" / "lib" / PYVER / "site-packages", "alpha", "1.0", "MIT")
    active = tmp_path / "elsewhere-venv"
    _dist_info(active / "lib" / PYVER / "site-packages", "beta", "2.0", "Apache-2.0")
    monkeypatch.setenv("VIRTUAL_ENV", str(active))
    (project / "requirements.txt").write_text("alpha==1.0\nbeta==2.0\nbeta-other==2.0\n")
    found = _licenses(cli, project)
    assert (found["alpha"]["license"], found["alpha"]["license_source"]) == (
        "MIT",
        f".venv/lib/{PYVER}/site-packages/alpha-1.0.dist-info",
    )
    assert found["beta"]["license"] == "Apache-2.0"
    assert found["beta"]["license_source"] == f"{active}/lib/{PYVER}/site-packages/beta-2.0.dist-info"
    assert found["beta-other"]["license"] is None


def test_a_license_declared_by_the_lockfile_names_the_lockfile(cli, tmp_path: Path) -> None:
    lock = {
        "name": "app",
        "lockfileVersion": 3,
        "packages": {
            "": {"name": "app", "dependencies": {"left-pad": "1.3.0"}},
            "node_modules/left-pad": {"version": "1.3.0", "license": "WTFPL"},
        },
    }
    (tmp_path / "package-lock.json").write_text(json.dumps(lock))
    found = _licenses(cli, tmp_path)
    assert found["left-pad"]["license"] == "WTFPL"
    assert found["left-pad"]["license_source"].startswith("package-lock.json")
