"""Fake Twilio Programmable Messaging: ``POST /2010-04-01/Accounts/{Sid}/Messages.json``.

Messages to ``whatsapp:+E164`` follow WhatsApp's rules: the number must be a WhatsApp user
(``whatsapp_users``, else 63003); free-form text only inside the 24-hour window opened by the
customer's last message (``customer_wrote``, else 63016); outside it an approved Content template
(``approved_content``: ContentSid -> the placeholders it needs, else 63027) with ContentVariables.

Status callbacks, as Twilio posts them to a message's ``StatusCallback`` after accepting it, signed
with the account's auth token: with ``send_status_callbacks`` on, each accepted message owes
``sent`` and then ``delivered``, or ``failed`` with the ``ErrorCode`` that ``late_errors`` names for
its recipient (WhatsApp refuses many messages only then: 63016, 63003). ``take_status_callbacks``
hands them over for the test to post to the web app, as often and in whatever order it likes.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.fakes.base import FakeProvider, Fault, RecordedRequest, Reply, form_body
from tests.support.signing import twilio_headers

PATH_RE = re.compile(r"^/2010-04-01/Accounts/(?P<sid>[^/]+)/Messages\.json$")
E164_RE = re.compile(r"^\+[1-9]\d{6,14}$")
# Twilio's magic test numbers: https://www.twilio.com/docs/iam/test-credentials
INVALID_NUMBER = "+15005550001"
NOT_MOBILE = "+15005550009"


def _classic(code: int, message: str, status: int) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def _problem(code: int, message: str, status: int) -> dict[str, Any]:
    """The RFC 9457 form newer Twilio APIs answer with (the SDK raises TwilioServiceException)."""
    return {
        "type": f"https://www.twilio.com/docs/errors/{code}",
        "title": message,
        "status": status,
        "code": code,
        "detail": message,
    }


@dataclass(frozen=True)
class StatusCallback:
    """One status callback Twilio owes: the URL it posts to, the form and its signature header."""

    url: str
    params: dict[str, str]
    headers: dict[str, str]


class FakeTwilio(FakeProvider):
    name = "twilio"

    def __init__(self, account_sid: str = "AC" + "0" * 32, auth_token: str = "test-token", **kwargs: Any):
        super().__init__(**kwargs)
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.opted_out: set[str] = set()  # numbers that answer 21610
        self.problem_details = False  # answer errors in the RFC 9457 form instead of the classic one
        self.whatsapp_users: set[str] = set()  # E.164 numbers that have WhatsApp
        self.last_inbound: dict[str, datetime] = {}  # E.164 -> when the customer last wrote on WhatsApp
        self.approved_content: dict[str, set[str]] = {}  # ContentSid -> placeholders it needs
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        self.send_status_callbacks = False
        # Recipient as sent ("whatsapp:+E164" or "+E164") -> the error code its status callback
        # reports after the message was accepted.
        self.late_errors: dict[str, int] = {}
        self._callbacks: list[StatusCallback] = []

    def take_status_callbacks(self) -> list[StatusCallback]:
        """The status callbacks owed so far, in the order Twilio would post them; forgets them."""
        with self._lock:
            taken, self._callbacks = self._callbacks, []
        return taken

    def _owe_status_callbacks(self, form: dict[str, str], sid: str) -> None:
        url = form.get("StatusCallback")
        if not self.send_status_callbacks or not url:
            return
        to = form.get("To", "")
        base = {"MessageSid": sid, "AccountSid": self.account_sid, "To": to,
                "From": form.get("From") or "", "ApiVersion": "2010-04-01"}
        code = self.late_errors.get(to)
        final = {"MessageStatus": "delivered"}
        if code:
            final = {"MessageStatus": "failed", "ErrorCode": str(code)}
        owed = [StatusCallback(url, params, twilio_headers(self.auth_token, url, params))
                for params in ({**base, "MessageStatus": "sent"}, {**base, **final})]
        with self._lock:
            self._callbacks.extend(owed)

    def customer_wrote(self, number: str, at: datetime | None = None) -> None:
        """The customer sent us a WhatsApp message: their 24-hour window opens."""
        self.last_inbound[number.removeprefix("whatsapp:")] = at or self.clock()

    def _error(self, code: int, message: str, status: int) -> dict[str, Any]:
        return (_problem if self.problem_details else _classic)(code, message, status)

    def parse(self, method: str, path: str, headers: dict[str, str], body: bytes):
        data = form_body(body)
        callback = data.get("StatusCallback", "")
        ids = parse_qs(urlsplit(callback).query).get("message_id") if callback else None
        return data, (ids[0] if ids else None), data.get("To")

    def _authorised(self, request: RecordedRequest) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return request.headers.get("Authorization") == f"Basic {expected}"

    def route(self, request: RecordedRequest) -> Reply:
        match = PATH_RE.match(request.path)
        if request.method != "POST" or match is None:
            return Reply(404, self._error(20404, "The requested resource was not found", 404))
        if match["sid"] != self.account_sid or not self._authorised(request):
            return self.fault_reply(Fault.unauthorized, request)
        form = request.data
        to = form.get("To", "")
        if to.startswith("whatsapp:"):
            refused = self._whatsapp_refusal(form)
            if refused is not None:
                return refused
            return self._accepted(form)
        if not form.get("From") and not form.get("MessagingServiceSid"):
            return Reply(
                400, self._error(21603, "A 'From' or 'MessagingServiceSid' parameter is required", 400)
            )
        if not form.get("Body"):
            return Reply(400, self._error(21602, "Message body is required.", 400))
        if not E164_RE.match(to) or to == INVALID_NUMBER:
            return self.fault_reply(Fault.invalid_address, request)
        if to == NOT_MOBILE:
            return Reply(400, self._error(21614, f"'To' number {to} is not a valid mobile number", 400))
        if to in self.opted_out:
            return self.fault_reply(Fault.unsubscribed, request)
        return self._accepted(form)

    def _whatsapp_refusal(self, form: dict[str, str]) -> Reply | None:
        number = form.get("To", "").removeprefix("whatsapp:")
        sender = form.get("From", "")
        if not form.get("MessagingServiceSid") and not sender.startswith("whatsapp:"):
            return Reply(400, self._error(63007, "Twilio could not find a Channel with the specified From "
                                                 "address", 400))
        if not E164_RE.match(number) or number not in self.whatsapp_users:
            return Reply(400, self._error(63003, "Channel could not find To address", 400))
        content_sid = form.get("ContentSid")
        if content_sid:
            needed = self.approved_content.get(content_sid)
            if needed is None:
                missing = "Template does not exist for a language and locale"
                return Reply(404, self._error(63027, missing, 404))
            try:
                variables = json.loads(form.get("ContentVariables") or "{}")
            except json.JSONDecodeError:
                variables = None
            if not isinstance(variables, dict) or not needed <= set(variables):
                return Reply(400, self._error(21656, "The ContentVariables Parameter is invalid", 400))
            return None
        if not form.get("Body"):
            return Reply(400, self._error(21602, "Message body is required.", 400))
        wrote = self.last_inbound.get(number)
        if wrote is None or self.clock() - wrote >= timedelta(hours=24):
            return Reply(400, self._error(
                63016, "Failed to send freeform message because you are outside the allowed window. "
                       "Please use a Template.", 400))
        return None

    def _accepted(self, form: dict[str, str]) -> Reply:
        to = form.get("To", "")
        sid = "SM" + uuid.uuid4().hex
        self._owe_status_callbacks(form, sid)
        return Reply(
            201,
            {
                "sid": sid,
                "account_sid": self.account_sid,
                "to": to,
                "from": form.get("From"),
                "messaging_service_sid": form.get("MessagingServiceSid"),
                "body": form.get("Body"),
                "status": "accepted" if form.get("MessagingServiceSid") else "queued",
                "num_segments": "1",
                "direction": "outbound-api",
                "error_code": None,
                "error_message": None,
                "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
            },
        )

    def fault_reply(self, fault: Fault, request: RecordedRequest) -> Reply:
        to = (request.data or {}).get("To", "")
        if fault is Fault.rate_limit:
            return Reply(429, self._error(20429, "Too Many Requests", 429), {"Retry-After": "2"})
        if fault is Fault.server_error:
            return Reply(500, self._error(20500, "Internal Server Error", 500))
        if fault is Fault.unavailable:
            return Reply(503, self._error(20503, "Service Unavailable", 503))
        if fault is Fault.unauthorized:
            return Reply(401, self._error(20003, "Authenticate", 401))
        if fault is Fault.invalid_address:
            return Reply(400, self._error(21211, f"Invalid 'To' Phone Number: {to}", 400))
        if fault is Fault.unsubscribed:
            return Reply(400, self._error(21610, "Attempt to send to unsubscribed recipient", 400))
        raise ValueError(f"unhandled fault {fault}")
