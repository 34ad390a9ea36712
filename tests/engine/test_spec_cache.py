"""The parsed-pipeline cache: same struct as a fresh load, keyed by the text, never hiding errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from buildyard.engine.runner import load_cached
from buildyard.errors import SpecError
from buildyard.spec.load import load

RICH = """\
name: rich
variables: {APP: shop}
stages: [build, test, release]
cache_inputs: [poetry.lock]
gates:
  - coverage: {report: coverage.xml, min_line: 80}
deps:
  licenses: {deny: [GPL-3.0-only]}
jobs:
  build:
    stage: build
    steps:
      - run: make build
        env: {X: "1"}
        timeout: 30s
      - {name: pack, run: tar cf dist.tar dist, continue_on_error: true}
    artifacts: {paths: [dist/]}
    retry: {max: 2, backoff: 1s, when: [75]}
    cache:
      - key: {files: [poetry.lock], prefix: venv}
        paths: [.venv/]
        restore_keys: [venv-]
    resources: {cpus: 2}
    publish: {name: shop, type: application, paths: [dist.tar], version: {from_file: VERSION}}
  test:
    stage: test
    matrix: {py: ["3.11", "3.12"], exclude: [{py: "3.12"}]}
    script: ["pytest --py ${{ matrix.py }}"]
    if: event == 'push' && branch.startsWith('main')
    allow_failure: true
    inputs: [src/**, tests/**]
    key_commands: [python --version]
    gates: [{tests: {junit: junit.xml, max_failures: 0}}]
  release:
    stage: release
    needs: [test]
    when: manual
    secrets: [TOKEN]
    cache: false
    script: [./release.sh]
"""


def test_a_remembered_pipeline_equals_a_fresh_load(tmp_path: Path) -> None:
    path = tmp_path / "buildyard.yml"
    path.write_text(RICH)
    cache = tmp_path / "spec-cache"
    fresh = load(path)
    first = load_cached(path, cache)
    assert first == fresh
    (entry,) = cache.iterdir()
    second = load_cached(path, cache)
    assert second == fresh
    assert second.jobs["build"].publish is not None
    assert list(cache.iterdir()) == [entry]  # served from the entry, nothing new written


def test_an_edit_is_a_new_key_and_errors_are_never_cached(tmp_path: Path) -> None:
    path = tmp_path / "buildyard.yml"
    cache = tmp_path / "spec-cache"
    path.write_text("name: a\njobs:\n  one: {script: [echo 1]}\n")
    assert list(load_cached(path, cache).jobs) == ["one"]
    path.write_text("name: a\njobs:\n  two: {script: [echo 2]}\n")
    assert list(load_cached(path, cache).jobs) == ["two"]
    assert len(list(cache.iterdir())) == 2
    path.write_text("name: a\njobs:\n  bad: {scrpt: [echo]}\n")
    for _ in range(2):
        with pytest.raises(SpecError, match=r"buildyard\.yml:3"):
            load_cached(path, cache)
    assert len(list(cache.iterdir())) == 2


def test_a_corrupt_entry_is_ignored_and_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "buildyard.yml"
    cache = tmp_path / "spec-cache"
    path.write_text("name: a\njobs:\n  one: {script: [echo 1]}\n")
    load_cached(path, cache)
    (entry,) = cache.iterdir()
    entry.write_bytes(b"\x93garbage")
    assert list(load_cached(path, cache).jobs) == ["one"]
    assert entry.read_bytes() != b"\x93garbage"
