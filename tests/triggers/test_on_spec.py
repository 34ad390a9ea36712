"""``on:`` in buildyard.yml: read as GitHub reads it, validated with located errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from buildyard.errors import SpecError
from buildyard.model import CatchUp, InputType
from buildyard.spec import loads

JOBS = "jobs:\n  a: {script: 'true'}\n"


def test_bare_on_is_the_key_on_not_true_at_any_level() -> None:
    text = (
        "on:\n  push:\n    branches: [main]\n"
        "variables:\n  on: x\n  yes: y\n"  # nested YAML 1.1 booleans keep their text as keys
        "jobs:\n  a:\n    script: 'true'\n    allow_failure: yes\n"  # values keep YAML 1.1 booleans
    )
    p = loads(text)
    assert p.on is not None and p.on.push is not None
    assert p.on.push.branches == ["main"]
    assert p.variables == {"on": "x", "yes": "y"}
    assert p.jobs["a"].allow_failure is True


@pytest.mark.parametrize(
    ("on", "push", "pr", "manual"),
    [
        ("push", True, False, False),
        ("[push, pull_request]", True, True, False),
        ("{push: , manual: }", True, False, True),
        ("{pull_request: {branches: [main]}}", False, True, False),
    ],
)
def test_github_shorthands(on: str, push: bool, pr: bool, manual: bool) -> None:
    p = loads(f"on: {on}\n{JOBS}")
    assert p.on is not None
    assert (p.on.push is not None, p.on.pull_request is not None, p.on.manual is not None) == (
        push,
        pr,
        manual,
    )


def test_schedule_and_manual_inputs_are_typed() -> None:
    p = loads(
        "on:\n  schedule:\n    - cron: '30 2 * * 1-5'\n      timezone: Europe/Berlin\n      catch_up: none\n"
        "  manual:\n    inputs:\n      level: {type: choice, options: [fast, full], default: fast}\n"
        "      dry: {type: boolean, default: true}\n" + JOBS
    )
    assert p.on is not None and p.on.manual is not None
    assert p.on.schedule[0].timezone == "Europe/Berlin"
    assert p.on.schedule[0].catch_up is CatchUp.NONE
    assert p.on.manual.inputs["level"].type is InputType.CHOICE
    assert p.on.manual.inputs["dry"].default is True


def _errors(text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        loads(text, "buildyard.yml")
    return [str(d) for d in info.value.diagnostics]


def test_bad_cron_time_zone_and_globs_are_located_errors() -> None:
    errors = _errors(
        "on:\n"  # 1
        "  push:\n"  # 2
        "    branches: ['main', 'feat/[', '!x']\n"  # 3
        "    paths: ['*+']\n"  # 4
        "    paths_ignore: ['docs/**']\n"  # 5
        "  schedule:\n"  # 6
        "    - cron: '61 * * * *'\n"  # 7
        "      timezone: Mars/Olympus\n"  # 8
        "    - cron: '* * *'\n" + JOBS  # 9
    )
    text = "\n".join(errors)
    assert "buildyard.yml:3:" in text and "on.push.branches[1]: bad pattern 'feat/['" in text
    assert "on.push.paths[0]: bad pattern '*+'" in text
    assert "on.push.paths_ignore: use either 'paths' or 'paths_ignore'" in text
    assert any(
        e.startswith("buildyard.yml:7:13: on.schedule[0].cron: bad cron expression '61 * * * *'")
        for e in errors
    )
    assert any(
        e.startswith("buildyard.yml:8:17: on.schedule[0].timezone: unknown time zone 'Mars/Olympus'")
        for e in errors
    )
    assert "on.schedule[1].cron: a cron expression has 5 fields" in text


def test_negation_needs_something_to_exclude_and_is_refused_in_ignore_lists() -> None:
    text = "\n".join(
        _errors(
            "on:\n  push:\n    branches: ['!main']\n  pull_request:\n    branches_ignore: ['!x']\n" + JOBS
        )
    )
    assert "on.push.branches[0]: '!main' excludes from nothing" in text
    assert "on.pull_request.branches_ignore[0]: '!' is not allowed in an ignore list" in text


def test_manual_input_declarations_are_checked() -> None:
    text = "\n".join(
        _errors(
            "on:\n  manual:\n    inputs:\n      a: {type: choice}\n      b: {type: boolean, default: maybe}\n"
            "      c: {type: strin}\n" + JOBS
        )
    )
    assert "on.manual.inputs.a.options: a choice input needs options" in text
    assert "on.manual.inputs.b.default: the default of a boolean input is true or false" in text
    assert "on.manual.inputs.c.type" in text and "'string'" in text
    names = "\n".join(_errors("on:\n  manual:\n    inputs:\n      d-e: {}\n" + JOBS))
    assert "buildyard.yml:4:12: on.manual.inputs.d-e: input name 'd-e' must be an identifier" in names


def test_validate_command_reports_them(make_project: Callable[..., Path], cli: Callable[..., object]) -> None:
    project = make_project(
        {"buildyard.yml": "on:\n  schedule:\n    - cron: '0 3 * * *'\n      timezone: Europe/Berln\n" + JOBS}
    )
    result = cli("-C", project, "validate")
    assert result.code == 2  # type: ignore[attr-defined]
    assert "buildyard.yml:4:17: on.schedule[0].timezone: unknown time zone 'Europe/Berln'" in result.err  # type: ignore[attr-defined]
