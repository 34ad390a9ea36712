"""The vulnerabilities gate behaves the same in ``run`` and ``gates check``: it scans the OSV database
given by ``BUILDYARD_OSV_DB`` (or written by ``deps db update``) and fails, saying how to provide one,
when there is none."""

from __future__ import annotations

import json
import shutil

from by_testutil import shared_osv

PIPELINE = """\
gates:
  - vulnerabilities: {max_severity: critical}
jobs:
  build: {script: 'true'}
"""
FILES = {"requirements.txt": "requests==2.19.0\n", "buildyard.yml": PIPELINE}
HOW = "set BUILDYARD_OSV_DB to a directory of OSV dumps"


def _gate(result) -> dict:
    [job] = [j for j in json.loads(result.out)["jobs"] if j["name"] == "gates"]
    [gate] = job["gates"]
    return gate


def _checked(result) -> dict:
    data = json.loads(result.out)
    [gate] = data["gates"] if isinstance(data, dict) else data
    return gate


def test_no_database_fails_in_run_and_in_check_with_one_line_saying_how(
    cli, make_project, monkeypatch
) -> None:
    monkeypatch.delenv("BUILDYARD_OSV_DB", raising=False)
    root = make_project(FILES)
    run = cli("-C", root, "run", "--json", "--no-cache")
    checked = cli("-C", root, "gates", "check", "--json")
    assert run.code == 1 and checked.code == 1
    in_run, in_check = _gate(run), _checked(checked)
    assert in_run["status"] == in_check["status"] == "failed"
    assert in_run["reason"] == in_check["reason"]
    assert HOW in in_run["reason"] and "\n" not in in_run["reason"]


def test_the_database_is_scanned_in_check_as_in_run(cli, make_project, monkeypatch) -> None:
    monkeypatch.setenv("BUILDYARD_OSV_DB", str(shared_osv()))
    root = make_project(FILES)
    checked = cli("-C", root, "gates", "check", "--json")
    assert checked.code == 1
    assert "PYSEC-2018-28 (requests@2.19.0, unknown)" in _checked(checked)["reason"]


def test_the_database_written_by_deps_db_update_is_used(cli, make_project, monkeypatch) -> None:
    monkeypatch.delenv("BUILDYARD_OSV_DB", raising=False)
    root = make_project(FILES)
    shutil.copytree(shared_osv() / "PyPI", root / ".buildyard" / "osv" / "PyPI")
    run = cli("-C", root, "run", "--json", "--no-cache")
    assert "PYSEC-2018-28" in _gate(run)["reason"]
