"""Quality gates and test analytics (filled in below)."""
