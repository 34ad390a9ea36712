"""``python -m buildyard`` runs the CLI."""

from buildyard.cli import main

main()
