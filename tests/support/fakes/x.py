"""Fake X API v2: ``POST /2/tweets`` and ``POST /2/dm_conversations/with/{id}/messages``."""

from __future__ import annotations

import itertools
import re
import threading
import time
from typing import Any

from tests.support.fakes.base import FakeProvider, Fault, RecordedRequest, Reply, json_body

DM_RE = re.compile(r"^/2/dm_conversations/with/(?P<participant>[^/]+)/messages$")


def _problem(status: int, title: str, detail: str, type_: str = "about:blank") -> dict[str, Any]:
    return {"title": title, "detail": detail, "type": type_, "status": status}


class FakeX(FakeProvider):
    name = "x"

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.user_id = "1000"  # the brand account
        self.dm_closed: set[str] = set()  # users who do not accept our DMs (403)
        self.limit = 300
        self.reset_in = 900  # X windows are 15 minutes
        self._ids = itertools.count(1800000000000000000)
        self._posted: set[str] = set()
        self._ids_lock = threading.Lock()

    def parse(self, method: str, path: str, headers: dict[str, str], body: bytes):
        data = json_body(body)
        match = DM_RE.match(path)
        return data, None, (match["participant"] if match else None)

    def posts(self) -> list[str]:
        """Texts of the public posts accepted."""
        return [r.data["text"] for r in self.accepted() if r.path == "/2/tweets"]

    def _next_id(self) -> str:
        with self._ids_lock:
            return str(next(self._ids))

    def _rate_headers(self, remaining: int) -> dict[str, str]:
        return {
            "x-rate-limit-limit": str(self.limit),
            "x-rate-limit-remaining": str(remaining),
            "x-rate-limit-reset": str(int(time.time()) + self.reset_in),
        }

    def route(self, request: RecordedRequest) -> Reply:
        if not request.headers.get("Authorization", "").startswith("OAuth "):
            return self.fault_reply(Fault.unauthorized, request)
        data = request.data if isinstance(request.data, dict) else {}
        rate = self._rate_headers(self.limit - 1)
        if request.method == "POST" and request.path == "/2/tweets":
            text = str(data.get("text") or "")
            with self._ids_lock:
                duplicate = text in self._posted
                self._posted.add(text)
            if duplicate:
                return Reply(
                    403,
                    _problem(
                        403, "Forbidden", "You are not allowed to create a Tweet with duplicate content."
                    ),
                    rate,
                )
            tweet_id = self._next_id()
            return Reply(
                201, {"data": {"id": tweet_id, "text": text, "edit_history_tweet_ids": [tweet_id]}}, rate
            )
        match = DM_RE.match(request.path)
        if request.method == "POST" and match:
            participant = match["participant"]
            if not participant.isdigit():
                return self.fault_reply(Fault.invalid_address, request)
            if participant in self.dm_closed:
                return Reply(
                    403,
                    _problem(
                        403,
                        "Forbidden",
                        "You are not permitted to send Direct Messages to this user.",
                        "https://api.twitter.com/2/problems/not-authorized-for-resource",
                    ),
                    rate,
                )
            event = self._next_id()
            return Reply(
                201,
                {"data": {"dm_conversation_id": f"{self.user_id}-{participant}", "dm_event_id": event}},
                rate,
            )
        return Reply(404, _problem(404, "Not Found Error", "not found"))

    def fault_reply(self, fault: Fault, request: RecordedRequest) -> Reply:
        if fault is Fault.rate_limit:
            return Reply(429, _problem(429, "Too Many Requests", "Too Many Requests"), self._rate_headers(0))
        if fault is Fault.server_error:
            return Reply(500, _problem(500, "Internal Server Error", "Internal error"))
        if fault is Fault.unavailable:
            return Reply(503, _problem(503, "Service Unavailable", "Service Unavailable"))
        if fault is Fault.unauthorized:
            return Reply(401, _problem(401, "Unauthorized", "Unauthorized"))
        if fault in (Fault.invalid_address, Fault.unsubscribed):
            return Reply(
                400,
                {
                    "errors": [
                        {
                            "parameters": {"participant_id": [request.address or ""]},
                            "message": (
                                f"The `participant_id` query parameter value [{request.address}] is not valid"
                            ),
                        }
                    ],
                    "title": "Invalid Request",
                    "detail": "One or more parameters to your request was invalid.",
                    "type": "https://api.twitter.com/2/problems/invalid-request",
                },
            )
        raise ValueError(f"unhandled fault {fault}")
