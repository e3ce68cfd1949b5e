"""Output histograms in device telemetry, and device tags.

``telemetry.outputs``: the validated histogram of the window's output summaries
(JSON ``{"bin": count}``, at most :data:`amlpkg.collector.outputs.MAX_BINS` bins),
which the rollout gate's ``drift`` compares between cohort and control.
``devices.tags``: the device's tags (JSON object of strings), as IoT Hub twin tags
are: set by the service side, never by the device; rollout fleets select on them.

Revision ID: collector_0003
"""

import sqlalchemy as sa
from alembic import op

revision = "collector_0003"
down_revision = "collector_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the two columns."""
    op.add_column("telemetry", sa.Column("outputs", sa.Text))
    op.add_column("devices", sa.Column("tags", sa.Text))


def downgrade() -> None:
    """Drop the added columns."""
    op.drop_column("devices", "tags")
    op.drop_column("telemetry", "outputs")
