"""Manual trigger inputs: ``NAME=VALUE`` pairs checked against ``on.manual.inputs`` declarations."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence

from buildyard.errors import UsageError
from buildyard.model import InputType
from buildyard.spec.models import ManualSpec

#: Most characters of one input value (inputs are stored with the run and shown in the UI).
MAX_INPUT_CHARS = 64 * 1024
_TRUE = frozenset({"true", "yes", "1", "on"})
_FALSE = frozenset({"false", "no", "0", "off"})


class InputError(UsageError):
    """Manual inputs that do not fit their declarations (every problem in one message)."""


def parse_pairs(pairs: Sequence[str]) -> dict[str, str]:
    """``["k=v", …]`` (as ``--input`` gives them) → a mapping; a pair without ``=`` is an error."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise InputError(f"--input {pair!r}: expected NAME=VALUE")
        out[name.strip()] = value
    return out


def validate_inputs(manual: ManualSpec | None, given: Mapping[str, str]) -> dict[str, str]:
    """The inputs of a manual run: ``given`` checked and completed with defaults.

    Booleans come back as ``"true"``/``"false"``; a missing optional input without a default is
    ``""`` (``"false"`` for a boolean), as on GitHub. Raises ``InputError`` naming every problem.
    """
    if manual is None:
        raise InputError("this pipeline cannot be started by hand: add 'on: {manual: {}}' to buildyard.yml")
    problems: list[str] = []
    declared = manual.inputs
    for name in given:
        if name not in declared:
            close = difflib.get_close_matches(name, list(declared), n=1)
            hint = (
                f" (did you mean '{close[0]}'?)"
                if close
                else (
                    f" (declared: {', '.join(declared)})"
                    if declared
                    else " (the pipeline declares no inputs)"
                )
            )
            problems.append(f"unknown input '{name}'{hint}")
    out: dict[str, str] = {}
    for name, spec in declared.items():
        if name in given:
            value = given[name]
            if len(value) > MAX_INPUT_CHARS:
                problems.append(f"input '{name}' is longer than {MAX_INPUT_CHARS} characters")
                continue
            if spec.type is InputType.BOOLEAN:
                lowered = value.strip().lower()
                if lowered not in _TRUE | _FALSE:
                    problems.append(f"input '{name}' is a boolean: use true or false, not {value!r}")
                    continue
                value = "true" if lowered in _TRUE else "false"
            elif spec.type is InputType.CHOICE and value not in spec.options:
                problems.append(f"input '{name}' must be one of {', '.join(spec.options)}, not {value!r}")
                continue
            elif spec.required and not value:
                problems.append(f"input '{name}' is required and cannot be empty")
                continue
            out[name] = value
        elif spec.default is not None:
            out[name] = (
                ("true" if spec.default else "false") if isinstance(spec.default, bool) else spec.default
            )
        elif spec.required:
            problems.append(f"input '{name}' is required: pass --input {name}=VALUE")
        else:
            out[name] = "false" if spec.type is InputType.BOOLEAN else ""
    if problems:
        raise InputError("; ".join(problems))
    return out
