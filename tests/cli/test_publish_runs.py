"""``publish:`` in pipelines: a successful job's files become a signed, versioned artifact."""

from __future__ import annotations

import json
from pathlib import Path

PIPELINE = """\
name: shop
jobs:
  build:
    script: ["mkdir -p dist", "echo 'shop binary' > dist/shop.bin", "echo '1.0' > dist/VERSION"]
    publish: {name: shop-api, paths: ["dist/*"], version: "1.4.0", type: application}
  deploy:
    needs: [build]
    script: echo deploying
"""


def test_publish_after_success_and_pull_verifies(cli, make_project, tmp_path, monkeypatch) -> None:
    root = make_project({"buildyard.yml": PIPELINE, ".gitignore": ".buildyard/\ndist/\n"})
    monkeypatch.setenv("CI", "true")  # in CI no key is made on first use (elsewhere it is)
    no_key = cli("-C", root, "run", "--json")
    jobs = {j["name"]: j for j in json.loads(no_key.out)["jobs"]}
    assert no_key.code == 1
    assert (
        jobs["build"]["status"] == "failed" and "publish failed: no signing key" in jobs["build"]["message"]
    )
    assert jobs["deploy"]["status"] == "skipped"  # nothing deploys an artifact that was not published

    assert cli("-C", root, "keys", "generate").code == 0
    ok = cli("-C", root, "run", "--json", "--no-cache")
    jobs = {j["name"]: j for j in json.loads(ok.out)["jobs"]}
    assert ok.code == 0, ok.err
    ref = jobs["build"]["published"]
    assert ref.startswith("shop-api@1.4.0+build.2.")  # semver + build number + short commit
    assert f"buildyard: published {ref}" in Path(jobs["build"]["log"]).read_text()
    shown = json.loads(cli("-C", root, "artifacts", "show", "shop-api@1.4.0", "--json").out)
    assert "shop-api" in json.dumps(shown) and "VERSION" in json.dumps(shown)
    dest = tmp_path / "pulled"
    pulled = cli("-C", root, "artifacts", "pull", "shop-api@1.4.0", "--dest", dest)
    assert pulled.code == 0, pulled.err
    assert (dest / "shop.bin").read_text() == "shop binary\n"


def test_publish_paths_are_relative_to_the_jobs_working_directory(cli, make_project) -> None:
    text = """\
jobs:
  util:
    working_directory: packages/util
    script: ["mkdir -p dist", "echo util > dist/util.txt"]
    publish: {name: util, paths: ["dist/*"], version: "0.1.0"}
  escape:
    working_directory: packages/util
    script: "true"
    publish: {name: esc, paths: ["../../../outside.txt"], version: "0.1.0"}
"""
    root = make_project({"buildyard.yml": text, "packages/util/README": "util\n"})
    (root.parent / "outside.txt").write_text("not the project's\n")
    result = cli("-C", root, "run", "--json")
    jobs = {j["name"]: j for j in json.loads(result.out)["jobs"]}
    assert jobs["util"]["status"] == "success" and str(jobs["util"]["published"]).startswith("util@0.1.0")
    shown = json.loads(cli("-C", root, "artifacts", "show", "util@0.1.0", "--json").out)
    assert "util.txt" in json.dumps(shown)
    assert jobs["escape"]["status"] == "failed" and "outside the project" in str(jobs["escape"]["message"])
