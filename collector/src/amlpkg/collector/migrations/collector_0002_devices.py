"""Devices as first-class records (issue 10).

``first_seen``/``last_seen`` are when amlpkg first and last heard of the device
(a deploy naming it, or its telemetry); ``last_telemetry`` only the latter.
``model_ref`` is the model the device reports serving; ``desired_*`` what a deploy
(or a library call) asked for.

Revision ID: collector_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "collector_0002"
down_revision = "collector_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the desired state and the time of the last telemetry."""
    for name in ("desired_model", "desired_sha256", "desired_deployment_id"):
        op.add_column("devices", sa.Column(name, sa.Text))
    op.add_column("devices", sa.Column("desired_set", sa.Double))
    op.add_column("devices", sa.Column("last_telemetry", sa.Double))
    op.execute("UPDATE devices SET last_telemetry = last_seen")


def downgrade() -> None:
    """Drop the added columns."""
    for name in ("last_telemetry", "desired_set", "desired_deployment_id", "desired_sha256",
                 "desired_model"):  # fmt: skip
        op.drop_column("devices", name)
