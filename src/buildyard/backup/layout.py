"""What lives where in ``BUILDYARD_HOME`` (default ``<project>/.buildyard``), and ``clean``.

The home holds three kinds of state; the README's "What lives where" is this table:

===================  ==========================================================  ============
path                 what                                                        kind
===================  ==========================================================  ============
``keys/``            Ed25519 signing keys and trusted public keys                keep
``artifacts/``       the artifact repository: versions, audit log (channels),    keep
                     ``config.json`` (channels policy, retention)
``buildyard.db``     the history: runs, jobs, tests, deployments, approvals       keep
``logs/``            job logs (the history points at them)                       keep (by age)
``cas/``, ``cache/``  job and dependency cache, OSV index                        rebuildable
``osv/``             downloaded vulnerability database (``deps db update``)       kept by clean
``spec-cache/``,     parsed pipelines, file stat cache                           rebuildable
``statcache.json``
``deploy/<p>/``      per-run deployment scratch directories                      rebuildable
``runs/``, ``*.lock`` locks of live runs and writers                             live
===================  ==========================================================  ============

``clean`` removes only the rebuildable kind (and, when asked, logs older than a given age); it
refuses while a run of this home is in progress, since the run writes the cache and the scratch dirs.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from buildyard.backup.crypto import BackupError

#: Entries of the home that must not be lost: ``backup`` copies them, ``clean`` never touches them.
KEEP = ("keys", "artifacts", "buildyard.db", "logs")
#: Entries that a later run rebuilds (at the cost of time): ``clean`` removes them.
REBUILDABLE = ("cas", "cache", "spec-cache", "statcache.json")
#: ``osv/`` is rebuildable only with the network (``deps db update``): ``clean`` leaves it, backups skip it.
#: Deployment scratch dirs live under ``deploy/`` next to ``deploy/locks`` (live: kept).
DEPLOY_DIR = "deploy"
DEPLOY_LOCKS = "locks"


@dataclass
class CleanReport:
    """What ``clean`` removed (or would remove, for a dry run)."""

    removed: list[str] = field(default_factory=list)
    bytes: int = 0


def _size(path: Path) -> int:
    if path.is_symlink() or not path.is_dir():
        with contextlib.suppress(OSError):
            return path.lstat().st_size
        return 0
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += (Path(dirpath) / name).lstat().st_size
    return total


def live_runs(home: Path) -> list[str]:
    """Ids of runs of this home whose process holds its run lock (``engine.liveness``'s protocol)."""
    live = []
    for lock in sorted((home / "runs").glob("*.lock")):
        try:
            fd = os.open(lock, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            live.append(lock.stem)
        finally:
            os.close(fd)
    return live


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def clean(home: Path, *, logs_older_than_s: float | None = None, dry_run: bool = False) -> CleanReport:
    """Remove the rebuildable state of ``home`` (see the module docstring); never keys, artifacts
    or history. ``logs_older_than_s`` also removes run log directories not modified for that long."""
    report = CleanReport()
    if not home.is_dir():
        return report
    running = live_runs(home)
    if running:
        raise BackupError(f"run {running[0]} of {home} is in progress; clean when it has finished")
    targets = [home / name for name in REBUILDABLE]
    deploy = home / DEPLOY_DIR
    if deploy.is_dir():
        targets += [p for p in sorted(deploy.iterdir()) if p.name != DEPLOY_LOCKS]
    if logs_older_than_s is not None:
        cutoff = time.time() - logs_older_than_s
        # logs/<pipeline>/<run number>/: a run's directory goes as a whole.
        for run_dir in sorted((home / "logs").glob("*/*")):
            newest = max((p.stat().st_mtime for p in run_dir.rglob("*")), default=run_dir.stat().st_mtime)
            if newest < cutoff:
                targets.append(run_dir)
    for path in targets:
        if not os.path.lexists(path):
            continue
        report.bytes += _size(path)
        report.removed.append(str(path.relative_to(home)))
        if not dry_run:
            _remove(path)
    return report
