"""Fake SendGrid v3 Mail Send API: ``POST /v3/mail/send``."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from tests.support.fakes.base import FakeProvider, Fault, RecordedRequest, Reply, json_body

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _errors(*items: tuple[str | None, str]) -> dict[str, Any]:
    return {"errors": [{"field": f, "message": m, "help": None} for f, m in items]}


def _recipient(data: dict[str, Any], personalization: Any) -> tuple[str | None, str | None]:
    """(our message id, the first address) of one personalization."""
    p = personalization if isinstance(personalization, dict) else {}
    to = p.get("to") or [{}]
    address = to[0].get("email") if isinstance(to[0], dict) else None
    return {**(data.get("custom_args") or {}), **(p.get("custom_args") or {})}.get("message_id"), address


class FakeSendGrid(FakeProvider):
    name = "sendgrid"

    def __init__(self, api_key: str = "SG.test-key", **kwargs: Any):
        super().__init__(**kwargs)
        self.api_key = api_key
        self.rate_limit = 600  # reported in X-RateLimit-Limit
        self.reset_in = 2  # seconds until the window resets, in 429 answers

    def parse(self, method: str, path: str, headers: dict[str, str], body: bytes):
        data = json_body(body)
        message_id = address = None
        if isinstance(data, dict):
            message_id, address = _recipient(data, (data.get("personalizations") or [{}])[0])
        return data, message_id, address

    def recipients(self, data: Any) -> list[tuple[str | None, str | None]] | None:
        personalizations = data.get("personalizations") if isinstance(data, dict) else None
        if not isinstance(personalizations, list) or len(personalizations) < 2:
            return None
        return [_recipient(data, p) for p in personalizations]

    def delivered(self, request: RecordedRequest) -> dict[str, str | None]:
        """What this recipient receives: subject, text and HTML with their substitutions made."""
        data = request.data
        p = data["personalizations"][request.index]
        subs = p.get("substitutions") or {}

        def made(value: str | None) -> str | None:
            for tag, replacement in subs.items():
                value = value.replace(tag, replacement) if value is not None else None
            return value

        parts = {c.get("type"): c.get("value") for c in data.get("content") or []}
        return {"subject": made(p.get("subject") or data.get("subject")),
                "text": made(parts.get("text/plain")), "html": made(parts.get("text/html"))}

    def _rate_headers(self, remaining: int) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(int(time.time()) + self.reset_in),
        }

    def route(self, request: RecordedRequest) -> Reply:
        if request.method != "POST" or request.path != "/v3/mail/send":
            return Reply(404, _errors((None, "not found")))
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self.fault_reply(Fault.unauthorized, request)
        data = request.data
        if not isinstance(data, dict):
            return Reply(400, _errors((None, "Bad Request")))
        problems: list[tuple[str | None, str]] = []
        personalizations = data.get("personalizations")
        if not personalizations:
            problems.append(("personalizations", "The personalizations field is required."))
        if len(personalizations or []) > 1000:
            problems.append(("personalizations", "The personalization block is limited to 1000 "
                             f"personalizations per API request. You have provided {len(personalizations)}."))
        seen: set[str] = set()
        for i, p in enumerate(personalizations or []):
            for j, to in enumerate(p.get("to") or []):
                address = str(to.get("email", ""))
                if not EMAIL_RE.match(address):
                    problems.append(
                        (f"personalizations.{i}.to.{j}.email", "Does not contain a valid address.")
                    )
                elif address.lower() in seen:
                    problems.append((f"personalizations.{i}.to", "Each unique email address in "
                                     "the personalizations array should only be included once."))
                seen.add(address.lower())
            subs = p.get("substitutions") or {}
            if sum(len(str(k).encode()) + len(str(v).encode()) for k, v in subs.items()) > 10_000:
                problems.append((f"personalizations.{i}.substitutions",
                                 "Substitutions are limited to 10000 bytes per personalization."))
        if not EMAIL_RE.match(str((data.get("from") or {}).get("email", ""))):
            problems.append(("from.email", "The from email does not contain a valid address."))
        if not data.get("subject") and not any(p.get("subject") for p in personalizations or []):
            problems.append(("subject", "The subject is required."))
        if not data.get("content"):
            problems.append(
                ("content", "Unless a valid template_id is provided, the content parameter is required.")
            )
        if problems:
            return Reply(400, _errors(*problems))
        sandbox = ((data.get("mail_settings") or {}).get("sandbox_mode") or {}).get("enable")
        if sandbox:
            return Reply(200, None)
        return Reply(202, None, {"X-Message-Id": uuid.uuid4().hex[:22]})

    def fault_reply(self, fault: Fault, request: RecordedRequest) -> Reply:
        if fault is Fault.rate_limit:
            return Reply(429, _errors((None, "too many requests")), self._rate_headers(0))
        if fault is Fault.server_error:
            return Reply(500, _errors((None, "internal error")))
        if fault is Fault.unavailable:
            return Reply(503, _errors((None, "service unavailable")))
        if fault is Fault.unauthorized:
            return Reply(
                401, _errors((None, "The provided authorization grant is invalid, expired, or revoked"))
            )
        if fault in (Fault.invalid_address, Fault.unsubscribed):
            return Reply(400, _errors(("personalizations.0.to.0.email", "Does not contain a valid address.")))
        raise ValueError(f"unhandled fault {fault}")
