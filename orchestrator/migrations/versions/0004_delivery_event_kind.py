"""delivery events: a provider-neutral kind, indexed with the message, for reports

Revision ID: 0004_delivery_event_kind
Revises: 0003_rate_budget
Create Date: 2026-11-30
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0004_delivery_event_kind'
down_revision = '0003_rate_budget'
branch_labels = None
depends_on = None

# Events stored before this revision get their kind from the provider's word (and, for
# SendGrid opens, the sg_machine_open flag in the stored payload).
_BACKFILL = """
UPDATE delivery_event SET kind = CASE
  WHEN provider = 'sendgrid' AND event_type = 'open'
       AND CAST(payload AS TEXT) LIKE '%"sg_machine_open": true%' THEN 'machine_open'
  WHEN provider = 'sendgrid' AND event_type = 'processed' THEN 'sent'
  WHEN provider = 'sendgrid' AND event_type IN ('deferred', 'delivered', 'open', 'click', 'dropped')
       THEN event_type
  WHEN provider = 'sendgrid' AND event_type = 'bounce'
       AND CAST(payload AS TEXT) LIKE '%"type": "blocked"%' THEN 'blocked'
  WHEN provider = 'sendgrid' AND event_type = 'bounce' THEN 'bounce'
  WHEN provider = 'sendgrid' AND event_type = 'spamreport' THEN 'spam_report'
  WHEN provider = 'sendgrid' AND event_type IN ('unsubscribe', 'group_unsubscribe') THEN 'unsubscribe'
  WHEN provider = 'twilio' AND event_type LIKE 'inbound%' THEN 'inbound'
  WHEN provider = 'twilio' AND event_type IN ('accepted', 'scheduled', 'queued', 'sending', 'sent')
       THEN 'sent'
  WHEN provider = 'twilio' AND event_type IN ('delivered', 'read') THEN 'delivered'
  WHEN provider = 'twilio' AND event_type IN ('undelivered', 'failed', 'canceled') THEN 'failed'
  ELSE 'other' END
"""


def upgrade() -> None:
    with op.batch_alter_table('delivery_event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))
        batch_op.create_index('ix_delivery_event_message_kind', ['message_id', 'kind'], unique=False)
    op.execute(_BACKFILL)


def downgrade() -> None:
    with op.batch_alter_table('delivery_event', schema=None) as batch_op:
        batch_op.drop_index('ix_delivery_event_message_kind')
        batch_op.drop_column('kind')
