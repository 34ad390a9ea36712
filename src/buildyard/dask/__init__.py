"""Distributed execution on Dask: jobs run on agents (Dask workers), their workspaces made from content.

A face-level plug-in next to the engine (it may import the engine, services and core; nothing
below imports it). ``executor`` is the orchestrator's side (the ``dask`` executor backend),
``agent`` the supervisor a job runs under on an agent, ``wire`` the plain data between them.
"""
