"""What the GitHub importer and its step runner share: the ``github``/``runner`` contexts of a trigger,
``strategy.matrix`` expansion with GitHub's ``include``/``exclude`` rules, and where a job's results
and artifacts live in the project.

Pure (no I/O): both the converter (at load time) and the step runner (inside a
job) build the same contexts from the same values.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from typing import Any

from buildyard.errors import BuildyardError

#: Project-relative directory of the converted jobs' results and uploaded artifacts (git-ignored
#: by a ``.gitignore`` of its own, so these files are never job inputs).
STATE_DIR = ".buildyard-github"
#: The step runner's exit status when the job's ``if`` (read at run time) is false: the converted job
#: declares it in ``skip_exit_codes``, so the engine records the job as skipped (78: Drone's "skip").
SKIP_EXIT = 78
#: Most jobs one matrix makes (GitHub's own limit).
MAX_MATRIX = 256

_EVENTS = {
    "push": "push",
    "tag": "push",
    "pull_request": "pull_request",
    "schedule": "schedule",
    "manual": "workflow_dispatch",
}


def result_path(instance: str) -> str:
    """Project-relative file holding a converted job's result and outputs."""
    return f"{STATE_DIR}/results/{instance}.json"


def artifact_dir(name: str) -> str:
    """Project-relative directory holding the files of the artifact ``name``."""
    return f"{STATE_DIR}/artifacts/{safe_name(name)}"


def safe_name(text: str) -> str:
    """``text`` usable as one path component or buildyard job name part."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.") or "x"


def event_name(event: str) -> str:
    """GitHub's ``github.event_name`` of a buildyard trigger event."""
    return _EVENTS.get(event, event)


def github_context(
    *,
    event: str,
    branch: str,
    tag: str,
    sha: str,
    workspace: str,
    repository: str,
    default_branch: str = "main",
    inputs: Mapping[str, Any] | None = None,
    run_id: str = "0",
    run_number: str = "0",
) -> dict[str, Any]:
    """The ``github`` context of a local run of this trigger."""
    name = event_name(event)
    if tag:
        ref, ref_name, ref_type = f"refs/tags/{tag}", tag, "tag"
    elif name == "pull_request":
        ref, ref_name, ref_type = "refs/pull/1/merge", "1/merge", "branch"
    else:
        ref, ref_name, ref_type = f"refs/heads/{branch}", branch, "branch"
    payload: dict[str, Any] = {}
    if inputs is not None:
        payload["inputs"] = dict(inputs)
    if name == "pull_request":
        payload["pull_request"] = {"number": 1, "head": {"ref": branch}, "base": {"ref": default_branch}}
    return {
        "event_name": name,
        "event": payload,
        "ref": ref,
        "ref_name": ref_name,
        "ref_type": ref_type,
        "sha": sha,
        "head_ref": branch if name == "pull_request" else "",
        "base_ref": default_branch if name == "pull_request" else "",
        "repository": f"local/{repository}",
        "repository_owner": "local",
        "workspace": workspace,
        "actor": "buildyard",
        "triggering_actor": "buildyard",
        "run_id": run_id,
        "run_number": run_number,
        "run_attempt": "1",
        "server_url": "https://github.com",
        "api_url": "https://api.github.com",
        "token": "",
        "action": "",
        "job": "",
        "workflow": "",
        "retention_days": "90",
    }


def runner_context(temp: str = "", os_name: str = "Linux") -> dict[str, Any]:
    """The ``runner`` context of this machine."""
    import platform  # noqa: PLC0415 - cheap, only here

    arch = {"x86_64": "X64", "amd64": "X64", "aarch64": "ARM64", "arm64": "ARM64"}.get(
        platform.machine().lower(), platform.machine()
    )
    if not temp:
        import tempfile  # noqa: PLC0415

        temp = tempfile.gettempdir()
    return {
        "os": os_name,
        "arch": arch,
        "name": "buildyard",
        "temp": temp,
        "tool_cache": temp,
        "environment": "self-hosted",
        "debug": "",
    }


class MatrixError(BuildyardError, ValueError):
    """A ``strategy.matrix`` GitHub would reject (the converter reports it located in the workflow)."""


def expand_matrix(matrix: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The combinations of a matrix, in GitHub's order, with its ``include``/``exclude`` rules.

    ``exclude`` removes the combinations an entry matches (every key it names equal); ``include``
    adds its keys to each original combination it does not contradict (values of the original axes
    are never overwritten; added ones may be), and becomes a combination of its own when it can be
    added to none.
    """
    axes = {k: v for k, v in matrix.items() if k not in ("include", "exclude")}
    for name, values in axes.items():
        if not isinstance(values, list):
            raise MatrixError(f"matrix axis '{name}' must be a list of values")
        if not values:
            raise MatrixError(f"matrix axis '{name}' has no values")
    include = matrix.get("include") or []
    exclude = matrix.get("exclude") or []
    if not isinstance(include, list) or not all(isinstance(i, dict) for i in include):
        raise MatrixError("matrix include must be a list of mappings")
    if not isinstance(exclude, list) or not all(isinstance(e, dict) for e in exclude):
        raise MatrixError("matrix exclude must be a list of mappings")
    total = 1
    for values in axes.values():
        total *= len(values)
        if total > MAX_MATRIX * 4:
            raise MatrixError(f"the matrix makes more than {MAX_MATRIX} jobs")
    combos: list[dict[str, Any]] = (
        [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())] if axes else []
    )
    combos = [c for c in combos if not any(_matches(c, e) for e in exclude)]
    originals = [dict(c) for c in combos]
    extra: list[dict[str, Any]] = []
    for entry in include:
        added = False
        for combo, original in zip(combos, originals, strict=True):
            if all(original[k] == v for k, v in entry.items() if k in original):
                combo.update(entry)
                added = True
        if not added:
            extra.append(dict(entry))
    out = combos + extra
    if len(out) > MAX_MATRIX:
        raise MatrixError(f"the matrix makes {len(out)} jobs, more than GitHub's limit of {MAX_MATRIX}")
    return out


def gx_text(value: Any) -> str:
    """A scalar matrix value as text (``true``, ``3``, ``3.5``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value == int(value):
        return str(int(value))
    return str(value)


def _matches(combo: Mapping[str, Any], entry: Mapping[str, Any]) -> bool:
    return all(k in combo and combo[k] == v for k, v in entry.items())


def instance_suffix(combo: Mapping[str, Any], axes: tuple[str, ...] = ()) -> str:
    """How a matrix combination shows in a job name: its scalar values of the matrix's own axes
    (all of them for a combination ``include`` added) joined by '-'."""
    keys = [k for k in axes if k in combo] or list(combo)
    parts = [gx_text(combo[k]) for k in keys if isinstance(combo[k], str | int | float | bool)]
    return safe_name("-".join(parts)) if parts else "x"
