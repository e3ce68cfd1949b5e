"""The packager's Alembic revisions: one branch per stage.

Branches: ``optimize``, ``build``, ``deploy`` and ``rollout``.

``LEGACY_VERSIONS`` maps the hand-written runner's versions to revisions (see
:mod:`amlpkg.store.schema_upgrade`).
"""

LEGACY_VERSIONS = {2: "optimize_0001", 3: "build_0001", 4: "deploy_0001"}
