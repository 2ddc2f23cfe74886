"""mentions: indexes for copy linking (reposts of a post, copies of a story)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 16:00:00
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_mentions_repost_of", "mentions", ["source", "repost_of"])
    op.create_index("ix_mentions_duplicate_of_id", "mentions", ["duplicate_of_id"])


def downgrade() -> None:
    op.drop_index("ix_mentions_duplicate_of_id", table_name="mentions")
    op.drop_index("ix_mentions_repost_of", table_name="mentions")
