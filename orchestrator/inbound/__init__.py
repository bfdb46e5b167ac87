"""What comes back from providers and customers: delivery events (``delivery_events``) and
inbound messages (``sms``). Each provider's parsing and signature check live beside its adapter
in ``channels/<provider>/webhook.py``; this package sees only the neutral types of
``channels.events``. Unsubscribe and the preference centre: ``orchestrator.audience.preferences``.
"""
