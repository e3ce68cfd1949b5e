"""The team server: the workspace over HTTP, with tokens, roles and an audit log.

``create_app`` builds the FastAPI app (``/api/v1``, OpenAPI at ``/openapi.json``);
``amlpkg server`` runs it with uvicorn. Today it serves the embedded store (SQLite
file + content-addressed folder); PostgreSQL and S3 come next.
"""
