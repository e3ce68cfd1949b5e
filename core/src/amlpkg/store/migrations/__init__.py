"""The core's Alembic revisions: the lineage edges every stage writes (branch ``core``).

``LEGACY_VERSIONS`` maps the versions of the hand-written runner that came before
Alembic to the revision that makes the same tables (see
:mod:`amlpkg.store.schema_upgrade`).
"""

LEGACY_VERSIONS = {0: "core_0001"}
