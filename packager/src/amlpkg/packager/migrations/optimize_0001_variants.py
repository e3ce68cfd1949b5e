"""Variants: optimized candidates of a model version, measured and judged.

Revision ID: optimize_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "optimize_0001"
down_revision = None
branch_labels = ("optimize",)
depends_on = ("trainer_0001",)


def upgrade() -> None:
    """Create the variants table."""
    op.create_table(
        "variants",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("parent_name", sa.Text, nullable=False),
        sa.Column("parent_version", sa.Integer, nullable=False),
        *(sa.Column(c, sa.Text, nullable=False) for c in ("kind", "target", "precision", "sha256")),
        sa.Column("size", sa.BigInteger, nullable=False),
        *(
            sa.Column(c, sa.Text, nullable=False)
            for c in ("providers", "recipe", "measurements", "accuracy")
        ),
        sa.Column("accepted", sa.Integer, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("chosen", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created", sa.Double, nullable=False),
        sa.CheckConstraint("accepted IN (0, 1)", name="variants_accepted"),
        sa.CheckConstraint("chosen IN (0, 1)", name="variants_chosen"),
        sa.ForeignKeyConstraint(
            ["parent_name", "parent_version"], ["model_versions.name", "model_versions.version"]
        ),
    )
    op.create_index(
        "variants_by_parent", "variants", ["parent_name", "parent_version", "target", "created"]
    )


def downgrade() -> None:
    """Drop the variants table."""
    op.drop_table("variants")
