"""Telemetry messages and the devices they come from.

Revision ID: collector_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "collector_0001"
down_revision = None
branch_labels = ("collector",)
depends_on = ("core_0001",)

SOURCES = "source IN ('device', 'otlp_metrics', 'otlp_traces')"


def upgrade() -> None:
    """Create the devices and telemetry tables."""
    op.create_table(
        "devices",
        sa.Column("id", sa.Text, primary_key=True),
        *(sa.Column(c, sa.Text) for c in ("module", "deployment_id", "model_ref")),
        sa.Column("first_seen", sa.Double, nullable=False),
        sa.Column("last_seen", sa.Double, nullable=False),
    )
    op.create_table(
        "telemetry",
        sa.Column("message_id", sa.Text, primary_key=True),
        sa.Column("source", sa.Text, nullable=False),
        *(
            sa.Column(c, sa.Text)
            for c in ("device_id", "deployment_id", "model_name", "model_version")
        ),
        sa.Column("seq", sa.BigInteger),
        sa.Column("produced", sa.Double),
        sa.Column("received", sa.Double, nullable=False),
        sa.Column("window_s", sa.Double),
        sa.Column("requests", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("errors", sa.BigInteger, nullable=False, server_default="0"),
        *(sa.Column(f"latency_{s}_ms", sa.Double) for s in ("avg", "p50", "p95", "p99")),
        sa.Column("body", sa.Text, nullable=False),
        sa.CheckConstraint(SOURCES, name="telemetry_source"),
    )
    op.create_index("telemetry_by_device", "telemetry", ["device_id", "received"])
    op.create_index("telemetry_by_deployment", "telemetry", ["deployment_id", "received"])
    op.create_index("telemetry_by_received", "telemetry", ["received"])


def downgrade() -> None:
    """Drop the collector's tables."""
    op.drop_table("telemetry")
    op.drop_table("devices")
