"""Deploy the artifact buildyard pulled (``$BUILDYARD_ARTIFACT_DIR``) into a directory served over HTTP.

    python tools/deploy.py --to DIR

The files are copied into a new release directory ``DIR/releases/VERSION``, an ``index.json`` lists
them with their SHA-256, and the ``DIR/current`` symlink is switched to it atomically (rename), so a
reader sees the old release or the new one, never half of one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--to", type=Path, required=True)
    args = parser.parse_args(argv)
    source = Path(os.environ["BUILDYARD_ARTIFACT_DIR"])
    version = os.environ["BUILDYARD_ARTIFACT_VERSION"]
    release = args.to / "releases" / version
    if release.exists():
        shutil.rmtree(release)
    release.mkdir(parents=True)
    files = {}
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        target = release / path.name
        shutil.copy2(path, target)
        files[path.name] = hashlib.sha256(target.read_bytes()).hexdigest()
    index = {"name": os.environ["BUILDYARD_ARTIFACT_NAME"], "version": version, "files": files}
    (release / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    link = args.to / "current"
    tmp = args.to / ".current.tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(Path("releases") / version)
    tmp.replace(link)
    print(f"deployed {index['name']} {version} ({len(files)} files) to {link}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
