"""Fixtures producing reports with the real tools installed here (pytest, coverage.py,
pytest-benchmark, pytest-rerunfailures, hyperfine) and running the CLI in-process."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

# The helpers module sits next to this file; make it importable under any --import-mode.
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))
from gatestools import run_tool

from buildyard.cli import run_cli

SAMPLE_TESTS = """
import os
import pytest

def test_ok():
    assert 1 + 1 == 2

def test_fails():
    assert [1, 2] == [1, 3], "lists differ"

@pytest.fixture
def broken():
    raise RuntimeError("setup exploded")

def test_setup_error(broken):
    pass

@pytest.mark.skip(reason="not on this platform")
def test_skipped():
    pass

@pytest.mark.xfail(reason="known bug")
def test_xfail():
    assert 0

class TestGroup:
    @pytest.mark.parametrize("n", [1, 2])
    def test_param(self, n):
        assert n > 0

def test_flaky_once(tmp_path_factory):
    marker = os.path.join(os.environ["FLAKY_DIR"], "attempted")
    first = not os.path.exists(marker)
    open(marker, "w").close()
    assert not first, "fails on the first attempt only"
"""


@pytest.fixture(scope="session")
def junit_from_pytest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A JUnit XML written by real pytest + pytest-rerunfailures (one flaky test, rerun once)."""
    work = tmp_path_factory.mktemp("junit_from_pytest")
    (work / "test_sample.py").write_text(SAMPLE_TESTS)
    out = work / "junit.xml"
    env_dir = work / "state"
    env_dir.mkdir()
    run_tool(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--reruns",
            "1",
            "-o",
            "junit_family=xunit2",
            f"--junitxml={out}",
            "test_sample.py",
        ],
        work,
        ok_codes=(1,),
        env={"FLAKY_DIR": str(env_dir)},
    )
    return out


SAMPLE_MODULE = """
def classify(n):
    if n < 0:
        return "negative"
    if n == 0:
        return "zero"
    return "positive"

def unused(x):
    return x * 2

def loop(items):
    total = 0
    for item in items:
        if item:
            total += item
    return total
"""

SAMPLE_MODULE_TESTS = """
from sample import classify, loop

def test_classify():
    assert classify(5) == "positive"
    assert classify(0) == "zero"

def test_loop():
    assert loop([1, 2]) == 3
"""


@pytest.fixture(scope="session")
def coverage_reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Cobertura XML, JSON and LCOV written by real coverage.py (branch coverage on)."""
    work = tmp_path_factory.mktemp("coverage")
    (work / "sample.py").write_text(SAMPLE_MODULE)
    (work / "test_sample_mod.py").write_text(SAMPLE_MODULE_TESTS)
    run_tool(
        [
            sys.executable,
            "-m",
            "coverage",
            "run",
            "--branch",
            "--source=.",
            "--omit=test_*",
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "test_sample_mod.py",
        ],
        work,
    )
    reports = {
        "cobertura": work / "coverage.xml",
        "coverage-json": work / "coverage.json",
        "lcov": work / "coverage.lcov",
    }
    run_tool([sys.executable, "-m", "coverage", "xml", "-o", str(reports["cobertura"])], work)
    run_tool([sys.executable, "-m", "coverage", "json", "-o", str(reports["coverage-json"])], work)
    run_tool([sys.executable, "-m", "coverage", "lcov", "-o", str(reports["lcov"])], work)
    return reports


BENCH_TESTS = """
def test_sum_small(benchmark):
    benchmark(sum, range(100))

def test_sorted(benchmark):
    benchmark(sorted, list(range(300, 0, -1)))
"""


@pytest.fixture(scope="session")
def bench_json_reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """pytest-benchmark JSON: ``--benchmark-json`` (always carries raw data) and a file saved with
    ``--benchmark-save`` without ``--benchmark-save-data`` (summary statistics only)."""
    work = tmp_path_factory.mktemp("bench")
    (work / "test_bench.py").write_text(BENCH_TESTS)
    data = work / "with-data.json"
    run_tool(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "test_bench.py",
            "--benchmark-min-rounds=20",
            "--benchmark-max-time=0.05",
            "--benchmark-disable-gc",
            f"--benchmark-json={data}",
            f"--benchmark-storage=file://{work / 'store'}",
            "--benchmark-save=stats",
        ],
        work,
    )
    (saved,) = (work / "store").rglob("*_stats.json")
    return {"data": data, "stats": saved}


@pytest.fixture
def cli() -> Callable[..., int]:
    """Run the real CLI in-process (``run_cli``) and return its exit code."""

    def call(*args: str) -> int:
        return run_cli(list(args))

    return call
