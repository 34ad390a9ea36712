"""Server faces: FastAPI applications (this branch: the cache protocols in ``cache_app``)."""
