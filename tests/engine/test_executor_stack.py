"""The executor stack: backends chosen by name (built-ins, entry points, in-process registrations),
wrapped in one documented order, with the job cache in front of any backend."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from buildyard.engine.executors import ExecutorRegistry, executors
from buildyard.engine.local import LocalExecutor
from buildyard.engine.request import JobOutcome, JobRequest, OutputSink
from buildyard.engine.stack import LAYERS
from buildyard.errors import UsageError

PIPELINE = """\
name: third
jobs:
  gen:
    script: ["mkdir -p out", "echo made > out/gen.txt"]
    artifacts: {paths: [out/gen.txt]}
  use:
    needs: [gen]
    script: ["cat out/gen.txt > out/use.txt"]
    artifacts: {paths: [out/use.txt]}
"""


class RecordingExecutor:
    """A third backend: runs jobs with a spawning ``LocalExecutor`` and records what reached it."""

    instances: list[RecordingExecutor] = []  # noqa: RUF012 - the test reads the instances made

    def __init__(self) -> None:
        self.local = LocalExecutor("spawn")
        self.seen: list[str] = []
        self.closed = False
        RecordingExecutor.instances.append(self)

    async def execute(self, request: JobRequest, sink: OutputSink | None = None) -> JobOutcome:
        self.seen.append(request.job_id)
        return await self.local.execute(request, sink)

    def close(self) -> None:
        self.closed = True
        self.local.close()


def test_a_registered_backend_runs_the_pipeline_behind_the_cache(
    cli, make_project, monkeypatch: pytest.MonkeyPatch
) -> None:
    RecordingExecutor.instances.clear()
    root = make_project({"buildyard.yml": PIPELINE, ".gitignore": ".buildyard/\nout/\n"})
    monkeypatch.setenv("BUILDYARD_EXECUTOR", "recording")
    with executors.registered("recording", RecordingExecutor):
        first = cli("-C", root, "run", "--json", "-j", "1")
        assert first.code == 0, first.err
        (root / "out" / "gen.txt").unlink()
        (root / "out" / "use.txt").unlink()
        second = cli("-C", root, "run", "--json", "-j", "1")
    assert second.code == 0, second.err
    made, again = RecordingExecutor.instances
    assert made.seen == ["gen", "use"] and made.closed
    assert again.seen == [] and again.closed  # every job was a cache hit: none reached the backend
    jobs = {j["name"]: j for j in json.loads(second.out)["jobs"]}
    assert {n: (j["status"], j["cache"]) for n, j in jobs.items()} == {
        "gen": ("cached", "hit"),
        "use": ("cached", "hit"),
    }
    assert (root / "out" / "use.txt").read_text() == "made\n"  # restored by the cache, in front of it
    assert "recording" not in executors.names()  # the registration ended with the block


def test_an_unknown_executor_is_one_line_listing_the_known_ones(
    cli, make_project, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project({"buildyard.yml": PIPELINE})
    monkeypatch.setenv("BUILDYARD_EXECUTOR", "threads")
    result = cli("-C", root, "run")
    assert result.code == 2
    line = result.err.strip()
    assert "\n" not in line and "Traceback" not in line
    assert "unknown executor 'threads' (from BUILDYARD_EXECUTOR)" in line
    assert "local, pool" in line


def test_spawn_still_names_the_local_backend(cli, make_project, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_project({"buildyard.yml": PIPELINE, ".gitignore": ".buildyard/\nout/\n"})
    for name in ("spawn", "pool", "local"):
        monkeypatch.setenv("BUILDYARD_EXECUTOR", name)
        result = cli("-C", root, "run", "--no-cache")
        assert result.code == 0, (name, result.err)
        assert (root / "out" / "use.txt").read_text() == "made\n"


def test_entry_points_add_backends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A third-party backend is found through a real ``entry_points.txt`` on ``sys.path``."""
    site = tmp_path / "site"
    (site / "by_plugin_exec").mkdir(parents=True)
    (site / "by_plugin_exec" / "__init__.py").write_text(
        textwrap.dedent(
            """
            class PluginExecutor:
                async def execute(self, request, sink=None):
                    raise NotImplementedError
            """
        )
    )
    info = site / "by_plugin_exec-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: by-plugin-exec\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[buildyard.executors]\nplugin = by_plugin_exec:PluginExecutor\nbroken = by_plugin_exec:Missing\n"
    )
    monkeypatch.syspath_prepend(str(site))
    registry = ExecutorRegistry()
    assert {"local", "pool", "plugin", "broken"} <= set(registry.names())
    made = registry.create("plugin")
    assert type(made).__name__ == "PluginExecutor"
    with pytest.raises(UsageError, match=r"executor 'broken' \(by_plugin_exec:Missing\) cannot be loaded"):
        registry.create("broken")
    # an in-process registration wins over an entry point of the same name
    with registry.registered("plugin", RecordingExecutor):
        assert isinstance(registry.create("plugin"), RecordingExecutor)
    assert type(registry.create("plugin")).__name__ == "PluginExecutor"
    monkeypatch.delitem(sys.modules, "by_plugin_exec", raising=False)


def test_builtins_are_known_without_installed_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ExecutorRegistry, "_entry_points", staticmethod(dict))
    registry = ExecutorRegistry()
    assert registry.names() == ["local", "pool"]
    for name in ("local", "pool", "spawn"):
        made = registry.create(name)
        assert isinstance(made, LocalExecutor)
        assert (made.pool is not None) == (name == "pool")
        made.close()


def test_the_layers_are_declared_once_in_order() -> None:
    assert [layer.name for layer in LAYERS] == [
        "concurrency",
        "deploying",
        "publishing",
        "gating",
        "caching",
        "outputs",
        "workspace",
    ]


def test_the_worktree_declares_the_builtins_as_entry_points() -> None:
    import tomllib

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    declared = pyproject["project"]["entry-points"]["buildyard.executors"]
    from buildyard.engine.executors import BUILTIN_PLUGINS

    assert declared == {
        "local": "buildyard.engine.executors:local_executor",
        "pool": "buildyard.engine.executors:pool_executor",
        **BUILTIN_PLUGINS,  # the shipped plug-ins: the same values as their entry points
    }
    assert BUILTIN_PLUGINS == {
        "dask": "buildyard.dask.executor:dask_executor",
        "tls": "buildyard.dask.executor:dask_tls_executor",
    }


def test_a_plan_gets_the_layers_it_needs_in_the_declared_order(make_project) -> None:
    """Every layer for a plan that uses them all; only the backend for a plain one without a cache."""
    from test_request_wire import PIPELINE as FULL

    from buildyard.engine.loading import load_step, plan_step, trigger_step
    from buildyard.engine.options import RunOptions
    from buildyard.engine.stack import StackContext, build_stack, open_cache_stack
    from buildyard.gitinfo import read_git
    from buildyard.store.history import SqlHistory, default_url

    root = make_project({"buildyard.yml": FULL, "requirements.txt": "x\n", "alone.txt": ""})
    plain = make_project({"buildyard.yml": "jobs:\n  a: {script: echo a}\n"}, name="plain")
    made = []
    for project, cache in ((root, True), (plain, False)):
        options = RunOptions(project_dir=project, cache=cache)
        pipeline = load_step(options)
        trigger, _secrets = trigger_step(options, pipeline, read_git(project))
        history = SqlHistory(default_url(project / ".buildyard"))
        context = StackContext(
            plan=plan_step(options, pipeline, trigger, None),
            project=project,
            history=history,
            run_started=0.0,
            baselines=lambda _gate, _branch: None,
            failed=set(),
            warn=lambda _m: None,
            info=lambda _m: None,
            cache=open_cache_stack(options, project / ".buildyard", None) if cache else None,
        )
        stack = build_stack(context, name="pool")
        try:
            made.append(stack.layers)
        finally:
            stack.close()
            history.close()
    assert made == [
        ("deploying", "publishing", "gating", "caching", "outputs", "workspace", "pool"),
        ("pool",),
    ]


def test_the_pipeline_names_its_executor_and_the_environment_and_cli_override_it(
    cli, make_project, monkeypatch: pytest.MonkeyPatch
) -> None:
    RecordingExecutor.instances.clear()
    root = make_project(
        {"buildyard.yml": "executor: recording\n" + PIPELINE, ".gitignore": ".buildyard/\nout/\n"}
    )
    with executors.registered("recording", RecordingExecutor):
        declared = cli("-C", root, "run", "--no-cache", "-j", "1")
        assert declared.code == 0, declared.err
        assert len(RecordingExecutor.instances) == 1
        assert RecordingExecutor.instances[0].seen == ["gen", "use"]  # buildyard.yml's choice
        overridden = cli("-C", root, "run", "--no-cache", "--executor", "local")
        assert overridden.code == 0, overridden.err
        monkeypatch.setenv("BUILDYARD_EXECUTOR", "local")
        from_env = cli("-C", root, "run", "--no-cache")
        assert from_env.code == 0, from_env.err
        assert len(RecordingExecutor.instances) == 1  # --executor and BUILDYARD_EXECUTOR won over the file
        monkeypatch.delenv("BUILDYARD_EXECUTOR")
        (root / "buildyard.yml").write_text("executor: threads\n" + PIPELINE)
        unknown = cli("-C", root, "run")
    assert unknown.code == 2
    assert "unknown executor 'threads' (from executor: in buildyard.yml)" in unknown.err.strip()
    assert "\n" not in unknown.err.strip()


def test_a_malformed_executor_in_the_pipeline_is_a_spec_error_with_its_line(cli, make_project) -> None:
    root = make_project({"buildyard.yml": PIPELINE + "executor: 'dask:// spaces'\n"})
    result = cli("-C", root, "run")
    assert result.code == 2
    assert "buildyard.yml:10" in result.err and "executor" in result.err, result.err
    assert "Traceback" not in result.err
