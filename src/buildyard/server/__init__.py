"""Server faces: FastAPI applications (this branch: the cache protocols in ``cache_app``).

They need the ``server`` extra (``pip install 'buildyard[server]'``): importing this package without it
raises :class:`buildyard.extras.MissingExtraError`, one line saying so, before any module here fails to
import FastAPI.
"""

from buildyard.extras import require_extra

require_extra("server", "buildyard.server")
