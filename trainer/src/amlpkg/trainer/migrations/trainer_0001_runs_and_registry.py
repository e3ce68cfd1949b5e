"""Experiments, runs with params, metrics, tags and artifacts; models, versions, tags, aliases.

Revision ID: trainer_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "trainer_0001"
down_revision = None
branch_labels = ("trainer",)
depends_on = ("core_0001",)

# 64-bit on PostgreSQL; SQLite's INTEGER PRIMARY KEY (a rowid alias) is already 64-bit.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
RUN_STATUSES = "status IN ('running', 'completed', 'failed', 'killed')"


def _run_child(name: str, *columns: sa.Column, pk: tuple[str, ...]) -> None:
    op.create_table(
        name,
        sa.Column("run_id", sa.Text, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        *columns,
        sa.PrimaryKeyConstraint(*pk),
    )


def upgrade() -> None:
    """Create the trainer's tables."""
    op.create_table(
        "experiments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        sa.Column("created", sa.Double, nullable=False),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("experiment_id", sa.Integer, sa.ForeignKey("experiments.id"), nullable=False),
        sa.Column("name", sa.Text),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("start_time", sa.Double, nullable=False),
        sa.Column("end_time", sa.Double),
        sa.Column("exit_code", sa.Integer),
        sa.Column("command", sa.Text),
        sa.Column("git_commit", sa.Text),
        sa.Column("git_dirty", sa.Integer),
        sa.Column("python_version", sa.Text),
        sa.Column("host", sa.Text),
        sa.Column("user", sa.Text),
        sa.CheckConstraint(RUN_STATUSES, name="runs_status"),
    )
    op.create_index("runs_by_experiment", "runs", ["experiment_id", "start_time"])
    _run_child(
        "params",
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        pk=("run_id", "key"),
    )
    op.create_table(
        "metrics",
        sa.Column("id", BIG_ID, primary_key=True),
        sa.Column("run_id", sa.Text, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("value", sa.Double, nullable=False),
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.Column("timestamp", sa.Double, nullable=False),
    )
    op.create_index("metrics_by_run", "metrics", ["run_id", "key", "step"])
    _run_child(
        "tags",
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        pk=("run_id", "key"),
    )
    _run_child(
        "artifacts",
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("sha256", sa.Text, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("created", sa.Double, nullable=False),
        pk=("run_id", "path"),
    )
    op.create_table(
        "models",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("created", sa.Double, nullable=False),
    )
    op.create_table(
        "model_versions",
        sa.Column("name", sa.Text, sa.ForeignKey("models.name"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("sha256", sa.Text, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("opset", sa.Integer),
        sa.Column("signature", sa.Text, nullable=False),
        sa.Column("run_id", sa.Text, sa.ForeignKey("runs.id")),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("created", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("name", "version"),
        sa.CheckConstraint("version >= 1", name="model_versions_version"),
    )
    version_fk = sa.ForeignKeyConstraint(
        ["name", "version"], ["model_versions.name", "model_versions.version"]
    )
    op.create_table(
        "model_tags",
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("name", "version", "key"),
        version_fk,
    )
    op.create_table(
        "aliases",
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("alias", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("name", "alias"),
        sa.ForeignKeyConstraint(
            ["name", "version"], ["model_versions.name", "model_versions.version"]
        ),
    )


def downgrade() -> None:
    """Drop the trainer's tables."""
    for table in ("aliases", "model_tags", "model_versions", "models", "artifacts", "tags",
                  "metrics", "params", "runs", "experiments"):  # fmt: skip
        op.drop_table(table)
