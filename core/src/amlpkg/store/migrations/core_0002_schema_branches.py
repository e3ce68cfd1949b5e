"""The applied head of every role's branch, for installs that lack some roles.

Alembic's own version table keeps only the newest revisions, leaving out those that
another one depends on; an install without that other role could not tell what of its
own roles is applied. ``schema_branches`` keeps each branch's head, written after every
upgrade (see :mod:`amlpkg.store.schema_upgrade`).

Revision ID: core_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "core_0002"
down_revision = "core_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the table of branch heads."""
    op.create_table(
        "schema_branches",
        sa.Column("branch", sa.Text, primary_key=True),
        sa.Column("revision", sa.Text, nullable=False),
    )


def downgrade() -> None:
    """Drop the table."""
    op.drop_table("schema_branches")
