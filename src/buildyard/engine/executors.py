"""The innermost executor of a run, chosen by name: ``local``, ``pool`` and whatever plugins add.

An executor *backend* is a factory returning an ``Executor`` (which may have a ``close()`` method,
called after the run), called with no argument, or with ``TARGET`` for a name ``NAME://TARGET``
(``dask://host:8786``). Backends are peers: the built-in ``local`` (a new process
per step) and ``pool`` (bash steps on warm shell workers) are registered exactly like a third-party
one, which declares an entry point in the group ``buildyard.executors`` (``dask``, shipped in
``buildyard.dask`` above the engine, is loaded by name the same way)::

    [project.entry-points."buildyard.executors"]
    dask = "buildyard.dask.executor:dask_executor"

The built-ins (and ``BUILTIN_PLUGINS``) are known without installed metadata (a source checkout, a
stale install), entry points add the others; an in-process registration (tests, embedding) wins
over both. The wrappers around the chosen backend (cache, gates, publish, deploy) are not executors
one chooses: ``engine.stack`` adds them in one documented order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

from buildyard.engine.request import Executor
from buildyard.errors import UsageError

ENTRY_POINT_GROUP = "buildyard.executors"
DEFAULT_EXECUTOR = "local"
#: Former names still accepted (``BUILDYARD_EXECUTOR=spawn`` predates the registry).
ALIASES = {"spawn": "local"}

#: Called with no argument, or with the target of a ``NAME://TARGET`` executor (``dask://host:8786``).
ExecutorFactory = Callable[..., Executor]


def split_target(name: str) -> tuple[str, str]:
    """``("dask", "host:8786")`` for ``dask://host:8786``; ``(name, "")`` for a plain name."""
    backend, sep, target = name.partition("://")
    return (backend, target) if sep else (name, "")


def local_executor() -> Executor:
    """A new shell process per step (the default)."""
    from buildyard.engine.local import LocalExecutor  # noqa: PLC0415 - loaded when chosen

    return LocalExecutor("spawn")


def pool_executor() -> Executor:
    """Bash steps on warm shell workers (``shellpool``); other steps are spawned."""
    from buildyard.engine.local import LocalExecutor  # noqa: PLC0415 - loaded when chosen

    return LocalExecutor("pool")


BUILTIN: dict[str, ExecutorFactory] = {"local": local_executor, "pool": pool_executor}
#: Plug-ins shipped with buildyard above the engine (which never imports them): loaded by their entry
#: point's value exactly as an installed entry point would be, so they work without fresh metadata.
BUILTIN_PLUGINS: dict[str, str] = {
    "dask": "buildyard.dask.executor:dask_executor",
    "tls": "buildyard.dask.executor:dask_tls_executor",
}


class ExecutorRegistry:
    """Executor backends by name: built-ins, then entry points, then in-process registrations."""

    def __init__(self, builtin: dict[str, ExecutorFactory] | None = None) -> None:
        self._builtin = dict(BUILTIN if builtin is None else builtin)
        self._registered: dict[str, ExecutorFactory] = {}

    def register(self, name: str, factory: ExecutorFactory) -> None:
        """Make ``factory`` the backend called ``name`` in this process."""
        self._registered[name] = factory

    def unregister(self, name: str) -> None:
        """Forget an in-process registration (built-ins and entry points stay)."""
        self._registered.pop(name, None)

    @contextmanager
    def registered(self, name: str, factory: ExecutorFactory) -> Iterator[None]:
        """``register`` for the duration of a ``with`` block (tests)."""
        previous = self._registered.get(name)
        self.register(name, factory)
        try:
            yield
        finally:
            if previous is None:
                self.unregister(name)
            else:
                self.register(name, previous)

    @staticmethod
    def _entry_points() -> dict[str, metadata.EntryPoint]:
        shipped = {
            name: metadata.EntryPoint(name, value, ENTRY_POINT_GROUP)
            for name, value in BUILTIN_PLUGINS.items()
        }
        return {**shipped, **{ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}}

    def names(self) -> list[str]:
        """Every known backend name, sorted."""
        return sorted({*self._builtin, *self._entry_points(), *self._registered})

    def factory(self, name: str, *, origin: str = "") -> ExecutorFactory:
        """The backend called ``name`` (``UsageError`` listing the known ones when there is none);
        ``origin`` says where the name came from, for that message."""
        name = ALIASES.get(name, name)
        if name in self._registered:
            return self._registered[name]
        if name in self._builtin:
            return self._builtin[name]
        entry = self._entry_points().get(name)
        if entry is None:
            where = f" (from {origin})" if origin else ""
            raise UsageError(f"unknown executor {name!r}{where}: use one of {', '.join(self.names())}")
        try:
            loaded = entry.load()
        except Exception as exc:  # noqa: BLE001 - a broken plugin is the user's to fix: say which
            raise UsageError(f"executor {name!r} ({entry.value}) cannot be loaded: {exc}") from None
        if not callable(loaded):
            raise UsageError(f"executor {name!r} ({entry.value}) is not a factory of executors")
        factory: ExecutorFactory = loaded
        return factory

    def create(self, name: str, *, origin: str = "") -> Executor:
        """A new executor of backend ``name`` (``NAME://TARGET``: the factory is given ``TARGET``)."""
        backend, target = split_target(name)
        factory = self.factory(backend, origin=origin)
        return factory(target) if target else factory()


#: The registry runs use (``execute_run``); tests register extra backends on it.
executors = ExecutorRegistry()


def executor_name(
    chosen: str | None = None, project: Path | None = None, *, declared: str = ""
) -> tuple[str, str]:
    """``(name, where it came from)``, first found of: ``chosen`` (``--executor``),
    ``$BUILDYARD_EXECUTOR``, ``declared`` (the pipeline's ``executor:``), a config file's
    ``executor``, else ``local``."""
    if chosen:
        return chosen, ""
    from buildyard.settings import Source, load  # noqa: PLC0415 - run start-up stays lean

    settings = load(project)
    origin = settings.origins["executor"]
    if origin.source == Source.ENV or (origin.source != Source.DEFAULT and not declared):
        return settings.executor, (origin.where or str(origin))
    if declared:
        return declared, "executor: in buildyard.yml"
    return DEFAULT_EXECUTOR, ""
