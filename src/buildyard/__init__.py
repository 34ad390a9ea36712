"""buildyard: one ``buildyard.yml``, a DAG of jobs run locally, cached, gated and recorded.

The package is layered (see ``shared/DESIGN.md``): ``spec``/``plan`` are the pure core, ``engine``
orchestrates runs, services (``store``, ``cache``, ``deps``, ``artifacts``, ``gates``) each own one
capability, and ``cli`` is a thin face. Importing this package is cheap on purpose: the CLI start-up
budget is 150 ms.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
