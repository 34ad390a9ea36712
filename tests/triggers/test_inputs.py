"""Manual inputs (``buildyard trigger --input k=v``) checked against their declared types."""

from __future__ import annotations

import pytest

from buildyard.spec import loads
from buildyard.spec.models import ManualSpec
from buildyard.triggers.inputs import InputError, parse_pairs, validate_inputs

SPEC = """
on:
  manual:
    inputs:
      target: {type: choice, options: [staging, production], default: staging}
      dry_run: {type: boolean, default: true}
      reason: {type: string, required: true}
      note: {}
      verbose: {type: boolean}
jobs:
  a: {script: 'true'}
"""


def manual() -> ManualSpec:
    spec = loads(SPEC).on
    assert spec is not None and spec.manual is not None
    return spec.manual


def test_values_are_checked_and_defaults_filled() -> None:
    got = validate_inputs(manual(), parse_pairs(["reason=hotfix", "dry_run=No", "target=production"]))
    assert got == {
        "target": "production",
        "dry_run": "false",
        "reason": "hotfix",
        "note": "",
        "verbose": "false",
    }
    assert validate_inputs(manual(), {"reason": "x=y"})["dry_run"] == "true"
    assert parse_pairs(["reason=a=b"]) == {"reason": "a=b"}


def test_every_problem_is_named_at_once() -> None:
    with pytest.raises(InputError) as info:
        validate_inputs(manual(), {"target": "prod", "dry_run": "maybe", "reasn": "x"})
    message = str(info.value)
    assert "input 'target' must be one of staging, production, not 'prod'" in message
    assert "input 'dry_run' is a boolean: use true or false, not 'maybe'" in message
    assert "unknown input 'reasn' (did you mean 'reason'?)" in message
    assert "input 'reason' is required: pass --input reason=VALUE" in message
    assert "\n" not in message


def test_pipeline_without_manual_cannot_be_triggered_and_pairs_need_equals() -> None:
    with pytest.raises(InputError, match="cannot be started by hand"):
        validate_inputs(None, {})
    with pytest.raises(InputError, match="expected NAME=VALUE"):
        parse_pairs(["novalue"])
