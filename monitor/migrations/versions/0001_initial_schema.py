"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-22 12:56:57.236374
"""

from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    
    op.create_table('alert_groups',
    sa.Column('group_key', sa.String(length=255), nullable=False),
    sa.Column('first_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_notified_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('thread_ts', sa.String(length=64), nullable=True),
    sa.Column('thread_channel', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('group_key', name=op.f('pk_alert_groups'))
    )
    op.create_table('mentions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('external_id', sa.String(length=255), nullable=False),
    sa.Column('source_name', sa.String(length=128), nullable=True),
    sa.Column('url', sa.Text(), nullable=True),
    sa.Column('author_handle', sa.String(length=255), nullable=True),
    sa.Column('author_name', sa.String(length=255), nullable=True),
    sa.Column('author_id', sa.String(length=255), nullable=True),
    sa.Column('author_followers', sa.BigInteger(), nullable=True),
    sa.Column('title', sa.Text(), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('language', sa.String(length=16), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ingested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('rating', sa.Float(), nullable=True),
    sa.Column('rating_max', sa.Float(), nullable=True),
    sa.Column('parent_id', sa.String(length=255), nullable=True),
    sa.Column('thread_id', sa.String(length=255), nullable=True),
    sa.Column('in_reply_to', sa.String(length=255), nullable=True),
    sa.Column('mentioned_handles', sa.JSON(), nullable=False),
    sa.Column('repost_of', sa.String(length=255), nullable=True),
    sa.Column('duplicate_of_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('content_hash', sa.String(length=40), nullable=False),
    sa.Column('raw', sa.JSON(), nullable=False),
    sa.Column('classify_state', sa.String(length=16), nullable=False),
    sa.Column('classify_attempts', sa.Integer(), nullable=False),
    sa.Column('classify_error', sa.Text(), nullable=True),
    sa.Column('next_classify_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('rules_done', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['duplicate_of_id'], ['mentions.id'], name=op.f('fk_mentions_duplicate_of_id_mentions'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mentions')),
    sa.UniqueConstraint('source', 'external_id', name='uq_mentions_source_external_id')
    )
    with op.batch_alter_table('mentions', schema=None) as batch_op:
        batch_op.create_index('ix_mentions_classify_queue', ['classify_state', 'next_classify_at'], unique=False)
        batch_op.create_index('ix_mentions_content_hash', ['content_hash'], unique=False)
        batch_op.create_index('ix_mentions_created_at', ['created_at'], unique=False)

    op.create_table('silences',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('matchers', sa.JSON(), nullable=False),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('created_by', sa.String(length=128), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_silences'))
    )
    op.create_table('source_cursors',
    sa.Column('source_name', sa.String(length=128), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('source_name', 'key', name=op.f('pk_source_cursors'))
    )
    op.create_table('source_health',
    sa.Column('source_name', sa.String(length=128), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('last_poll_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_success_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('consecutive_failures', sa.Integer(), nullable=False),
    sa.Column('disabled_reason', sa.Text(), nullable=True),
    sa.Column('next_poll_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('polls_total', sa.BigInteger(), nullable=False),
    sa.Column('errors_total', sa.BigInteger(), nullable=False),
    sa.Column('mentions_total', sa.BigInteger(), nullable=False),
    sa.Column('skipped_total', sa.BigInteger(), nullable=False),
    sa.Column('lease_owner', sa.String(length=128), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('source_name', name=op.f('pk_source_health'))
    )
    op.create_table('spike_incidents',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('brand', sa.String(length=128), nullable=False),
    sa.Column('metric', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('peak_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('peak_count', sa.Float(), nullable=False),
    sa.Column('last_count', sa.Float(), nullable=False),
    sa.Column('expected', sa.Float(), nullable=False),
    sa.Column('level', sa.Integer(), nullable=False),
    sa.Column('updates', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_spike_incidents'))
    )
    with op.batch_alter_table('spike_incidents', schema=None) as batch_op:
        batch_op.create_index('ix_spike_incidents_brand_status', ['brand', 'status'], unique=False)

    op.create_table('spike_progress',
    sa.Column('brand', sa.String(length=128), nullable=False),
    sa.Column('metric', sa.String(length=16), nullable=False),
    sa.Column('last_bucket', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('brand', 'metric', name=op.f('pk_spike_progress'))
    )
    op.create_table('alerts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('brand', sa.String(length=128), nullable=True),
    sa.Column('source', sa.String(length=32), nullable=True),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('channel', sa.String(length=128), nullable=False),
    sa.Column('group_key', sa.String(length=255), nullable=False),
    sa.Column('labels', sa.JSON(), nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('mention_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('incident_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('event', sa.String(length=16), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('status_reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('sending_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sending_by', sa.String(length=128), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('receiver', sa.String(length=32), nullable=True),
    sa.Column('message_ts', sa.String(length=64), nullable=True),
    sa.Column('message_channel', sa.String(length=64), nullable=True),
    sa.Column('claimed_by', sa.String(length=128), nullable=True),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('handled_by', sa.String(length=128), nullable=True),
    sa.Column('handled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('dismissed_by', sa.String(length=128), nullable=True),
    sa.Column('dismissed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['incident_id'], ['spike_incidents.id'], name=op.f('fk_alerts_incident_id_spike_incidents'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['mention_id'], ['mentions.id'], name=op.f('fk_alerts_mention_id_mentions'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alerts')),
    sa.UniqueConstraint('key', name='uq_alerts_key')
    )
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.create_index('ix_alerts_brand_created', ['brand', 'created_at'], unique=False)
        batch_op.create_index('ix_alerts_status_next', ['status', 'next_attempt_at'], unique=False)

    op.create_table('mention_brands',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('mention_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('brand', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tagged', sa.Boolean(), nullable=False),
    sa.Column('from_brand', sa.Boolean(), nullable=False),
    sa.Column('competitor', sa.Boolean(), nullable=False),
    sa.Column('terms', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['mention_id'], ['mentions.id'], name=op.f('fk_mention_brands_mention_id_mentions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mention_brands')),
    sa.UniqueConstraint('mention_id', 'brand', name='uq_mention_brands_mention_id_brand')
    )
    with op.batch_alter_table('mention_brands', schema=None) as batch_op:
        batch_op.create_index('ix_mention_brands_brand_created', ['brand', 'created_at'], unique=False)

    op.create_table('scores',
    sa.Column('mention_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('sentiment', sa.String(length=16), nullable=False),
    sa.Column('p_negative', sa.Float(), nullable=False),
    sa.Column('p_neutral', sa.Float(), nullable=False),
    sa.Column('p_positive', sa.Float(), nullable=False),
    sa.Column('complaint', sa.Float(), nullable=False),
    sa.Column('severity', sa.Integer(), nullable=True),
    sa.Column('language', sa.String(length=16), nullable=True),
    sa.Column('model', sa.String(length=255), nullable=False),
    sa.Column('scored_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['mention_id'], ['mentions.id'], name=op.f('fk_scores_mention_id_mentions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('mention_id', name=op.f('pk_scores'))
    )
    op.create_table('feedback',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('alert_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('mention_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('value', sa.String(length=64), nullable=True),
    sa.Column('user', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['alert_id'], ['alerts.id'], name=op.f('fk_feedback_alert_id_alerts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['mention_id'], ['mentions.id'], name=op.f('fk_feedback_mention_id_mentions'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_feedback'))
    )
    with op.batch_alter_table('feedback', schema=None) as batch_op:
        batch_op.create_index('ix_feedback_mention', ['mention_id'], unique=False)

    


def downgrade() -> None:
    
    with op.batch_alter_table('feedback', schema=None) as batch_op:
        batch_op.drop_index('ix_feedback_mention')

    op.drop_table('feedback')
    op.drop_table('scores')
    with op.batch_alter_table('mention_brands', schema=None) as batch_op:
        batch_op.drop_index('ix_mention_brands_brand_created')

    op.drop_table('mention_brands')
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_index('ix_alerts_status_next')
        batch_op.drop_index('ix_alerts_brand_created')

    op.drop_table('alerts')
    op.drop_table('spike_progress')
    with op.batch_alter_table('spike_incidents', schema=None) as batch_op:
        batch_op.drop_index('ix_spike_incidents_brand_status')

    op.drop_table('spike_incidents')
    op.drop_table('source_health')
    op.drop_table('source_cursors')
    op.drop_table('silences')
    with op.batch_alter_table('mentions', schema=None) as batch_op:
        batch_op.drop_index('ix_mentions_created_at')
        batch_op.drop_index('ix_mentions_content_hash')
        batch_op.drop_index('ix_mentions_classify_queue')

    op.drop_table('mentions')
    op.drop_table('alert_groups')
    
