"""Versions as projects write them (v-prefix, two parts, PEP 440) normalised to SemVer, same order."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.version import Version as Pep440

from buildyard.artifacts.api import dist_version
from buildyard.artifacts.semver import Version
from buildyard.versioning import VersionFormatError, to_semver


@pytest.mark.parametrize(
    ("written", "semver"),
    [
        ("v1.4.0", "1.4.0"),
        ("3.7", "3.7.0"),
        ("3", "3.0.0"),
        ("2.0a1", "2.0.0-a.1"),
        ("2.0rc1", "2.0.0-rc.1"),
        ("1.0.dev3", "1.0.0-0.dev.3"),
        ("1.0+local.7", "1.0.0+local.7"),
        ("1.4.0-beta.1+b.2", "1.4.0-beta.1+b.2"),
        ("1.2.3.0", "1.2.3"),
    ],
)
def test_versions_people_write_become_semver(written: str, semver: str) -> None:
    assert to_semver(written) == semver
    Version.parse(to_semver(written))  # and buildyard's SemVer accepts the result


@pytest.mark.parametrize(
    ("written", "why"),
    [
        ("1.0.post1", "post-releases"),
        ("1!1.0", "epochs"),
        ("1.2.3.4", "three release numbers"),
        ("banana", "is not a version"),
        ("1.0a1.dev2", "dev release of a pre-release"),
    ],
)
def test_versions_without_a_semver_equivalent_are_refused_with_the_reason(written: str, why: str) -> None:
    with pytest.raises(VersionFormatError, match=why):
        to_semver(written)


pep440 = st.builds(
    lambda release, pre, dev: ".".join(map(str, release)) + pre + dev,
    st.lists(st.integers(0, 12), min_size=1, max_size=3),
    st.sampled_from(["", "a1", "a2", "b1", "rc1", "rc3"]),
    st.sampled_from(["", ".dev0", ".dev4"]),
).filter(lambda v: not ("a" in v or "b" in v or "rc" in v) or ".dev" not in v)


@given(pep440, pep440)
def test_the_order_of_converted_versions_is_the_pep440_order(a: str, b: str) -> None:
    ka, kb = (Version.parse(to_semver(v)).precedence_key() for v in (a, b))
    assert (ka < kb) == (Pep440(a) < Pep440(b)) and (ka == kb) == (Pep440(a) == Pep440(b))


def test_a_wheel_or_sdist_tells_its_version(tmp_path: Path) -> None:
    wheel = tmp_path / "pkg-2.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("pkg/__init__.py", "")
        z.writestr("pkg-2.1.dist-info/METADATA", "Metadata-Version: 2.1\nName: pkg\nVersion: 2.1\n\nbody\n")
    assert dist_version(wheel) == "2.1"
    assert dist_version(tmp_path / "README.md") is None


WHEEL_JOB = """\
jobs:
  build:
    script: python3 mkwheel.py
    publish: {name: pkg, paths: ["dist/*.whl"], version: {from_file: pyproject.toml}, type: library}
"""
MKWHEEL = """\
import pathlib, zipfile
pathlib.Path("dist").mkdir(exist_ok=True)
with zipfile.ZipFile("dist/pkg-3.7-py3-none-any.whl", "w") as z:
    z.writestr("pkg-3.7.dist-info/METADATA", "Metadata-Version: 2.1\\nName: pkg\\nVersion: 3.7\\n")
"""


def test_a_dynamic_pyproject_version_is_read_from_the_built_wheel(make_project, cli) -> None:
    pyproject = '[project]\nname = "pkg"\ndynamic = ["version"]\n'
    root = make_project({"buildyard.yml": WHEEL_JOB, "pyproject.toml": pyproject, "mkwheel.py": MKWHEEL})
    result = cli("-C", root, "run", "--json")
    assert result.out, result.err
    jobs = {j["name"]: j for j in json.loads(result.out)["jobs"]}
    assert result.code == 0, jobs
    assert str(jobs["build"]["published"]).startswith("pkg@3.7.0+build.1.")


@pytest.mark.parametrize("version", ["'3.7'", "v2.1.0", "'2.0rc1'"])
def test_literal_versions_real_projects_use_publish(make_project, cli, version: str) -> None:
    publish = f"{{name: a, paths: [d/f], version: {version}}}"
    text = f"jobs:\n  b:\n    script: mkdir -p d && echo x > d/f\n    publish: {publish}\n"
    root = make_project({"buildyard.yml": text})
    result = cli("-C", root, "run", "--json")
    assert result.code == 0, result.out + result.err


def test_a_bad_literal_version_is_reported_by_validate_before_anything_runs(make_project, cli) -> None:
    text = "jobs:\n  b:\n    script: touch f\n    publish: {name: a, paths: [f], version: 1.0.post1}\n"
    root = make_project({"buildyard.yml": text})
    checked = cli("-C", root, "validate")
    assert checked.code == 2 and checked.err.count("\n") == 1
    assert "buildyard.yml:4:" in checked.err and "jobs.b.publish.version" in checked.err
    assert "post-releases have no SemVer equivalent" in checked.err
    assert cli("-C", root, "run").code == 2 and not (root / "f").exists()


@pytest.mark.parametrize(
    ("files", "problem"),
    [
        ({}, "version file not found"),
        ({"pyproject.toml": '[project]\nname = "a"\n'}, "no version found"),
        ({"pyproject.toml": '[project]\nname = "a"\nversion = "1!2.0"\n'}, "epochs"),
    ],
)
def test_a_version_file_problem_stops_the_run_before_any_job(
    make_project, cli, files: dict[str, str], problem: str
) -> None:
    text = (
        "jobs:\n  b:\n    script: touch built\n"
        "    publish: {name: a, paths: [built], version: {from_file: pyproject.toml}}\n"
    )
    root = make_project({"buildyard.yml": text, **files})
    result = cli("-C", root, "run")
    assert result.code == 2 and result.err.count("\n") == 1, result.err
    assert "jobs.b.publish.version" in result.err and problem in result.err
    assert not (root / "built").exists()  # nothing ran
