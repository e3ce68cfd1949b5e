"""Rollouts: staged, metric-gated model rollouts to a fleet, and each device's part in one.

``rollouts`` holds the plan (stages, gate, soak, quorum, target) and where the driver
is (``stage``, ``phase``, ``applied_at``), so a restarted driver continues there.
``rollout_devices`` says which stage put the new model on which device and what the
device's desired state was before, so a failed gate or an abort can put it back.

Revision ID: rollout_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "rollout_0001"
down_revision = None
branch_labels = ("rollout",)
depends_on = ("collector_0002",)


def upgrade() -> None:
    """Create the rollouts and rollout_devices tables."""
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Text, primary_key=True),
        *(sa.Column(c, sa.Text, nullable=False) for c in ("model", "fleet", "stages", "gate")),
        sa.Column("soak_s", sa.Double, nullable=False),
        sa.Column("quorum", sa.Double, nullable=False),
        sa.Column("max_wait_s", sa.Double, nullable=False),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("options", sa.Text, nullable=False, server_default="{}"),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("stage", sa.Integer, nullable=False, server_default="0"),
        sa.Column("phase", sa.Text, nullable=False),
        sa.Column("applied_at", sa.Double),
        sa.Column("baseline", sa.Text),
        sa.Column("result", sa.Text, nullable=False, server_default="[]"),
        sa.Column("reason", sa.Text),
        sa.Column("created", sa.Double, nullable=False),
        sa.Column("updated", sa.Double, nullable=False),
        sa.CheckConstraint(
            "state IN ('running', 'paused', 'succeeded', 'failed', 'aborted')",
            name="rollouts_state",
        ),
        sa.CheckConstraint("phase IN ('apply', 'soak', 'done')", name="rollouts_phase"),
    )
    op.create_table(
        "rollout_devices",
        sa.Column("rollout_id", sa.Text, sa.ForeignKey("rollouts.id"), primary_key=True),
        sa.Column("device_id", sa.Text, primary_key=True),
        sa.Column("stage", sa.Integer, nullable=False),
        sa.Column("previous", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("applied_at", sa.Double, nullable=False),
        sa.Column("updated", sa.Double, nullable=False),
        sa.CheckConstraint("status IN ('applied', 'rolled_back')", name="rollout_devices_status"),
    )
    op.create_index("rollout_devices_by_device", "rollout_devices", ["device_id"])


def downgrade() -> None:
    """Drop the rollout tables."""
    op.drop_table("rollout_devices")
    op.drop_table("rollouts")
