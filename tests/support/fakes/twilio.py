"""Fake Twilio Programmable Messaging: ``POST /2010-04-01/Accounts/{Sid}/Messages.json``."""

from __future__ import annotations

import base64
import re
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.fakes.base import FakeProvider, Fault, RecordedRequest, Reply, form_body

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


class FakeTwilio(FakeProvider):
    name = "twilio"

    def __init__(self, account_sid: str = "AC" + "0" * 32, auth_token: str = "test-token", **kwargs: Any):
        super().__init__(**kwargs)
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.opted_out: set[str] = set()  # numbers that answer 21610
        self.problem_details = False  # answer errors in the RFC 9457 form instead of the classic one

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
        sid = "SM" + uuid.uuid4().hex
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
