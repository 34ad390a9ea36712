"""The warm daemon: ``buildyard`` start-up paid once instead of on every command.

A fully cached ``buildyard run`` of a 100-job pipeline spends most of its time importing Python
modules. The daemon imports them once; for each command it forks a child that *is* an ordinary
buildyard process: the thin client passes its stdin/stdout/stderr (``SCM_RIGHTS``), working
directory, environment, umask and argv; the child adopts them and runs ``run_cli(argv)``. Every
command is a fresh copy-on-write process, so nothing is shared between runs, jobs are children of a
normal process, output goes straight to the user's terminal and signals are forwarded by the client.

- :mod:`buildyard.daemon.client` — the cheap side (stdlib only): find the socket, hand over a command.
- :mod:`buildyard.daemon.server` — the accept loop, the fork, the staleness check.
"""
