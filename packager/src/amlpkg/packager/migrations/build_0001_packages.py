"""Packages: images, folders, tarballs and Triton repositories built from a model.

Revision ID: build_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "build_0001"
down_revision = None
branch_labels = ("build",)
depends_on = ("trainer_0001",)


def upgrade() -> None:
    """Create the packages table."""
    op.create_table(
        "packages",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("model_name", sa.Text, nullable=False),
        sa.Column("model_version", sa.Integer, nullable=False),
        sa.Column("variant_id", sa.Text),
        *(sa.Column(c, sa.Text, nullable=False) for c in ("flavor", "platform", "format")),
        *(sa.Column(c, sa.Text) for c in ("image_ref", "image_id", "repo_digest", "path")),
        sa.Column("size_bytes", sa.BigInteger),
        sa.Column("labels", sa.Text, nullable=False, server_default="{}"),
        sa.Column("build_seconds", sa.Double),
        sa.Column("created", sa.Double, nullable=False),
        sa.CheckConstraint("format IN ('image', 'dir', 'tar', 'triton')", name="packages_format"),
        sa.ForeignKeyConstraint(
            ["model_name", "model_version"], ["model_versions.name", "model_versions.version"]
        ),
    )
    op.create_index("packages_by_model", "packages", ["model_name", "model_version", "created"])


def downgrade() -> None:
    """Drop the packages table."""
    op.drop_table("packages")
