"""suppression history: each address added to the suppression list and each one lifted

Revision ID: 0006_suppression_history
Revises: 0005_contact_points
Create Date: 2026-12-01

The addresses suppressed so far get their "added" event from their own row (reason, source, time),
so the history of every address on the list starts where the list does.
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0006_suppression_history'
down_revision = '0005_contact_points'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('suppression_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('address', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_suppression_event_address', 'suppression_event', ['channel', 'address', 'id'],
                    unique=False)
    op.execute("INSERT INTO suppression_event (channel, address, action, reason, source, created_at) "
               "SELECT channel, address, 'added', reason, source, created_at FROM suppression ORDER BY id")


def downgrade() -> None:
    op.drop_index('ix_suppression_event_address', table_name='suppression_event')
    op.drop_table('suppression_event')
