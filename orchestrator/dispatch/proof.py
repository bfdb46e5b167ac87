"""A proof: one rendered message sent to a person checking it (marketing, legal, the copywriter) on
the channel's real provider, to see it in a real inbox or phone before customers do.

A proof is nobody's message in the policy's sense: it goes outside the ledger, caps and quiet
hours, to an address the operator types, marked as a test (an email's subject starts with
``[TEST]``). Its unsubscribe and preference links are signed for a customer id nobody has, so a
click in the proof changes no customer's choices (``proof_customer``). It never goes to a
suppressed address, and calls are not proofed (a call is a task for an agent: the preview shows
its script). What the provider answered is logged with its id.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from channels.base import ChannelAdapter, OutboundMessage, SendResult
from orchestrator.consent import suppressed_addresses
from orchestrator.db import session_scope
from orchestrator.privacy import mask_address
from orchestrator.templating.context import CUSTOMER_FIELDS
from orchestrator.templating.render import Rendered

if TYPE_CHECKING:
    from orchestrator.models import Customer

log = logging.getLogger(__name__)

PROOF_SUBJECT = "[TEST] "
PROOF_MESSAGE_ID = 0  # no ledger row: provider callbacks about it find no message and change nothing
PROOF_CUSTOMER_ID = 0  # no customer has it (ids start at 1): the proof's links lead to nobody's choices


def proof_customer(customer: Customer | dict[str, Any] | None) -> dict[str, Any]:
    """The customer a proof is rendered for: their fields (name, tier...), their links signed for nobody."""
    def field(key: str) -> Any:
        return customer.get(key) if isinstance(customer, dict) else getattr(customer, key, None)

    return {**{key: field(key) for key in CUSTOMER_FIELDS}, "id": PROOF_CUSTOMER_ID}


class ProofRefused(ValueError):
    pass


def send_proof(rendered: Rendered, to: str, *, topic: str, adapter: ChannelAdapter | None = None
               ) -> SendResult:
    """Sends ``rendered`` to ``to`` (in the channel's stored form) through ``adapter``, by default the
    channel's configured one (created and closed here). Raises ``ProofRefused`` before any provider call
    where a proof may not go."""
    channel = rendered.channel
    if channel == "phone":
        raise ProofRefused("a call is a task for an agent, not a message: the preview shows its script")
    with session_scope() as session:
        if suppressed_addresses(session, channel, [to]):
            raise ProofRefused(f"the address is on the {channel} suppression list (orchestrator suppressions "
                               f"show {channel} ...)")
    subject = PROOF_SUBJECT + rendered.subject if rendered.subject is not None else None
    proof = OutboundMessage(message_id=PROOF_MESSAGE_ID, channel=channel, to=to, body=rendered.text,
                            subject=subject, html=rendered.html, topic=topic, meta={"proof": True},
                            categories=["proof", rendered.message], template=rendered.message,
                            locale=rendered.locale)
    owned = adapter is None
    if adapter is None:
        from channels.registry import adapter_for  # imported late: it loads provider SDKs
        from orchestrator.settings import get_settings

        adapter = adapter_for(channel, get_settings())
    try:
        [result] = adapter.send([proof])
    finally:
        if owned:
            adapter.close()
    log.info("proof of %s on %s to %s: %s by %s%s", rendered.message, channel, mask_address(channel, to),
             result.status.value, result.provider,
             f" as {result.provider_message_id}" if result.provider_message_id else "")
    return result
