"""In-memory fakes of buildyard's interfaces, for tests of code that uses them."""

from buildyard.testing.history import MemoryHistory

__all__ = ["MemoryHistory"]
