"""digest posts: which brand's digest of which period is in Slack (shared by all daemons)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 16:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "digest_posts",
        sa.Column("period", sa.String(length=32), nullable=False),
        sa.Column("brand", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("channel", sa.String(length=64), nullable=True),
        sa.Column("ts", sa.String(length=64), nullable=True),
        sa.Column("file_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("period", "brand", name=op.f("pk_digest_posts")),
    )


def downgrade() -> None:
    op.drop_table("digest_posts")
