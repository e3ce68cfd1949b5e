"""The trainer's Alembic revisions (branch ``trainer``): runs and the model registry.

``LEGACY_VERSIONS`` maps the hand-written runner's versions to revisions (see
:mod:`amlpkg.store.schema_upgrade`).
"""

LEGACY_VERSIONS = {1: "trainer_0001"}
