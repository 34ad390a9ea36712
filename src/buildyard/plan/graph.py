"""The planner's graph algorithms: re-exported from :mod:`buildyard.graph`.

They moved below ``spec`` and ``plan`` (the spec loader uses :func:`find_cycle` to reject a
``needs`` cycle, and the spec must not import the planner, which imports the spec).
"""

from __future__ import annotations

from buildyard.graph import closure, critical_path_lengths, find_cycle, topological_order

__all__ = ["closure", "critical_path_lengths", "find_cycle", "topological_order"]
