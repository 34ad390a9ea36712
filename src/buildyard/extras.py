"""Optional parts of buildyard installed as extras, and the one error when one is missing.

The base install holds what ``buildyard run`` needs; the HTTP servers need ``buildyard[server]``
(FastAPI, uvicorn, the Prometheus client, Jinja2). A face that needs an extra calls
:func:`require_extra` before importing it, so a missing extra is one line saying what to install,
not an ``ImportError`` traceback.
"""

from __future__ import annotations

import importlib.util

from buildyard.errors import UserError

#: Extra name -> the top-level modules it provides (kept equal to pyproject's optional-dependencies).
EXTRAS: dict[str, tuple[str, ...]] = {
    "server": ("fastapi", "uvicorn", "prometheus_client", "jinja2"),
    "dask": ("distributed", "fastapi", "uvicorn", "prometheus_client", "jinja2"),
}


class MissingExtraError(UserError):
    """A feature needs an optional extra that is not installed; the message says what to install."""


def missing_modules(extra: str) -> list[str]:
    """The modules of ``extra`` that cannot be imported here."""
    return [name for name in EXTRAS[extra] if importlib.util.find_spec(name) is None]


def require_extra(extra: str, feature: str) -> None:
    """Raise :class:`MissingExtraError` unless every module of ``extra`` is installed."""
    missing = missing_modules(extra)
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise MissingExtraError(
            f"{feature} needs {' and '.join(missing)}, which {verb} not installed: "
            f"pip install 'buildyard[{extra}]'"
        )
