"""``JobRequest`` is plain data: requests built from a real pipeline round-trip through pickle and
msgpack unchanged, and its type admits nothing but plain values."""

from __future__ import annotations

import dataclasses
import pickle
import types
import typing
from pathlib import Path

import msgspec
import pytest

from buildyard.engine import request as request_module
from buildyard.engine.factory import RequestFactory
from buildyard.engine.loading import load_step, plan_step, trigger_step
from buildyard.engine.options import RunOptions
from buildyard.engine.request import JobRequest
from buildyard.gitinfo import read_git
from buildyard.store.history import RunRecord

PIPELINE = """\
name: wire
variables: {GREETING: hello}
gates:
  - coverage: {report: coverage.xml, min_line: 50}
jobs:
  build:
    matrix: {py: ["3.11", "3.12"]}
    secrets: [API_TOKEN]
    env: {MODE: release}
    cache:
      - key: {files: [requirements.txt], prefix: deps}
        paths: [.venv]
        restore_keys: [deps-]
    inputs: [src/**]
    steps:
      - run: echo build $MATRIX_PY
      - {name: second, run: "echo two", timeout: 30s, env: {STEP: "1"}}
    artifacts: {paths: [dist/]}
    gates: [{tests: {junit: "reports/*.xml"}}]
    retry: {max: 2}
    timeout: 5m
  package:
    needs: [build]
    script: echo package
    publish: {name: wire-app, paths: ["dist/*"], version: "1.2.3"}
  isolated:
    workspace: isolated
    script: echo alone
    artifacts: {paths: [alone.txt]}
  deploy:
    needs: [package]
    environment: {name: staging, url: "https://staging.example", health_check: {run: "true"}}
    script: echo deploy
"""


def _requests(root: Path) -> list[JobRequest]:
    options = RunOptions(project_dir=root, variables={"EXTRA": "x"})
    pipeline = load_step(options)
    trigger, secrets = trigger_step(options, pipeline, read_git(root))
    plan = plan_step(options, pipeline, trigger, None)
    run = RunRecord(id="r1", pipeline=pipeline.name, number=7, status="running", event="push", created_at=0.0)
    factory = RequestFactory(
        options=options,
        pipeline=pipeline,
        plan=plan,
        trigger=trigger,
        run=run,
        secrets=secrets,
        log_dir=root / ".buildyard" / "logs",
    )
    factory.published["package"] = "wire-app@1.2.3"
    return [factory(inst, attempt) for inst in plan.instances.values() for attempt in (1, 2)]


def test_real_requests_round_trip_through_pickle_and_msgpack(
    make_project, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project(
        {"buildyard.yml": PIPELINE, "requirements.txt": "x\n", "src/a.py": "", "alone.txt": ""}
    )
    monkeypatch.setenv("API_TOKEN", "s3cret-value")
    requests = _requests(root)
    by_job = {r.job_id: r for r in requests}
    # every kind of request the engine makes is here, with its parts filled in
    assert {"build[3.11]", "build[3.12]", "package", "isolated", "deploy", "gates"} <= set(by_job)
    build = by_job["build[3.11]"]
    assert build.cache is not None and build.cache.dependency_caches and build.own_log
    assert ("API_TOKEN", "s3cret-value") in build.env and build.mask == ("s3cret-value",)
    assert len(build.steps) == 2 and build.steps[1].timeout == 30
    assert by_job["package"].publish is not None
    deploy = by_job["deploy"].deploy
    assert deploy is not None and deploy.artifact == "wire-app@1.2.3" and deploy.health_run == "true"
    assert by_job["isolated"].workspace is not None
    encoder, decoder = msgspec.msgpack.Encoder(), msgspec.msgpack.Decoder(JobRequest)
    for request in requests:
        assert pickle.loads(pickle.dumps(request)) == request
        wire = encoder.encode(request)
        assert decoder.decode(wire) == request, request.job_id
        assert msgspec.json.decode(msgspec.json.encode(request), type=JobRequest) == request


_PLAIN = (str, int, float, bool, type(None))


def _plain(hint: object, seen: set[type]) -> list[str]:
    """What is not plain in ``hint`` (a type of a request field)."""
    origin = typing.get_origin(hint)
    if origin in (tuple, typing.Union, types.UnionType):
        return [bad for arg in typing.get_args(hint) if arg is not Ellipsis for bad in _plain(arg, seen)]
    if origin is not None:
        return [repr(hint)]
    if hint in _PLAIN:
        return []
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if hint in seen:
            return []
        seen.add(hint)
        hints = typing.get_type_hints(hint, vars(request_module))
        return [f"{hint.__name__}.{name}: {bad}" for name, h in hints.items() for bad in _plain(h, seen)]
    return [repr(hint)]


def test_a_request_holds_only_plain_values() -> None:
    """Strings, numbers, booleans, None, tuples and nested requests: no ``Any``, dict, Path or struct
    of a service (gate definitions belong to the gating wrapper)."""
    assert _plain(JobRequest, set()) == []
