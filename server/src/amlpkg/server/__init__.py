"""The team server: the workspace over HTTP, with tokens, roles and an audit log.

``create_app`` builds the FastAPI app (``/api/v1``, OpenAPI at ``/openapi.json``);
``amlpkg server`` runs it with uvicorn, on the embedded store (SQLite file +
content-addressed folder) or a team's PostgreSQL + S3 bucket (``AMLPKG_STORE``,
``AMLPKG_ARTIFACTS``): it keeps no state of its own, so replicas share one workspace.
"""
