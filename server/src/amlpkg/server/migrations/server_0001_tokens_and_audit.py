"""API tokens (hashed at rest) and the audit log of every change.

Revision ID: server_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "server_0001"
down_revision = None
branch_labels = ("server",)
depends_on = ("core_0001",)

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the tokens and audit tables."""
    op.create_table(
        "server_tokens",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("token_sha256", sa.Text, nullable=False, unique=True),
        sa.Column("created", sa.Double, nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("expires", sa.Double),
        sa.Column("revoked", sa.Double),
        sa.CheckConstraint("role IN ('reader', 'contributor', 'owner')", name="server_tokens_role"),
    )
    op.create_table(
        "server_audit",
        sa.Column("id", BIG_ID, primary_key=True),
        sa.Column("time", sa.Double, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("role", sa.Text),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("target", sa.Text),
        sa.Column("detail", sa.Text, nullable=False, server_default="{}"),
    )
    op.create_index("server_audit_by_time", "server_audit", ["time"])


def downgrade() -> None:
    """Drop the server's tables."""
    op.drop_table("server_audit")
    op.drop_table("server_tokens")
