"""The SBOM and dependency list an artifact carries describe what it ships: its declared runtime
requirements resolved through the lockfile, not the project's dev tools."""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from pathlib import Path

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from buildyard.artifacts.api import RunContext, project_inventory, publish
from buildyard.artifacts.repo import Repository

FIXTURES = Path(__file__).parents[1] / "deps" / "fixtures"
# demo-app (uv): requests, Jinja2, PyYAML and what they need; pytest and its tree in the dev group
UV_SHIPPED = {"certifi", "chardet", "idna", "jinja2", "markupsafe", "pyyaml", "requests", "urllib3"}
UV_DEV = {"atomicwrites", "attrs", "colorama", "iniconfig", "packaging", "pluggy", "py", "pytest", "tomli"}


def _project(tmp_path: Path, fixture: str) -> Path:
    project = tmp_path / "project"
    shutil.copytree(FIXTURES / fixture, project)
    (project / "dist").mkdir()
    (project / "dist" / "app.tar").write_bytes(b"payload")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "init"]):
        subprocess.run(
            ["git", "-c", "user.email=t@example.com", "-c", "user.name=T", *args], cwd=project, check=True
        )
    return project


def _scopes(sbom: bytes) -> dict[str, str]:
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(sbom.decode()) is None
    return {c["name"].lower(): c["scope"] for c in json.loads(sbom)["components"]}


def test_a_published_artifact_lists_its_runtime_deps_and_excludes_dev_tools(
    tmp_path: Path, repo: Repository
) -> None:
    project = _project(tmp_path, "uv")
    publish(project, name="demo", paths=[project / "dist"], version="1.0.0", context=RunContext(), repo=repo)
    rec = repo.resolve("demo")
    assert {d.name.lower() for d in repo.manifest(rec).dependencies} == UV_SHIPPED
    assert rec.sbom_blob is not None
    sbom = repo.blob(rec.sbom_blob, what=rec.name)
    scopes = _scopes(sbom)
    assert {n for n, s in scopes.items() if s == "required"} == UV_SHIPPED
    assert {n for n, s in scopes.items() if s == "excluded"} == UV_DEV
    [root] = [d for d in json.loads(sbom)["dependencies"] if d["ref"].startswith("root:")]
    assert sorted(ref.split("/")[-1].split("@")[0] for ref in root["dependsOn"]) == [
        "jinja2",
        "pyyaml",
        "requests",
    ]


def test_a_wheels_requires_dist_decides_what_ships(tmp_path: Path) -> None:
    project = _project(tmp_path, "uv")
    wheel = project / "dist" / "demo_app-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("demo_app/__init__.py", "")
        zf.writestr(
            "demo_app-0.1.0.dist-info/METADATA",
            "Metadata-Version: 2.1\nName: demo-app\nVersion: 0.1.0\nRequires-Dist: requests==2.19.1\n"
            'Requires-Dist: PyYAML==5.3; extra == "yaml"\n',
        )
    sbom, deps = project_inventory(project, "demo", [project / "dist"])
    assert {d.name.lower() for d in deps} == {"requests", "certifi", "chardet", "idna", "urllib3"}
    scopes = _scopes(sbom)
    assert scopes["jinja2"] == scopes["pyyaml"] == scopes["pytest"] == "excluded"


def test_npm_dev_dependencies_are_excluded(tmp_path: Path) -> None:
    project = _project(tmp_path, "npm-v3")
    sbom, deps = project_inventory(project, "demo-js")
    names = {d.name for d in deps}
    assert {"express", "lodash", "@babel/helper-plugin-utils"} <= names and "minimist" not in names
    assert _scopes(sbom)["minimist"] == "excluded"


def test_publish_reads_the_published_wheels_requires_dist(tmp_path: Path, repo: Repository) -> None:
    project = _project(tmp_path, "uv")
    wheel = project / "dist" / "demo_app-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(
            "demo_app-0.1.0.dist-info/METADATA",
            "Metadata-Version: 2.1\nName: demo-app\nVersion: 0.1.0\nRequires-Dist: requests==2.19.1\n",
        )
    publish(project, name="demo", paths=[wheel], version="0.1.0", context=RunContext(), repo=repo)
    rec = repo.resolve("demo")
    assert {d.name.lower() for d in repo.manifest(rec).dependencies} == {
        "requests",
        "certifi",
        "chardet",
        "idna",
        "urllib3",
    }
