"""``uses:`` steps for the GitHub step runner: local composite actions run for real, the common
actions done natively, any other action a failed step naming it (nothing is ever downloaded).

- ``actions/checkout``: nothing to do, the job runs in the working tree;
- ``actions/setup-python``/``setup-node``/``setup-go``/``setup-java``: the toolchain on ``PATH`` is
  used when its major version is the one requested (``3.x``, ``20``, ``1.22``, ``'17'``), else the
  step fails saying which version was found;
- ``actions/cache``: the job's dependency cache restored the paths before the job (and saves them
  after it succeeds); ``cache-hit`` is true when every path exists;
- ``actions/upload-artifact``: the matched files are copied, relative to their least common
  ancestor as GitHub stores them, into ``.buildyard-github/artifacts/<name>/`` (a declared output
  of the job, so it reaches the jobs that need it and the cache);
- ``actions/download-artifact``: one artifact into ``path``, or every artifact (those whose name
  matches ``pattern``) into ``path/<name>/``, or into ``path`` itself with ``merge-multiple``.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from buildyard.importers import github_expr as gx
from buildyard.importers.github_context import STATE_DIR, artifact_dir
from buildyard.importers.github_steps import MAX_COMPOSITE_DEPTH, MAX_FILE, Scope, StepFailure

if TYPE_CHECKING:
    from buildyard.importers.github_steps import JobRun

_TOOLS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    # action: (input, executables, version command)
    "actions/setup-python": ("python-version", ("python3", "python"), ("--version",)),
    "actions/setup-node": ("node-version", ("node",), ("--version",)),
    "actions/setup-go": ("go-version", ("go",), ("version",)),
    "actions/setup-java": ("java-version", ("java",), ("-version",)),
}


def run_action(
    job: JobRun, step: dict[str, Any], scope: Scope, env: dict[str, str], fns: Mapping[str, gx.Function]
) -> tuple[bool, dict[str, str]]:
    """Run one ``uses:`` step; ``(succeeded, outputs)``; raise ``StepFailure`` naming what is missing."""
    uses = str(step["uses"]).strip()
    ctx = job.context(scope, job.step_vars)
    try:
        with_ = {
            str(k): gx.to_string(gx.value_of(v, ctx, functions=fns))
            for k, v in (step.get("with") or {}).items()
        }
    except gx.ExprError as exc:
        raise StepFailure(f"with: {exc}") from None
    if uses.startswith("./"):
        return composite(job, uses, with_, scope)
    name = uses.split("@", 1)[0].lower()
    if name == "actions/checkout":
        job.log("actions/checkout: the working tree is already checked out")
        return True, {"ref": job.github["ref"], "commit": job.github["sha"]}
    if name in _TOOLS:
        return True, setup_tool(job, name, with_)
    if name in ("actions/cache", "actions/cache/restore"):
        paths = [p.strip() for p in with_.get("path", "").splitlines() if p.strip()]
        hit = bool(paths) and all(glob.glob(p, root_dir=job.project) for p in paths)  # noqa: PTH207
        job.log(
            f"actions/cache: buildyard's dependency cache restores {', '.join(paths)} "
            f"(cache-hit: {str(hit).lower()})"
        )
        return True, {"cache-hit": "true" if hit else "false", "cache-primary-key": with_.get("key", "")}
    if name == "actions/cache/save":
        job.log("actions/cache/save: buildyard's dependency cache saves the paths when the job succeeds")
        return True, {}
    if name == "actions/upload-artifact":
        return upload(job, with_)
    if name == "actions/download-artifact":
        return download(job, with_)
    raise StepFailure(
        f"uses: {uses}: buildyard does not download or run this action (it runs local composite actions and "
        "actions/checkout, setup-python, setup-node, setup-go, setup-java, cache, upload-artifact, "
        "download-artifact)"
    )


def _major(text: str) -> str:
    m = re.search(r"(\d+)", text)
    return m.group(1) if m else ""


def setup_tool(job: JobRun, action: str, with_: Mapping[str, str]) -> dict[str, str]:
    """Use the toolchain on PATH when its major version is the one requested."""
    key, names, args = _TOOLS[action]
    wanted = with_.get(key, "").strip()
    path = [*job.path_prefix[::-1], job.environ.get("PATH", "")]
    found = next(
        (
            shutil.which(n, path=os.pathsep.join(path))
            for n in names
            if shutil.which(n, path=os.pathsep.join(path))
        ),
        None,
    )
    if found is None:
        raise StepFailure(
            f"{action}: {names[0]} is not installed on this machine (install it, or remove the step)"
        )
    try:
        out = subprocess.run([found, *args], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StepFailure(f"{action}: cannot run {found}: {exc}") from None
    text = (out.stdout + out.stderr).strip()
    version = re.search(r"(\d+(?:\.\d+)*)", text.replace("go1", "go 1"))
    have = version.group(1) if version else ""
    if action == "actions/setup-java" and have.startswith("1."):
        have = have[2:]  # java 1.8 is 8
    if wanted and _major(wanted) and _major(wanted) != _major(have):
        raise StepFailure(
            f"{action}: {key} {wanted} requested, but {found} is version {have or 'unknown'} "
            f"(install major version {_major(wanted)} on PATH, or change {key})"
        )
    job.log(f"{action}: using {found} ({have}){' for ' + key + ' ' + wanted if wanted else ''}")
    folder = str(Path(found).parent)
    if folder not in job.path_prefix:
        job.path_prefix.append(folder)
    short = key.split("-")[0]
    return {f"{short}-version": have, f"{short}-path": found, "version": have}


def _lca(roots: list[str]) -> str:
    parts = [Path(r).parts for r in roots]
    common: list[str] = []
    for group in zip(*parts, strict=False):
        if all(p == group[0] for p in group):
            common.append(group[0])
        else:
            break
    return str(Path(*common)) if common else "."


def _search_root(pattern: str, project: Path) -> str:
    fixed: list[str] = []
    for part in Path(pattern).parts:
        if any(ch in part for ch in "*?["):
            return str(Path(*fixed)) if fixed else "."
        fixed.append(part)
    full = project / pattern
    return pattern if full.is_dir() else (str(Path(pattern).parent) or ".")


def upload(job: JobRun, with_: Mapping[str, str]) -> tuple[bool, dict[str, str]]:
    """Copy the matched files into the artifact's directory, relative to their common root."""
    name = with_.get("name") or "artifact"
    patterns = [p.strip() for p in with_.get("path", "").splitlines() if p.strip()]
    if not patterns:
        raise StepFailure("actions/upload-artifact: 'path' is required")
    project = job.project
    included: set[str] = set()
    excluded: set[str] = set()
    roots: list[str] = []
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        if body.startswith(("/", "~")) or ".." in Path(body).parts:
            raise StepFailure(f"actions/upload-artifact: path {body!r} is outside the workspace")
        if not negate:
            roots.append(_search_root(body, project))
        for match in glob.glob(body, root_dir=project, recursive=True, include_hidden=True):  # noqa: PTH207
            full = project / match
            files = (
                [str(p.relative_to(project)) for p in full.rglob("*") if p.is_file()]
                if full.is_dir()
                else [match]
            )
            (excluded if negate else included).update(f for f in files if full.exists())
    files = sorted(included - excluded)
    if not files:
        how = with_.get("if-no-files-found", "warn")
        message = (
            f"actions/upload-artifact: no files were found with the provided path: {', '.join(patterns)}"
        )
        if how == "error":
            raise StepFailure(message)
        if how != "ignore":
            job.log(f"::warning::{message}. No artifacts will be uploaded.")
        return True, {}
    root = _lca(roots)
    target = project / artifact_dir(name)
    shutil.rmtree(target, ignore_errors=True)
    for rel in files:
        dest = target / os.path.relpath(rel, root)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(project / rel, dest)
    job.log(f"actions/upload-artifact: {len(files)} file(s) as artifact '{name}'")
    return True, {"artifact-id": name, "artifact-url": str(target)}


def download(job: JobRun, with_: Mapping[str, str]) -> tuple[bool, dict[str, str]]:
    """Copy one artifact (or each) from the artifacts directory into ``path``."""
    project = job.project
    dest_text = with_.get("path", "").strip()
    if dest_text.startswith(("/", "~")) or ".." in Path(dest_text).parts:
        raise StepFailure(f"actions/download-artifact: path {dest_text!r} is outside the workspace")
    dest = project / dest_text if dest_text else project
    store = project / STATE_DIR / "artifacts"
    name = with_.get("name", "")
    if name:
        source = project / artifact_dir(name)
        if not source.is_dir():
            raise StepFailure(
                f"actions/download-artifact: artifact '{name}' not found "
                "(the job that uploads it must be in needs and have run)"
            )
        pairs = [(source, dest)]
    else:  # every artifact, or those whose name matches ``pattern``; ``merge-multiple`` into ``path``
        pattern = with_.get("pattern", "").strip()
        merge = with_.get("merge-multiple", "").strip().lower() == "true"
        found = sorted(d for d in store.iterdir() if d.is_dir()) if store.is_dir() else []
        chosen = [d for d in found if not pattern or fnmatch.fnmatchcase(d.name, pattern)]
        pairs = [(d, dest if merge else dest / d.name) for d in chosen]
    for source, target in pairs:
        shutil.copytree(source, target, dirs_exist_ok=True)
    job.log(f"actions/download-artifact: {len(pairs)} artifact(s) into {dest_text or '.'}")
    return True, {"download-path": str(dest)}


def composite(job: JobRun, uses: str, with_: Mapping[str, str], scope: Scope) -> tuple[bool, dict[str, str]]:
    """A local composite action: its inputs (with defaults), its steps in a scope of their own, and
    its outputs."""
    if scope.depth >= MAX_COMPOSITE_DEPTH:
        raise StepFailure(f"{uses}: composite actions nested deeper than {MAX_COMPOSITE_DEPTH}")
    folder = (job.project / uses).resolve()
    if not folder.is_relative_to(job.project):
        raise StepFailure(f"{uses}: the action is outside the repository")
    manifest = next((folder / f for f in ("action.yml", "action.yaml") if (folder / f).is_file()), None)
    if manifest is None:
        raise StepFailure(f"{uses}: no action.yml in {folder}")
    with manifest.open("rb") as f:
        raw = f.read(MAX_FILE + 1)
    if len(raw) > MAX_FILE:
        raise StepFailure(f"{uses}: action.yml is larger than {MAX_FILE // 1024} KiB")
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise StepFailure(f"{uses}: action.yml is not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict) or not isinstance(data.get("runs"), dict):
        raise StepFailure(f"{uses}: action.yml needs 'runs'")
    using = str(data["runs"].get("using", ""))
    if using != "composite":
        raise StepFailure(f"{uses}: a '{using}' action is not run by buildyard (only composite actions)")
    declared = data.get("inputs") or {}
    inner = Scope(action_path=str(folder), depth=scope.depth + 1, inputs={})
    ctx = job.context(inner)
    assert inner.inputs is not None  # noqa: S101 - set just above
    for name, spec in declared.items():
        if name in with_:
            inner.inputs[name] = with_[name]
        elif isinstance(spec, dict) and "default" in spec:
            try:
                inner.inputs[name] = gx.to_string(gx.value_of(spec["default"], ctx))
            except gx.ExprError as exc:
                raise StepFailure(f"{uses}: input {name}: {exc}") from None
        elif isinstance(spec, dict) and spec.get("required"):
            raise StepFailure(f"{uses}: input '{name}' is required")
        else:
            inner.inputs[name] = ""
    for name in with_:
        if name not in declared:
            job.log(f"::warning::{uses}: unexpected input '{name}'")
            inner.inputs[name] = with_[name]
    steps = data["runs"].get("steps") or []
    if not isinstance(steps, list):
        raise StepFailure(f"{uses}: runs.steps must be a list")
    failed_before = job.job_status
    job.run_steps([{**s, "_at": str(manifest)} for s in steps if isinstance(s, dict)], inner)
    ok = not inner.failed
    if failed_before == "success" and not ok:
        job.job_status = "success"  # the composite step's own conclusion decides (continue-on-error)
    outputs: dict[str, str] = {}
    for name, spec in (data.get("outputs") or {}).items():
        value = spec.get("value", "") if isinstance(spec, dict) else ""
        try:
            outputs[str(name)] = gx.to_string(gx.value_of(value, job.context(inner)))
        except gx.ExprError as exc:
            raise StepFailure(f"{uses}: output {name}: {exc}") from None
    return ok, outputs
