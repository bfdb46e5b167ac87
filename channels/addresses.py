"""The address kinds of the built-in channels, for adapters of other channels to reuse.

Each normaliser takes the raw value (stripped, never blank) and the default region for
national phone numbers, and returns the stored form or raises ``ValueError`` with a reason a
person can act on that never repeats the address.
"""

from __future__ import annotations

from functools import lru_cache

from channels.base import AddressKind

# The validation libraries load on first use: together about 0.1 s that every command would pay,
# `orchestrator outage notify` handing a notice to the service among them, though few validate.


def normalise_email(value: str, _region: str = "") -> str:
    from email_validator import EmailNotValidError, validate_email

    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid email address: {exc}") from None


@lru_cache(maxsize=1)
def phone_regions() -> frozenset[str]:
    import phonenumbers

    return frozenset(phonenumbers.SUPPORTED_REGIONS)


def normalise_phone(value: str, region: str) -> str:
    """E.164 (``+14155550123``). Numbers without ``+`` are read in ``region``."""
    import phonenumbers

    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        raise ValueError("not a phone number") from None
    # Valid in the calling code's main region (US for +1) is valid; that check is cheap,
    # the general one tries each region sharing the code (some 25 for +1).
    main_region = phonenumbers.region_code_for_country_code(number.country_code or 0)
    if not (
        phonenumbers.is_valid_number_for_region(number, main_region) or phonenumbers.is_valid_number(number)
    ):
        raise ValueError(f"not a valid phone number (read with default region {region})")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def parse_x_user_id(value: str, _region: str = "") -> str:
    if not value.isdigit() or len(value) > 32:
        raise ValueError("an X user id is a number of at most 32 digits")
    return value


def mask_email(email: str | None) -> str:
    if not email or "@" not in email:
        return "" if not email else "***"
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain[:1]}***"


def mask_phone(phone: str | None) -> str:
    if not phone:
        return ""
    digits = [c for c in phone if c.isdigit()]
    return "+***" + "".join(digits[-2:]) if len(digits) > 2 else "***"


EMAIL = AddressKind("email", normalise_email, mask_email, "an email address")
PHONE = AddressKind("phone", normalise_phone, mask_phone, "a phone number (stored as E.164)")
X_USER = AddressKind("x_user_id", parse_x_user_id, lambda value: value, "a numeric X user id")
