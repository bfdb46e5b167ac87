"""survey answers, campaign experiments and conversion events

Revision ID: 0002_surveys_and_experiments
Revises: 0001
Create Date: 2026-11-30
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0002_surveys_and_experiments'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no table rebuild on SQLite): the ledger may be large.
    op.add_column('message', sa.Column('variant', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))
    op.add_column('campaign', sa.Column('variants', sa.JSON(), nullable=False, server_default='[]'))
    op.add_column('campaign', sa.Column('holdout_percent', sa.Float(), nullable=False, server_default='0'))
    op.add_column('campaign', sa.Column('goal_event', sqlmodel.sql.sqltypes.AutoString(length=64),
                                        nullable=True))
    op.add_column('campaign', sa.Column('attribution_days', sa.Integer(), nullable=False, server_default='7'))
    with op.batch_alter_table('customer_feedback', schema=None) as batch_op:
        batch_op.add_column(sa.Column('message_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('score', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('scale', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True))
        batch_op.create_foreign_key('fk_customer_feedback_message_id', 'message', ['message_id'], ['id'])
        batch_op.create_index(batch_op.f('ix_customer_feedback_message_id'), ['message_id'], unique=False)
    op.create_table('conversion_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('occurred_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('customer_id', 'name', 'occurred_at', name='uq_conversion_event')
    )
    with op.batch_alter_table('conversion_event', schema=None) as batch_op:
        batch_op.create_index('ix_conversion_lookup', ['name', 'occurred_at'], unique=False)


def downgrade() -> None:
    op.drop_table('conversion_event')
    with op.batch_alter_table('customer_feedback', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_customer_feedback_message_id'))
        batch_op.drop_constraint('fk_customer_feedback_message_id', type_='foreignkey')
        batch_op.drop_column('scale')
        batch_op.drop_column('score')
        batch_op.drop_column('message_id')
    for column in ('attribution_days', 'goal_event', 'holdout_percent', 'variants'):
        op.drop_column('campaign', column)
    op.drop_column('message', 'variant')
