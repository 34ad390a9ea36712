"""The artifact service's entry points for the CLI and the pipeline engine.

- :func:`open_repository` — the repository of a project (``$BUILDYARD_HOME/artifacts``, keys in
  ``$BUILDYARD_HOME/keys``).
- :func:`resolve_version` — a ``publish: version:`` setting (``from_git_tag``, a literal, or
  ``from_file: pyproject.toml|package.json``) turned into a SemVer with build metadata; branch builds
  become pre-releases.
- :func:`publish` — what a job with ``publish:`` does when it succeeds: git metadata, the project's
  dependency inventory and CycloneDX SBOM, provenance, signature, atomic push.
- :func:`artifact_env` — the ``BUILDYARD_ARTIFACT_*`` variables of a job that deploys a pulled version.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import platform
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from buildyard import __version__
from buildyard.artifacts.attest import DEFAULT_BUILDER_ID
from buildyard.artifacts.errors import ArtifactError
from buildyard.artifacts.gitmeta import GitMeta, git_output, read_git
from buildyard.artifacts.keys import DEFAULT_KEY, KeyRing, project_keys_dir
from buildyard.artifacts.lifecycle import promote
from buildyard.artifacts.model import ArtifactType, BuildInfo, Dependency, Manifest
from buildyard.artifacts.repo import PushResult, Repository, Verified, default_root
from buildyard.artifacts.semver import (
    Version,
    VersionError,
    branch_version,
    prerelease_version,
    release_version,
)
from buildyard.versioning import VersionFormatError, to_semver

FROM_GIT_TAG = "from_git_tag"
_RELEASE_BRANCHES = frozenset({"main", "master"})


def open_repository(project: Path, root: Path | None = None, *, keys_dir: Path | None = None) -> Repository:
    """The artifact repository of ``project`` (or at ``root``)."""
    return Repository(root or default_root(project), keyring=KeyRing(keys_dir or project_keys_dir(project)))


def first_use_key(project: Path, name: str = DEFAULT_KEY, *, create: bool) -> str | None:
    """Make sure the signing key ``name`` of ``project`` exists before a publish: with ``create``
    (a developer's machine) make it and return the one line to show; without (CI, where a new key
    each run would sign with keys nobody trusts) refuse with the commands to provide one."""
    ring = KeyRing(project_keys_dir(project))
    if ring.has_private(name):
        return None
    if not create:
        raise ArtifactError(
            f"no signing key {name!r} in {ring.private_dir}; in CI, provide the project's key: "
            f"'buildyard keys export --name {name} --private --out KEY.pem' where it was made, then "
            f"'buildyard keys import KEY.pem --name {name}' before the run"
        )
    public = ring.ensure(name)
    if public is None:
        return None
    return (
        f"created signing key {name!r} ({public.keyid[:16]}) in {ring.private_dir}; back it up "
        f"('buildyard keys export --name {name} --private --out FILE'): artifacts are verified with it"
    )


@dataclass(frozen=True, slots=True)
class RunContext:
    """What the engine knows about the job publishing an artifact (all optional)."""

    run_id: str | None = None
    job_id: str | None = None
    build_number: int | None = None
    event: str | None = None
    pipeline_file: Path | None = None


#: Bytes of a wheel's METADATA / an sdist's PKG-INFO read at most (the version is in the header).
_METADATA_CAP = 1 << 20


def dist_version(path: Path) -> str | None:
    """The ``Version:`` of a built wheel (``*.whl``) or sdist (``*.tar.gz``), None for other files."""
    import email.parser  # noqa: PLC0415
    import tarfile  # noqa: PLC0415
    import zipfile  # noqa: PLC0415

    try:
        if path.name.endswith(".whl"):
            with zipfile.ZipFile(path) as wheel:
                name = next(
                    (n for n in wheel.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")),
                    None,
                )
                if name is None:
                    return None
                with wheel.open(name) as f:
                    data = f.read(_METADATA_CAP)
        elif path.name.endswith(".tar.gz"):
            with tarfile.open(path, "r:gz") as sdist:
                member = next(
                    (
                        m
                        for m in sdist
                        if m.isfile() and m.name.count("/") == 1 and m.name.endswith("/PKG-INFO")
                    ),
                    None,
                )
                info = sdist.extractfile(member) if member is not None else None
                if info is None:
                    return None
                data = info.read(_METADATA_CAP)
        else:
            return None
    except (OSError, zipfile.BadZipFile, tarfile.TarError) as exc:
        raise ArtifactError(f"{path}: cannot read its metadata ({exc})") from None
    version = email.parser.BytesHeaderParser().parsebytes(data).get("Version")
    return str(version).strip() if version else None


def _version_from_file(path: Path, dists: Sequence[Path] = ()) -> str:
    try:
        if path.name == "package.json":
            value = json.loads(path.read_text())["version"]
        else:
            project = tomllib.loads(path.read_text())["project"]
            if "version" not in project and "version" in project.get("dynamic", []):
                return _dynamic_version(path, dists)
            value = project["version"]
    except FileNotFoundError:
        raise ArtifactError(f"{path}: version file not found") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"{path}: no version found ({type(exc).__name__}: {exc})") from None
    return str(value)


def _dynamic_version(path: Path, dists: Sequence[Path]) -> str:
    """A ``dynamic = ["version"]`` project's version: what the build backend wrote into the built
    wheel or sdist being published (one version across them)."""
    found = {v for d in dists if (v := dist_version(d)) is not None}
    if len(found) == 1:
        return found.pop()
    if not found:
        raise ArtifactError(
            f"{path}: the version is dynamic and no built wheel or sdist is published to read it from "
            "(publish dist/*.whl, or set version: to a literal or from_git_tag)"
        )
    raise ArtifactError(f"the published distributions disagree on the version ({', '.join(sorted(found))})")


def resolve_version(
    setting: str | dict[str, str],
    *,
    project: Path,
    git: GitMeta,
    build_number: int | None,
    dists: Sequence[Path] = (),
) -> Version:
    """Turn a ``version:`` setting into a SemVer (versions written as ``v1.4``, ``3.7`` or in PEP 440
    are normalised: :func:`buildyard.versioning.to_semver`).

    - a literal (``"1.4.0"``) is taken as given; with a build number it gets ``+build.N.<commit>``;
    - ``from_git_tag``: the tag on HEAD (``v`` stripped) plus build metadata; with no tag on HEAD, a
      pre-release of the next patch after the last tag: ``1.4.1-feature-x.N+build.N.<commit>``;
    - ``{"from_file": "pyproject.toml"|"package.json"}``: that version plus build metadata on
      ``main``/``master``, a tag or a detached HEAD; on any other branch ``1.4.0-<branch>.N+…``.
      A ``dynamic`` pyproject version is read from the built wheel/sdist among ``dists``.
    """
    branch_build = git.tag is None and git.branch is not None and git.branch not in _RELEASE_BRANCHES
    if isinstance(setting, dict):
        if set(setting) != {"from_file"}:
            raise ArtifactError(f"version setting {setting!r}: expected from_git_tag, a version or from_file")
        base = _version_from_file(project / setting["from_file"], dists)
    elif setting == FROM_GIT_TAG:
        if git.tag:
            base = git.tag
        else:
            last = git_output(project, "describe", "--tags", "--abbrev=0")
            base = _semver(last) if last else "0.0.0"
            return branch_version(base, git.branch or "detached", build_number or 0, commit=git.commit)
    else:
        base, branch_build = setting, False
    try:
        parsed = Version.parse(_semver(base))
    except VersionError as exc:
        raise ArtifactError(f"version {base!r}: {exc}") from None
    if parsed.build:
        return parsed
    if branch_build and not parsed.is_prerelease:
        return prerelease_version(parsed.base(), str(git.branch), build_number or 0, commit=git.commit)
    if build_number is None:
        return parsed
    return release_version(parsed.base(), build_number=build_number, commit=git.commit)


def check_version_setting(setting: str | dict[str, str], *, project: Path) -> None:
    """Raise :class:`ArtifactError` for a ``version:`` setting that cannot give a version, as far as it
    is known before the build: a ``from_file`` that is missing, has no version (and no dynamic one,
    which the build makes) or an unusable one; a literal without a SemVer equivalent."""
    if isinstance(setting, dict):
        path = project / setting.get("from_file", "")
        if path.name == "pyproject.toml" and path.is_file():
            with contextlib.suppress(tomllib.TOMLDecodeError, TypeError, AttributeError, OSError):
                table = tomllib.loads(path.read_text()).get("project", {})
                if "version" not in table and "version" in table.get("dynamic", []):
                    return  # read from the built wheel or sdist after the build
        _semver(_version_from_file(path))
    elif setting != FROM_GIT_TAG:
        _semver(setting)


def _semver(text: str) -> str:
    try:
        return to_semver(text)
    except VersionFormatError as exc:
        raise ArtifactError(f"version {exc}") from None


def project_inventory(
    project: Path, name: str, artifacts: Sequence[Path] = ()
) -> tuple[bytes, list[Dependency]]:
    """The CycloneDX 1.6 SBOM of what an artifact of ``project`` ships, and its dependency list.

    Shipped: the requirements the artifact declares (a wheel's ``Requires-Dist`` among ``artifacts``,
    else the project's runtime dependencies) resolved through the lockfiles; dev tools are scoped
    ``excluded`` in the SBOM and left out of the list (``buildyard.deps.api.artifact_sbom``).
    """
    from buildyard.deps import api as deps_api  # noqa: PLC0415 - heavy; only pushes need it

    sbom, shipped = deps_api.artifact_sbom(project, name, artifacts)
    deps = sorted(
        {Dependency(p.ecosystem.value, p.name, p.version, p.purl) for p in shipped},
        key=lambda d: (d.ecosystem, d.name, d.version),
    )
    return sbom.encode(), deps


def build_info(project: Path, git: GitMeta, context: RunContext) -> BuildInfo:
    """Build metadata of a push from ``project`` (pipeline file digest if it exists)."""
    pipeline = context.pipeline_file
    if pipeline is None and (project / "buildyard.yml").is_file():
        pipeline = project / "buildyard.yml"
    digest = hashlib.sha256(pipeline.read_bytes()).hexdigest() if pipeline and pipeline.is_file() else None
    rel = None
    if pipeline is not None:
        try:
            rel = pipeline.resolve().relative_to(project.resolve()).as_posix()
        except ValueError:
            rel = str(pipeline)
    return BuildInfo(
        builder=f"buildyard {__version__} on {platform.node() or 'unknown'}",
        build_time=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        commit=git.commit,
        branch=git.branch,
        tag=git.tag,
        build_number=context.build_number,
        run_id=context.run_id,
        job_id=context.job_id,
        event=context.event,
        pipeline_file=rel if digest else None,
        pipeline_sha256=digest,
        repository=git.repository,
    )


def publish(
    project: Path,
    *,
    name: str,
    paths: Sequence[Path],
    version: str | dict[str, str],
    artifact_type: ArtifactType = ArtifactType.APPLICATION,
    context: RunContext | None = None,
    repo: Repository | None = None,
    key: str = DEFAULT_KEY,
    with_sbom: bool = True,
    actor: str | None = None,
    builder_id: str = DEFAULT_BUILDER_ID,
    land: bool = False,
) -> PushResult:
    """Push ``paths`` as a signed, versioned artifact of ``project`` (what ``publish:`` does).

    With ``land``, a new version enters the first channel of the repository's promotion order
    (``dev`` by default) when that channel asks for nothing, so that deploying it to ``staging``
    (which requires ``dev``) promotes it there.
    """
    context = context or RunContext()
    git = read_git(project)
    resolved = resolve_version(
        version, project=project, git=git, build_number=context.build_number, dists=paths
    )
    repo = repo or open_repository(project)
    sbom, deps = project_inventory(project, name, paths) if with_sbom else (None, [])

    def same_build(manifest: Manifest) -> bool:
        """An earlier build of this commit whose version follows the same rule (a no-op rebuild)."""
        if not git.commit or manifest.build.commit != git.commit:
            return False
        again = resolve_version(
            version, project=project, git=git, build_number=manifest.build.build_number, dists=paths
        )
        return str(again) == manifest.version

    result = repo.push(
        name,
        str(resolved),
        paths,
        build=build_info(project, git, context),
        artifact_type=artifact_type,
        key=key,
        sbom=sbom,
        dependencies=deps,
        actor=actor,
        builder_id=builder_id,
        reuse=same_build if context.build_number is not None else None,
    )
    first = repo.config.channels[0]
    if land and result.created and first.requires is None and not first.requires_gates:
        promote(repo, result.record.name, first.name, actor=result.record.pushed_by, reason="published")
    return result


def artifact_env(verified: Verified, dest: Path) -> dict[str, str]:
    """Environment of a deployment job for a version pulled into ``dest`` (see ``Repository.pull``)."""
    m = verified.manifest
    env = {
        "BUILDYARD_ARTIFACT_NAME": m.name,
        "BUILDYARD_ARTIFACT_VERSION": m.version,
        "BUILDYARD_ARTIFACT_TYPE": m.type.value,
        "BUILDYARD_ARTIFACT_DIR": str(dest),
        "BUILDYARD_ARTIFACT_SIGNER": verified.signer.keyid,
    }
    if m.build.commit:
        env["BUILDYARD_ARTIFACT_COMMIT"] = m.build.commit
    return env
