"""Deployments: one row per revision of a named deployment on a target.

Revision ID: deploy_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "deploy_0001"
down_revision = None
branch_labels = ("deploy",)
depends_on = ("core_0001",)


def upgrade() -> None:
    """Create the deployments table."""
    op.create_table(
        "deployments",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("target", sa.Text, nullable=False),
        *(
            sa.Column(c, sa.Text)
            for c in ("model", "package", "image", "image_digest", "endpoint_http", "endpoint_grpc")
        ),
        *(sa.Column(c, sa.Text, nullable=False) for c in ("config", "state", "status")),
        sa.Column("reason", sa.Text),
        sa.Column("created", sa.Double, nullable=False),
        sa.Column("updated", sa.Double, nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.CheckConstraint("revision >= 1", name="deployments_revision"),
        sa.CheckConstraint(
            "status IN ('pending', 'ready', 'failed', 'stopped')", name="deployments_status"
        ),
        sa.UniqueConstraint("name", "revision"),
    )
    op.create_index("deployments_by_name", "deployments", ["name", "revision"])


def downgrade() -> None:
    """Drop the deployments table."""
    op.drop_table("deployments")
