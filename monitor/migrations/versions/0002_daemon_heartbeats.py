"""daemon heartbeats

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 13:23:38.027080
"""

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    
    op.create_table('daemon_heartbeats',
    sa.Column('owner', sa.String(length=128), nullable=False),
    sa.Column('roles', sa.String(length=64), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('owner', name=op.f('pk_daemon_heartbeats'))
    )
    


def downgrade() -> None:
    
    op.drop_table('daemon_heartbeats')
    
