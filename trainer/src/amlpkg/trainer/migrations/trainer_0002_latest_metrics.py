"""Each run's final value of each metric, kept on write, for search, sort and run pages.

A metric's final value is the one at its highest step (the latest logged on ties). It
used to be found per run and key in ``metrics`` at read time; a page of runs sorted by a
metric paid that for every run of the experiment. ``latest_metrics`` holds it instead,
updated in the transaction that logs the values; the upgrade fills it from the history.

Revision ID: trainer_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "trainer_0002"
down_revision = "trainer_0001"
branch_labels = None
depends_on = None

# One pass over the history: window functions exist in SQLite 3.25+ and PostgreSQL. Rows
# already there (kept on write) stay, so bulk loaders may run it again after a load.
BACKFILL = (
    "INSERT INTO latest_metrics (run_id, key, value, step, timestamp)"
    " SELECT run_id, key, value, step, timestamp FROM (SELECT run_id, key, value, step,"
    " timestamp, ROW_NUMBER() OVER (PARTITION BY run_id, key"
    " ORDER BY step DESC, timestamp DESC, id DESC) AS n FROM metrics) ranked WHERE n = 1"
    " ON CONFLICT (run_id, key) DO NOTHING"
)


def upgrade() -> None:
    """Create ``latest_metrics`` and fill it from ``metrics``."""
    op.create_table(
        "latest_metrics",
        sa.Column("run_id", sa.Text, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("value", sa.Double, nullable=False),
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.Column("timestamp", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "key"),
    )
    op.create_index("latest_metrics_by_key", "latest_metrics", ["key", "value"])
    op.execute(BACKFILL)


def downgrade() -> None:
    """Drop ``latest_metrics`` (the history in ``metrics`` stays)."""
    op.drop_table("latest_metrics")
