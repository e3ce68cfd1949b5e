"""The team server's Alembic revisions (branch ``server``): tokens and the audit log.

``LEGACY_VERSIONS`` maps the hand-written runner's versions to revisions (see
:mod:`amlpkg.store.schema_upgrade`).
"""

LEGACY_VERSIONS = {7: "server_0001"}
