"""Handing a trigger to the running orchestrator service (``orchestrator serve`` at ``ORCH_SERVICE_URL``).

A command that runs the outage notice itself first starts a process that imports Prefect and the
project and opens a flow run: seconds before the first message on a quiet machine, tens of seconds
on a busy one. The service has all of that loaded. So ``orchestrator outage notify`` sends it the
request a monitoring tool would send (``POST /incidents`` with the bearer ``ORCH_INCIDENT_TOKEN``):
the flow run, its idempotency key (a retried command gets the same run and starts nothing) and its
place in the Prefect UI are the web path's own.

Standard library only: this path must not import Prefect, SQLAlchemy or the web stack, or it would
pay what it exists to avoid.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

HANDOFF_TIMEOUT_SECONDS = 15.0


class HandoffFailed(Exception):
    """The service did not take the trigger. ``reason`` says what happened, ``fix`` what to change.

    ``bad_input``: the service refused the request itself (the same parameters would fail in this
    process too); otherwise the command may run the notice itself.
    """

    def __init__(self, reason: str, fix: str, *, bad_input: bool = False) -> None:
        super().__init__(f"{reason}. {fix}")
        self.reason, self.fix, self.bad_input = reason, fix, bad_input


def hand_over_incident(service_url: str, token: str | None, incident: dict[str, Any],
                       timeout: float = HANDOFF_TIMEOUT_SECONDS) -> dict[str, Any]:
    """``POST {service_url}/incidents``; returns the service's answer (``run_id``, ``incident_id``)."""
    url = service_url.rstrip("/") + "/incidents"
    if not token:
        raise HandoffFailed("ORCH_INCIDENT_TOKEN is not set, and the service needs it",
                            "Set ORCH_INCIDENT_TOKEN to the token `orchestrator serve` was started with")
    request = urllib.request.Request(
        url, data=json.dumps(incident).encode(), method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return dict(json.loads(answer.read()))
    except urllib.error.HTTPError as exc:
        raise _refusal(url, exc.code, _detail(exc)) from None
    except (OSError, ValueError) as exc:  # refused, unreachable, timed out, not JSON
        reason = getattr(exc, "reason", None) or exc
        raise HandoffFailed(f"the orchestrator service at {url} did not answer ({reason})",
                            "Check that `orchestrator serve` runs there, or unset ORCH_SERVICE_URL") from None


def _refusal(url: str, status: int, detail: str) -> HandoffFailed:
    if status == 401:
        return HandoffFailed(f"the orchestrator service at {url} refused the token (401)",
                             "Set ORCH_INCIDENT_TOKEN to the token `orchestrator serve` was started with")
    if status == 422:
        return HandoffFailed(f"the orchestrator service refused the notice: {detail}",
                             "Correct the options (or, if the service runs an older version, add "
                             "--in-process)", bad_input=True)
    if status == 503:
        return HandoffFailed(f"the orchestrator service at {url} cannot start notices: {detail}",
                             "Set ORCH_INCIDENT_TOKEN where `orchestrator serve` runs and restart it")
    return HandoffFailed(f"the orchestrator service at {url} answered {status}: {detail}",
                         "See the service's log")


def _detail(exc: urllib.error.HTTPError) -> str:
    try:
        detail = json.loads(exc.read()).get("detail")
    except (OSError, ValueError, AttributeError):
        return exc.reason or "no detail"
    if isinstance(detail, list):  # validation errors: where and what
        return "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ())[-1:])}: {e.get('msg')}" for e in detail)
    return str(detail)
