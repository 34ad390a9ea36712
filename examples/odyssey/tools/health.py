"""Health check of a deployment: serve it over HTTP, fetch it back, verify it, use it.

    python tools/health.py DIR

Serves ``DIR/current`` on 127.0.0.1 (a free port), downloads ``index.json`` and every file it lists,
checks each SHA-256, then imports the wheel it served and runs the model's forward pass. Exit 0
when healthy; otherwise one line saying what is wrong.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import subprocess
import sys
import tempfile
import threading
import urllib.request
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    root = Path((argv or sys.argv[1:])[0]) / "current"
    if not (root / "index.json").is_file():
        print(f"unhealthy: no release at {root}")
        return 1
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        index = json.loads(urllib.request.urlopen(f"{base}/index.json", timeout=10).read())
        with tempfile.TemporaryDirectory(prefix="odyssey-health-") as tmp:
            for name, digest in index["files"].items():
                data = urllib.request.urlopen(f"{base}/{name}", timeout=10).read()
                if hashlib.sha256(data).hexdigest() != digest:
                    print(f"unhealthy: {name} served with the wrong SHA-256")
                    return 1
                Path(tmp, name).write_bytes(data)
            wheels = [n for n in index["files"] if n.endswith(".whl")]
            if not wheels:
                print("unhealthy: the release has no wheel")
                return 1
            smoke = (
                "import numpy as np, odyssey; from odyssey.kernels import forward; "
                "from odyssey.train import init_params; "
                "p = forward(np.ones((2, 2)), init_params(2, 4, 3))[1]; "
                "assert abs(p.sum() - 2) < 1e-9; print(odyssey.__version__)"
            )
            done = subprocess.run(
                [sys.executable, "-c", smoke],
                env={"PYTHONPATH": str(Path(tmp, wheels[0])), "PATH": "/usr/bin:/bin"},
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                print(f"unhealthy: the served wheel does not work: {done.stderr.strip().splitlines()[-1:]}")
                return 1
            print(
                f"healthy: {index['name']} {index['version']} served at {base}, wheel {done.stdout.strip()}"
            )
            return 0
    finally:
        server.shutdown()


if __name__ == "__main__":
    sys.exit(main())
