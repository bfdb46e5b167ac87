"""contact points: addresses on channels that have no column on customer

Revision ID: 0005_contact_points
Revises: 0004_delivery_event_kind
Create Date: 2026-11-30

Until now a plug-in channel read its address from ``customer.attributes["<channel>_address"]``.
Those addresses move into ``contact_point`` (source ``migration``), for every channel an
installed adapter declares; attributes of channels not installed stay where they are.
Email, phone and X user id stay on ``customer``: they are who the customer is. The downgrade
moves contact points back into attributes, so no address is lost either way.
"""
import json

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0005_contact_points'
down_revision = '0004_delivery_event_kind'
branch_labels = None
depends_on = None

PROFILE_KINDS = ('email', 'phone', 'x_user_id')

customer = sa.table('customer', sa.column('id', sa.Integer), sa.column('attributes', sa.JSON))
contact_point = sa.table(
    'contact_point', sa.column('customer_id', sa.Integer), sa.column('channel', sa.String),
    sa.column('address', sa.String), sa.column('verified', sa.Boolean), sa.column('source', sa.String),
    sa.column('created_at', sqlmodel.sql.sqltypes.UTCDateTime()),
    sa.column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime()),
)


def _point_channels() -> list[str]:
    from channels.channel_set import installed_channels

    return [name for name, spec in installed_channels().items() if spec.address.name not in PROFILE_KINDS]


def _attributes(value):
    return json.loads(value) if isinstance(value, str) else dict(value or {})


def upgrade() -> None:
    op.create_table('contact_point',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('address', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
    sa.Column('verified', sa.Boolean(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('last_inbound_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('customer_id', 'channel', name='uq_contact_point_channel')
    )
    with op.batch_alter_table('contact_point', schema=None) as batch_op:
        batch_op.create_index('ix_contact_point_address', ['channel', 'address'], unique=False)

    keys = {f'{channel}_address': channel for channel in _point_channels()}
    if not keys:
        return
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    conn = op.get_bind()
    for cid, raw in conn.execute(sa.select(customer.c.id, customer.c.attributes)).all():
        attributes = _attributes(raw)
        moved = {keys[k]: str(v) for k, v in attributes.items() if k in keys and v not in (None, '')}
        if not moved:
            continue
        conn.execute(contact_point.insert(), [
            {'customer_id': cid, 'channel': ch, 'address': address, 'verified': False, 'source': 'migration',
             'created_at': now, 'updated_at': now}
            for ch, address in moved.items()
        ])
        rest = {k: v for k, v in attributes.items() if k not in keys}
        conn.execute(customer.update().where(customer.c.id == cid).values(attributes=rest))


def downgrade() -> None:
    conn = op.get_bind()
    points: dict[int, dict[str, str]] = {}
    for cid, channel, address in conn.execute(
        sa.select(contact_point.c.customer_id, contact_point.c.channel, contact_point.c.address)
    ).all():
        points.setdefault(cid, {})[f'{channel}_address'] = address
    for cid, raw in conn.execute(sa.select(customer.c.id, customer.c.attributes)).all():
        if cid in points:
            attributes = {**_attributes(raw), **points[cid]}
            conn.execute(customer.update().where(customer.c.id == cid).values(attributes=attributes))
    with op.batch_alter_table('contact_point', schema=None) as batch_op:
        batch_op.drop_index('ix_contact_point_address')
    op.drop_table('contact_point')
