"""The pipeline specification: loading ``buildyard.yml`` with positions, models, expressions, schema."""
