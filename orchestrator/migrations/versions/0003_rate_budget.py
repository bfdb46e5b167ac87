"""rate budget: the shared send-rate slots of every lane

Revision ID: 0003_rate_budget
Revises: 0002_surveys_and_experiments
Create Date: 2026-11-30
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0003_rate_budget'
down_revision = '0002_surveys_and_experiments'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('rate_budget',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('next_free', sa.Float(), nullable=False),
    sa.Column('factor', sa.Float(), nullable=False),
    sa.Column('paused_until', sa.Float(), nullable=False),
    sa.Column('urgent_until', sa.Float(), nullable=False),
    sa.Column('adjusted_at', sa.Float(), nullable=False),
    sa.Column('rate_limited', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )


def downgrade() -> None:
    op.drop_table('rate_budget')
