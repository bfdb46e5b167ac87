"""incident affected: the attributes that narrow an incident's segment to the customers affected

Revision ID: 0007_incident_affected
Revises: 0006_suppression_history
Create Date: 2026-12-01

Kept with the incident (as its latest update gave them) so `orchestrator explain --incident` can
tell a customer who heard nothing why: not in the segment, or not among the affected.
"""
import sqlalchemy as sa
from alembic import op

revision = '0007_incident_affected'
down_revision = '0006_suppression_history'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('incident') as batch_op:
        batch_op.add_column(sa.Column('affected', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('incident') as batch_op:
        batch_op.drop_column('affected')
