"""What a template may see: chosen customer fields, the brand, the customer's links, the facts.

Nothing else leaks in: no email address, phone number or free-form customer attributes.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy.engine import Row

from orchestrator.links import preferences_url, unsubscribe_url
from orchestrator.models import Customer, utcnow
from orchestrator.settings import get_settings
from orchestrator.surveys import rating_links
from orchestrator.templating.catalog import get_catalog
from orchestrator.templating.errors import RenderError

DEFAULT_BRAND_NAME = "Example Co"
CUSTOMER_FIELDS = ("id", "name", "tier", "customer_since", "locale", "timezone", "x_handle")


def _as_date(value: Any) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        raise RenderError(f"customer_since {str(value)[:40]!r} is not a date (YYYY-MM-DD)") from None


def full_years(since: date | None, today: date) -> int | None:
    if since is None:
        return None
    return today.year - since.year - ((today.month, today.day) < (since.month, since.day))


def customer_fields(customer: Customer | dict[str, Any] | None) -> dict[str, Any]:
    if customer is None:  # a public broadcast (social post) has no customer
        return {}
    if isinstance(customer, dict):
        raw = {key: customer.get(key) for key in CUSTOMER_FIELDS}
    elif isinstance(customer, Row):  # a database row: its mapping reads faster than its attributes
        raw = customer._mapping
    else:  # a Customer
        raw = {key: getattr(customer, key) for key in CUSTOMER_FIELDS}
    name = " ".join(str(raw["name"] or "").split())
    since = _as_date(raw["customer_since"])
    return {
        "id": raw["id"],
        "name": name,
        "first_name": name.split(" ", 1)[0] if name else "",
        "tier": raw["tier"] or "standard",
        "customer_since": since,
        "years_as_customer": full_years(since, utcnow().date()),
        "locale": raw["locale"] or get_settings().default_locale,
        "timezone": raw["timezone"] or "UTC",
        "x_handle": raw["x_handle"] or "",
    }


CARE_CONTACT_KEYS = ("support_phone", "support_email", "support_url")


def care_contact(configured: dict[str, Any]) -> str:
    """How a customer reaches a person (brand.yaml's support phone, email and URL, as given):
    what a HELP reply must carry. An error when brand.yaml gives none."""
    found = [str(configured[k]).strip() for k in CARE_CONTACT_KEYS if str(configured.get(k) or "").strip()]
    if not found:
        raise RenderError("brand.yaml gives no customer-care contact (brand.care_contact): set one of "
                          + ", ".join(CARE_CONTACT_KEYS))
    return " or ".join(found)


def brand() -> dict[str, Any]:
    configured = get_catalog().brand
    out = {**configured, "name": configured.get("name", DEFAULT_BRAND_NAME),
           "postal_address": get_settings().company_postal_address}
    try:
        out["care_contact"] = care_contact(configured)
    except RenderError:
        pass  # a template that needs it fails on the missing variable, naming it
    return out


def build_context(customer: Customer | dict[str, Any] | None, data: dict[str, Any], *, topic: str,
                  message_id: int | None = None, brand_info: dict[str, Any] | None = None) -> dict[str, Any]:
    """The variables a message template renders with. ``data`` holds the message's facts;
    ``brand_info`` saves rebuilding ``brand()`` for every message of a batch."""
    fields = customer_fields(customer)
    customer_id = fields.get("id")
    links = {} if customer_id is None else {
        "unsubscribe_url": unsubscribe_url(int(customer_id), topic, message_id=message_id),
        "preferences_url": preferences_url(int(customer_id)),
    }
    scale = (data or {}).get("survey_scale")
    if customer_id is not None and message_id is not None and scale:  # one-click survey answers
        links.update(rating_links(int(customer_id), message_id, str(scale)))
    return {"customer": fields, "brand": brand_info if brand_info is not None else brand(), "links": links,
            "data": dict(data or {}), "topic": topic, "message_id": message_id}
