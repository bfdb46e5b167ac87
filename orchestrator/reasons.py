"""The reason vocabulary: every code the ledger stores in ``reason_codes``, its kind and its words.

A code is ``<name>`` or ``<name>:<argument>`` (``quiet_hours:sms``, ``permanent:blocked``,
``bypass:cap:daily``). Writers build codes with ``Reason.code``; readers ask ``kind_of`` and
``describe``. The codes are stored in existing databases: a code's spelling never changes here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

CHANNEL_WORDS = {"sms": "SMS", "email": "email", "social": "social", "phone": "phone"}


class Kind(Enum):
    """What a reason says about its message."""

    informational = "informational"  # how it goes: its route, a preference, a bypass
    schedule = "schedule"  # how it goes, and so why it waits: its own send time
    delay = "delay"  # why it waits: quiet hours, a full cap, a provider's "later"
    suppression = "suppression"  # why it is not sent at all: consent, no address, a cap, ...
    failure = "failure"  # why sending it failed or is in doubt


HOW_IT_GOES = frozenset({Kind.informational, Kind.schedule})
WHY_IT_WAITS = frozenset({Kind.schedule, Kind.delay})


@dataclass(frozen=True)
class Reason:
    name: str
    kind: Kind
    words: Callable[[str], str]  # the argument -> what the code means, for people

    def code(self, argument: str | None = None) -> str:
        return self.name if argument is None else f"{self.name}:{argument}"


def _channel(arg: str) -> str:
    return CHANNEL_WORDS.get(arg, arg)


def _bypass_words(arg: str) -> str:
    if arg == "quiet_hours":
        return "went out inside quiet hours (the topic may)"
    if arg.startswith("cap:"):
        return f"went out although frequency cap {arg[4:]} is full (the topic may)"
    return f"required {arg} notice: reaches customers who asked not to be contacted"


# How a message goes.
ROUTE = Reason("route", Kind.informational, lambda a: f"goes out by {_channel(a)}")
PREFERENCE = Reason("preference", Kind.informational, lambda a: f"the customer prefers {_channel(a)}")
BYPASS = Reason("bypass", Kind.informational, _bypass_words)
HIGH_TOUCH = Reason("high_touch", Kind.informational, lambda a: f"an extra contact by high-touch rule {a}")
FALLBACK = Reason("fallback", Kind.informational, lambda a: f"fell back to another channel ({a})")
ESCALATION = Reason("escalation", Kind.informational,
                    lambda a: f"escalated: a phone task was not done in time ({a.replace('_', ' ')})")
SEND_TIME = Reason("send_time", Kind.schedule, lambda a: f"scheduled for {a} in the customer's own time zone")
# Why it waits.
QUIET_HOURS = Reason("quiet_hours", Kind.delay,
                     lambda a: "personal quiet hours (waits until they end, local time)" if a == "personal"
                     else f"quiet hours for {_channel(a)} (waits until they end, local time)")
DEFER = Reason("defer", Kind.delay, lambda a: f"frequency cap {a} is full: waits for the next free slot")
PACE = Reason("pace", Kind.delay, lambda a: "waits while urgent messages go first" if a == "urgent"
              else f"waits for the send rate {a} (goes at the time shown)")
RETRY = Reason("retry", Kind.delay, lambda a: "the provider asked us to try again later")
TRANSIENT = Reason("transient", Kind.delay, lambda a: "the provider asked us to try again later")
NOT_SENT = Reason("not_sent", Kind.delay, lambda a: "went back to the queue unsent")
# Why it is not sent at all.
CAP = Reason("cap", Kind.suppression, lambda a: f"frequency cap {a} reached")
CONSENT = Reason("consent", Kind.suppression,
                 lambda a: "no opt-in on record for this channel (it needs one)" if a == "no_opt_in"
                 else "opted out of this topic or channel")
DO_NOT_CONTACT = Reason("do_not_contact", Kind.suppression, lambda a: "asked not to be contacted")
NO_ADDRESS = Reason("no_address", Kind.suppression, lambda a: f"no {_channel(a)} address on file")
SUPPRESSED = Reason("suppressed", Kind.suppression, lambda a: f"address suppressed ({a})")
SUPERSEDED = Reason("superseded", Kind.suppression, lambda a: f"cancelled: the incident was {a} first")
CANCELLED = Reason("cancelled", Kind.suppression, lambda a: f"cancelled: an operator stopped the {a}")
ERASED = Reason("erased", Kind.suppression, lambda a: "cancelled: the customer's personal data was erased")
HOLDOUT = Reason("holdout", Kind.suppression,
                 lambda a: f"in the holdout group of campaign {a} (kept from it to measure its effect)")
DEADLINE = Reason("deadline", Kind.suppression,
                  lambda a: f"could not go out on {_channel(a)} before its deadline")
UNENGAGED = Reason("unengaged", Kind.suppression,
                   lambda a: f"{_channel(a)} messages lately never opened, clicked or answered: this topic "
                             "stops there (the policy's sunset)")
# Why sending failed, or is in doubt.
PERMANENT = Reason("permanent", Kind.failure,
                   lambda a: f"the provider refused it for good ({a.replace('_', ' ')})")
GAVE_UP = Reason("gave_up", Kind.failure, lambda a: f"gave up ({a})")
EXPIRED = Reason("expired", Kind.failure, lambda a: "its deadline passed")
RENDER_ERROR = Reason("render_error", Kind.failure, lambda a: "the template could not be rendered")
RECONCILE = Reason("reconcile", Kind.failure,
                   lambda a: "outcome unknown: check the provider before sending again")

VOCABULARY: dict[str, Reason] = {r.name: r for r in (
    ROUTE, PREFERENCE, BYPASS, HIGH_TOUCH, FALLBACK, ESCALATION, SEND_TIME,
    QUIET_HOURS, DEFER, PACE, RETRY, TRANSIENT, NOT_SENT,
    CAP, CONSENT, DO_NOT_CONTACT, NO_ADDRESS, SUPPRESSED, SUPERSEDED, CANCELLED, ERASED, HOLDOUT, DEADLINE,
    UNENGAGED, PERMANENT, GAVE_UP, EXPIRED, RENDER_ERROR, RECONCILE,
)}

# Codes written by more than one module.
OPTED_OUT = CONSENT.code("opted_out")
NO_OPT_IN = CONSENT.code("no_opt_in")  # a channel that needs an opt-in (WhatsApp) has none on record


def fallback_code(failed: str, chosen: str) -> str:
    """``fallback:sms->email``: the message fell back from ``failed`` to ``chosen``."""
    return FALLBACK.code(f"{failed}->{chosen}")


def reason_of(code: str) -> Reason | None:
    """The vocabulary entry of a code (``None`` for a code it does not know)."""
    return VOCABULARY.get(code.partition(":")[0])


def kind_of(code: str) -> Kind | None:
    reason = reason_of(code)
    return reason.kind if reason is not None else None


def has_kind(code: str, kinds: frozenset[Kind]) -> bool:
    return kind_of(code) in kinds


def says_why(code: str, status: str) -> bool:
    """Whether ``code`` says why a message stands at ``status``: why a deferred one waits, why any
    other was not sent. Route, preference and bypass codes say how a message goes, never why."""
    if status == "deferred":
        return has_kind(code, WHY_IT_WAITS)
    return not has_kind(code, HOW_IT_GOES)


def describe(code: str) -> str:
    """A code in words: ``quiet_hours:sms`` -> "quiet hours for SMS (...)"; unknown codes unchanged."""
    reason = reason_of(code)
    return reason.words(code.partition(":")[2]) if reason is not None else code
