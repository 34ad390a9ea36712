"""The ``deps`` and ``scan`` commands end to end, in-process, on real files and the shared OSV data."""

from __future__ import annotations

import datetime as dt
import functools
import http.server
import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
from sarif_pydantic import Sarif

from buildyard.cli import run_cli
from buildyard.deps.sbom import validate_bom_json

FIXTURES = Path(__file__).parent / "fixtures"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "osv"
if not SHARED.is_dir():
    SHARED = Path("/work/shared/data/osv")


def cli(capsys, *args):
    code = run_cli(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def project(tmp_path):
    shutil.copytree(FIXTURES / "uv", tmp_path / "app")
    return tmp_path


def scan(capsys, project, *extra):
    return cli(
        capsys, "-C", str(project), "deps", "scan", "--db", str(SHARED), "--cache", str(project / "c"), *extra
    )


def test_ls_json(capsys, project):
    code, out, _ = cli(capsys, "-C", str(project), "deps", "ls", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["files"] == ["app/uv.lock"]
    jinja = next(p for p in doc["packages"] if p["name"] == "jinja2")
    assert jinja["purl"] == "pkg:pypi/jinja2@2.10" and jinja["direct"] and jinja["line"] > 0


def test_scan_exit_codes_and_severity(capsys, project):
    code, out, _ = scan(capsys, project, "--format", "json")
    doc = json.loads(out)
    assert code == 1 and doc["failing"] == len(doc["findings"]) > 10
    code, out, _ = scan(capsys, project, "--format", "json", "--severity", "critical")
    doc = json.loads(out)
    # unknown-severity findings still count at any threshold; known ones below critical do not
    assert code == 1
    assert all(f["severity"] == "unknown" for f in doc["findings"] if not f["below_threshold"])
    assert any(f["below_threshold"] for f in doc["findings"])
    (project / "app" / "uv.lock").unlink()
    (project / "requirements.txt").write_text("six==1.16.0\n")
    code, _, _ = scan(capsys, project)
    assert code == 0


def test_scan_reads_the_osv_db_setting(capsys, project, monkeypatch):
    """``BUILDYARD_OSV_DB`` is where ``deps scan`` looks without --db (it looked in .buildyard/osv only)."""
    monkeypatch.setenv("BUILDYARD_OSV_DB", str(SHARED))
    code, out, err = cli(
        capsys, "-C", str(project), "deps", "scan", "--cache", str(project / "c"), "--format", "json"
    )
    assert code == 1, err
    assert json.loads(out)["findings"]


def test_ignore_file_reason_and_expiry(capsys, project):
    future = (dt.date.today() + dt.timedelta(days=30)).isoformat()
    ignore = project / "ignore.yml"
    code, out, _ = scan(capsys, project, "--format", "json")
    all_ids = {f["id"] for f in json.loads(out)["findings"]}
    rules = [{"id": i, "reason": "not reachable", "expires": future} for i in sorted(all_ids)]
    rules[0]["expires"] = "2020-01-01"

    ignore.write_text(yaml.safe_dump({"ignore": rules}))
    code, out, err = scan(capsys, project, "--format", "json", "--ignore-file", str(ignore))
    doc = json.loads(out)
    assert code == 1 and doc["failing"] == sum(1 for f in doc["findings"] if f["id"] == rules[0]["id"])
    assert "expired on 2020-01-01" in err
    ignore.write_text(yaml.safe_dump({"ignore": [{"id": "CVE-2018-18074", "expires": future}]}))
    code, _, err = scan(capsys, project, "--ignore-file", str(ignore))
    assert code == 2 and "ignore.yml:2: ignore of CVE-2018-18074 needs a 'reason'" in err


def test_bad_lockfile_exit_2_other_files_still_reported(capsys, project):
    (project / "broken").mkdir()
    (project / "broken" / "package-lock.json").write_text('{"lockfileVersion": 3,\n "packages": {\n}}}')
    code, out, err = scan(capsys, project, "--format", "json")
    assert code == 2
    assert "broken/package-lock.json:3: invalid JSON" in err
    assert json.loads(out)["findings"]  # the good uv.lock was scanned


def test_missing_database_exit_2(capsys, project):
    code, _, err = cli(capsys, "-C", str(project), "deps", "scan", "--db", str(project / "nodb"))
    assert code == 2 and "vulnerability database not found" in err and err.count("\n") == 1


def test_sarif_output(capsys, project):

    code, out, _ = scan(capsys, project, "--format", "sarif")
    log = json.loads(out)
    assert code == 1 and log["version"] == "2.1.0"
    Sarif.model_validate(log)
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        loc = result["locations"][0]["physicalLocation"]
        assert loc["artifactLocation"]["uri"] == "app/uv.lock" and loc["region"]["startLine"] > 1
    idna = next(r for r in rules if r["id"] == "PYSEC-2024-60")
    assert idna["properties"]["security-severity"] == "7.5"


def test_cyclonedx_with_vulnerabilities_validates(capsys, project):

    code, out, _ = scan(capsys, project, "--format", "cyclonedx")
    assert code == 1 and validate_bom_json(out) is None
    bom = json.loads(out)
    assert bom["specVersion"] == "1.6"
    vuln = next(v for v in bom["vulnerabilities"] if v["id"] == "PYSEC-2018-28")
    assert vuln["affects"][0]["ref"] == "pkg:pypi/requests@2.19.1"
    assert vuln["recommendation"] == "Upgrade to 2.20.0"


def test_sbom_validates_with_graph_hashes_and_licenses(capsys, tmp_path):

    out_file = tmp_path / "bom.json"
    code, _, _ = cli(capsys, "-C", str(FIXTURES), "deps", "sbom", "npm-v3", "-o", str(out_file), "--validate")
    text = out_file.read_text()
    assert code == 0 and validate_bom_json(text) is None
    bom = json.loads(text)
    comps = {c["bom-ref"]: c for c in bom["components"]}
    express = comps["pkg:npm/express@4.17.1"]
    assert express["hashes"][0]["alg"] == "SHA-512" and express["licenses"][0]["license"]["id"] == "MIT"
    deps = {d["ref"]: set(d.get("dependsOn", [])) for d in bom["dependencies"]}
    assert "pkg:npm/body-parser@1.19.0" in deps["pkg:npm/express@4.17.1"]
    root = bom["metadata"]["component"]["bom-ref"]
    assert deps[root] == {
        "pkg:npm/express@4.17.1",
        "pkg:npm/lodash@4.17.15",
        "pkg:npm/minimist@1.2.0",
        "pkg:npm/%40babel/helper-plugin-utils@7.10.4",
    }


def test_db_update_from_local_http_server(capsys, tmp_path):
    served = tmp_path / "served"
    shutil.copytree(SHARED, served)
    (served / "Go" / "all.zip").write_bytes(b"<html>captive portal</html>")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        code, _, _ = cli(
            capsys, "deps", "db", "update", "--db", str(tmp_path / "db"), "-e", "PyPI", "--url", url
        )
        assert (
            code == 0
            and (tmp_path / "db" / "PyPI" / "all.zip").read_bytes() == (SHARED / "PyPI/all.zip").read_bytes()
        )
        code, _, err = cli(
            capsys, "deps", "db", "update", "--db", str(tmp_path / "db"), "-e", "npm", "--url", url
        )
        assert code == 2 and "npm/all.zip: download failed" in err
        (tmp_path / "db" / "Go").mkdir()
        (tmp_path / "db" / "Go" / "all.zip").write_bytes((SHARED / "Go" / "all.zip").read_bytes())
        code, _, err = cli(
            capsys, "deps", "db", "update", "--db", str(tmp_path / "db"), "-e", "Go", "--url", url
        )
        assert code == 2 and "Go/all.zip: the download is not a zip archive" in err
        # the previous dump is untouched and no temporary file is left behind
        assert (tmp_path / "db" / "Go" / "all.zip").read_bytes() == (SHARED / "Go" / "all.zip").read_bytes()
        assert [p.name for p in (tmp_path / "db" / "Go").iterdir()] == ["all.zip"]
    finally:
        server.shutdown()
        server.server_close()


def test_licenses_allow_deny_or_and_and_exceptions(capsys, tmp_path):
    lock = {
        "name": "x",
        "lockfileVersion": 3,
        "packages": {
            "": {"dependencies": {"a": "1", "b": "1", "c": "1", "d": "1", "e": "1"}},
            "node_modules/a": {"version": "1.0.0", "license": "MIT"},
            "node_modules/b": {"version": "1.0.0", "license": "(GPL-3.0-only OR Apache-2.0)"},
            "node_modules/c": {"version": "1.0.0", "license": "MIT AND GPL-3.0-only"},
            "node_modules/d": {"version": "1.0.0", "license": "SEE LICENSE IN LICENSE.txt"},
            "node_modules/e": {"version": "1.0.0", "license": "AGPL-3.0-only"},
        },
    }
    (tmp_path / "package-lock.json").write_text(json.dumps(lock))
    code, out, _ = cli(
        capsys,
        "-C",
        str(tmp_path),
        "deps",
        "licenses",
        "--json",
        "--allow",
        "MIT,Apache-2.0,BSD-3-Clause,ISC",
        "--deny",
        "GPL-3.0-only,AGPL-3.0-only",
    )
    verdicts = {r["package"]: r["verdict"] for r in json.loads(out)}
    assert code == 1
    assert verdicts == {"a": "allowed", "b": "allowed", "c": "denied", "d": "unknown", "e": "denied"}
    policy = tmp_path / "policy.yml"
    policy.write_text(
        "licenses:\n  allow: [MIT, Apache-2.0]\n  deny: [GPL-3.0-only, AGPL-3.0-only]\n  exceptions:\n"
        "    - {package: c, reason: dual use approved by legal}\n"
        "    - {package: d, reason: vendor contract}\n"
        "    - {package: e, reason: internal tool only}\n"
    )
    code, out, _ = cli(capsys, "-C", str(tmp_path), "deps", "licenses", "--json", "--policy", str(policy))
    assert code == 0
    assert {r["package"]: r["verdict"] for r in json.loads(out)}["c"] == "exception"
    code, _, err = cli(capsys, "-C", str(tmp_path), "deps", "licenses", "--allow", "Not A License")
    assert code == 2 and "not an SPDX license id" in err


AWS = "AKIA" + "IOSFODNN7EXAMPLQ"


def test_scan_secrets_with_detect_secrets_baseline(capsys, tmp_path):
    (tmp_path / "config.py").write_text(f'aws_access_key_id = "{AWS}"\n')
    (tmp_path / ".gitignore").write_text("ignored/\n")
    (tmp_path / "ignored").mkdir()
    (tmp_path / "ignored" / "x.py").write_text(f'key = "{AWS}"\n')
    code, out, _ = cli(capsys, "-C", str(tmp_path), "scan", "secrets", "--format", "json")
    doc = json.loads(out)
    assert code == 1
    assert [(f["file"], f["line"], f["type"]) for f in doc["findings"]] == [
        ("config.py", 1, "AWS Access Key")
    ]
    # a baseline written by the real detect-secrets CLI is accepted as is
    baseline = tmp_path / ".secrets.baseline"
    made = subprocess.run(
        [sys.executable, "-m", "detect_secrets", "scan", "config.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    baseline.write_text(made.stdout)
    code, out, _ = cli(
        capsys, "-C", str(tmp_path), "scan", "secrets", "--baseline", str(baseline), "--format", "sarif"
    )
    assert code == 0
    assert json.loads(out)["runs"][0]["results"][0]["suppressions"][0]["status"] == "accepted"
    (tmp_path / "config.py").write_text(f'aws_access_key_id = "{AWS}"\nother = "AKIAJ7Q5EXAMPLE2ZZZZ"\n')
    code, out, _ = cli(capsys, "-C", str(tmp_path), "scan", "secrets", "--baseline", str(baseline))
    assert code == 1 and "config.py:2: AWS Access Key" in out and "(accepted)" in out


def test_go_scan_against_real_go_data(capsys):
    code, out, _ = cli(capsys, "-C", str(FIXTURES), "deps", "scan", "go", "--db", str(SHARED), "-f", "json")
    doc = json.loads(out)
    found = {(f["package"]["name"], f["id"]): f for f in doc["findings"]}
    assert code == 1
    text = found[("golang.org/x/text", "GO-2022-1059")]
    assert text["fixed_version"] == "v0.3.8" and "CVE-2022-32149" in text["aliases"]
    assert ("github.com/gin-gonic/gin", "GO-2021-0052") in found
    assert not any(name == "github.com/old/thing" for name, _ in found)  # replaced module


def test_license_policy_from_buildyard_yml(capsys, tmp_path):
    lock = {
        "lockfileVersion": 3,
        "packages": {
            "": {"dependencies": {"a": "1"}},
            "node_modules/a": {"version": "1.0.0", "license": "GPL-3.0-only"},
        },
    }
    (tmp_path / "package-lock.json").write_text(json.dumps(lock))
    (tmp_path / "buildyard.yml").write_text("deps:\n  licenses:\n    deny: [GPL-3.0-only]\njobs: {}\n")
    code, out, _ = cli(capsys, "-C", str(tmp_path), "deps", "licenses", "--json")
    assert code == 1 and json.loads(out)[0]["verdict"] == "denied"
    code, _, _ = cli(capsys, "-C", str(tmp_path), "deps", "licenses", "--allow", "GPL-3.0-only")
    assert code == 0  # explicit flags replace the project policy


def test_plain_table_output_when_not_a_terminal(capsys, project, tmp_path):
    code, out, _ = scan(capsys, project, "--severity", "high")
    lines = out.splitlines()
    assert code == 1 and lines[0].split("\t")[:3] == ["severity", "package", "version"]
    idna = next(line.split("\t") for line in lines if "\tidna\t" in line)
    assert idna[0] == "high 7.5" and idna[4] == "3.7" and idna[5].startswith("app/uv.lock:")
    assert any(line.endswith("below threshold") for line in lines)
    assert lines[-1].startswith("17 packages scanned")
    report = tmp_path / "report.txt"
    code, out, _ = scan(capsys, project, "-o", str(report))
    assert out == "" and "PYSEC-2018-28" in report.read_text()
    code, out, _ = cli(capsys, "-C", str(FIXTURES), "deps", "ls", "cargo")
    assert out.splitlines()[1].split("\t") == [
        "crates.io",
        "libc",
        "0.2.150",
        "no",
        "unknown",
        "cargo/Cargo.lock:14",
    ]


def test_licenses_from_installed_trees_next_to_lockfiles(capsys, tmp_path):
    shutil.copytree(FIXTURES / "npm-v1", tmp_path / "web")  # lockfile v1 declares no licenses
    (tmp_path / "web" / "node_modules" / "express").mkdir(parents=True)
    (tmp_path / "web" / "node_modules" / "express" / "package.json").write_text(
        '{"name": "express", "version": "4.17.1", "license": "MIT"}'
    )
    (tmp_path / "requirements.txt").write_text("jinja2==2.10\nsix==1.16.0\n")
    site = tmp_path / ".venv" / "lib" / "python3.11" / "site-packages"
    for name, version, headers in [
        ("Jinja2", "2.10", "Classifier: License :: OSI Approved :: BSD License\n"),
        ("six", "1.16.0", "License-Expression: MIT\n"),
    ]:
        info = site / f"{name}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.4\nName: {name}\nVersion: {version}\n{headers}")
    code, out, _ = cli(capsys, "-C", str(tmp_path), "deps", "licenses", "--json")
    got = {r["package"]: (r["license"], r["status"]) for r in json.loads(out)}
    assert code == 0
    assert got["express"] == ("MIT", "spdx")
    assert got["jinja2"] == ("BSD-3-Clause", "spdx") and got["six"] == ("MIT", "spdx")
    assert got["accepts"] == (None, "unknown")  # not installed: stays unknown, never guessed
    out_file = tmp_path / "bom.json"
    cli(capsys, "-C", str(tmp_path), "deps", "sbom", "-o", str(out_file))
    comps = {c["name"]: c for c in json.loads(out_file.read_text())["components"]}
    assert comps["six"]["licenses"] == [{"license": {"id": "MIT"}}]


def test_allow_unknown_flag(capsys, tmp_path):
    lock = {"lockfileVersion": 3, "packages": {"": {}, "node_modules/a": {"version": "1.0.0"}}}
    (tmp_path / "package-lock.json").write_text(json.dumps(lock))
    code, _, _ = cli(capsys, "-C", str(tmp_path), "deps", "licenses", "--allow", "MIT")
    assert code == 1
    code, _, _ = cli(capsys, "-C", str(tmp_path), "deps", "licenses", "--allow", "MIT", "--allow-unknown")
    assert code == 0


def test_relative_options_follow_the_project_directory(capsys, project, monkeypatch, tmp_path):
    db = project / "osvdb"
    shutil.copytree(SHARED / "PyPI", db / "PyPI")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("BUILDYARD_HOME", raising=False)
    code, _, _ = cli(
        capsys, "-C", str(project), "deps", "scan", "--db", "osvdb", "-f", "sarif", "-o", "out.sarif"
    )
    assert code == 1 and (project / "out.sarif").is_file() and not (elsewhere / "out.sarif").exists()
    assert (project / ".buildyard" / "cache" / "osv-index").is_dir()  # default cache under the project
