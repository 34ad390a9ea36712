"""The public surface of ``buildyard.gates`` and its layering."""

from __future__ import annotations

import subprocess
import sys

import buildyard.gates as gates


def test_exported_members_exist_and_are_documented() -> None:
    assert sorted(gates.__all__) == gates.__all__
    for name in gates.__all__:
        member = getattr(gates, name)
        assert member.__doc__, name


def test_service_does_not_import_faces_or_engine() -> None:
    code = (
        "import sys, buildyard.gates, buildyard.gates.standalone, buildyard.gates.serialize;"
        "bad = sorted(m for m in sys.modules if m.startswith(('buildyard.cli', 'buildyard.engine',"
        " 'buildyard.server', 'click', 'rich')));"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_config_import_stays_light_for_the_spec_loader() -> None:
    code = (
        "import sys, buildyard.spec.gates, buildyard.gates.config;"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'scipy', 'defusedxml')"
        " or m.startswith('buildyard.gates.reports'));"
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
