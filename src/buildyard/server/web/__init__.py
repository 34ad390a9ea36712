"""The web dashboard: server-rendered views of projects, runs, logs, metrics, tests and artifacts.

``dashboard_router(source)`` returns the routes; the server includes them in its app and provides a
``DashboardSource`` (``source.py``). ``create_dashboard_app`` serves one source on its own with a
fixed user (tests, benchmarks); the server's own app factory adds authentication.
"""

from __future__ import annotations

from buildyard.server.web.routes import dashboard_router
from buildyard.server.web.source import DashboardSource, ProjectDirSource, ProjectInfo, QueuedRun
from buildyard.server.web.standalone import create_dashboard_app

__all__ = [
    "DashboardSource",
    "ProjectDirSource",
    "ProjectInfo",
    "QueuedRun",
    "create_dashboard_app",
    "dashboard_router",
]
