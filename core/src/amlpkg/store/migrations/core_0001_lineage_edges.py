"""Lineage edges: ``(src_kind, src_id) --relation--> (dst_kind, dst_id)``.

Revision ID: core_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "core_0001"
down_revision = None
branch_labels = ("core",)
depends_on = None


def upgrade() -> None:
    """Create the table every stage records its arrows in."""
    op.create_table(
        "lineage_edges",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("src_kind", sa.Text, nullable=False),
        sa.Column("src_id", sa.Text, nullable=False),
        sa.Column("dst_kind", sa.Text, nullable=False),
        sa.Column("dst_id", sa.Text, nullable=False),
        sa.Column("relation", sa.Text, nullable=False),
        sa.Column("created", sa.Double, nullable=False),
        sa.UniqueConstraint("src_kind", "src_id", "dst_kind", "dst_id", "relation"),
    )
    op.create_index("lineage_by_src", "lineage_edges", ["src_kind", "src_id"])
    op.create_index("lineage_by_dst", "lineage_edges", ["dst_kind", "dst_id"])


def downgrade() -> None:
    """Drop the table."""
    op.drop_table("lineage_edges")
