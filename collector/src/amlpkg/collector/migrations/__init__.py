"""The collector's Alembic revisions (branch ``collector``): telemetry and devices.

``LEGACY_VERSIONS`` maps the hand-written runner's versions to revisions (see
:mod:`amlpkg.store.schema_upgrade`).
"""

LEGACY_VERSIONS = {5: "collector_0001", 6: "collector_0002"}
