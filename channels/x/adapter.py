"""X (Twitter) through the API v2 with ``tweepy``: DMs to known users, one public post per broadcast.

tweepy hard-codes ``https://api.twitter.com``; a requests adapter mounted on the client's session
rewrites that host when a base URL is configured (tests, benchmarks) and applies our timeout,
which tweepy does not have. ``wait_on_rate_limit`` stays off: the orchestrator, not the SDK,
decides when to try again (``Transient.retry_after``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import requests
import tweepy
from requests.adapters import HTTPAdapter

from channels import builtin
from channels.base import (
    BroadcastResult,
    ChannelSpec,
    ConfigurationError,
    Limits,
    OutboundMessage,
    Permanent,
    PermanentReason,
    SendResult,
    Transient,
)
from channels.concurrency import PerThreadPool
from channels.http_env import settle_environment
from channels.results import accepted, header, permanent, redact_text, safe_headers, seconds_until, transient
from channels.settings import AdapterSettings, current
from channels.x.settings import XSettings

PROVIDER = "x"
X_HOSTS = ("https://api.twitter.com", "https://api.x.com")


class RoutingAdapter(HTTPAdapter):
    """Sends X API calls to ``base_url`` (if set) and gives every request a timeout."""

    def __init__(self, base_url: str | None, timeout: float):
        super().__init__(pool_connections=1, pool_maxsize=4)
        self.base_url = base_url.rstrip("/") if base_url else None
        self.timeout = timeout

    def send(  # type: ignore[override]  # requests names each keyword argument; they all pass through
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        if self.base_url and request.url:
            for host in X_HOSTS:
                if request.url.startswith(host):
                    request.url = self.base_url + request.url[len(host) :]
                    break
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().send(request, **kwargs)


class XSocialAdapter:
    name: ClassVar[str] = "x"
    channel: ClassVar[str] = "social"
    channel_spec: ClassVar[ChannelSpec] = builtin.SOCIAL
    provider: ClassVar[str] = PROVIDER

    def __init__(
        self,
        *,
        consumer_key: str | None = None,
        consumer_secret: str | None = None,
        access_token: str | None = None,
        access_token_secret: str | None = None,
        base_url: str | None = None,
        timeout: float | None = None,
        concurrency: int | None = None,
    ):
        s, shared = current(XSettings), current(AdapterSettings)

        def secret(value: str | None, setting: Any) -> str | None:
            return value or (setting.get_secret_value() if setting else None)

        self._credentials = {
            "consumer_key": secret(consumer_key, s.consumer_key),
            "consumer_secret": secret(consumer_secret, s.consumer_secret),
            "access_token": secret(access_token, s.access_token),
            "access_token_secret": secret(access_token_secret, s.access_token_secret),
        }
        missing = [k for k, v in self._credentials.items() if not v]
        if missing:
            names = ", ".join(f"ORCH_X_{k.upper()}" for k in missing)
            raise ConfigurationError(f"X needs OAuth 1.0a user-context credentials: set {names}")
        self.base_url = base_url or s.api_base_url
        self.timeout = timeout or shared.timeout_seconds
        workers = concurrency or shared.concurrency
        self.limits = Limits(max_batch=max(100, workers * 25), rate_per_second=None)
        self._pool: PerThreadPool[tweepy.Client] = PerThreadPool(self._new_client, workers, "x")

    @classmethod
    def configured(cls) -> bool:
        s = current(XSettings)
        return all((s.consumer_key, s.consumer_secret, s.access_token, s.access_token_secret))

    def _new_client(self) -> tweepy.Client:
        client = tweepy.Client(**self._credentials, wait_on_rate_limit=False)
        adapter = RoutingAdapter(self.base_url, self.timeout)
        for host in X_HOSTS:
            client.session.mount(host, adapter)
        settle_environment(client.session, self.base_url or X_HOSTS[0])
        return client

    def send(self, batch: list[OutboundMessage]) -> list[SendResult]:
        """Direct messages; ``to`` is the customer's numeric X user id."""
        return self._pool.map(PROVIDER, self._send_one, batch)

    def _send_one(self, client: tweepy.Client, message: OutboundMessage) -> SendResult:
        if not message.to.isdigit():
            return permanent(message, PROVIDER, PermanentReason.invalid_address, "X user ids are numeric")
        outcome = _call(
            lambda: client.create_direct_message(participant_id=message.to, text=message.body, user_auth=True)
        )
        if isinstance(outcome, _Failure):
            error, raw = outcome.error, outcome.raw
            if isinstance(error, Transient):
                return transient(message, PROVIDER, error.reason, error.retry_after, raw)
            return permanent(message, PROVIDER, error.reason, error.detail, raw)
        data = outcome.data or {}
        return accepted(message, PROVIDER, data.get("dm_event_id"), {"data": data})

    def broadcast(self, text: str, dedupe_key: str) -> BroadcastResult:
        """One public post for everyone (an outage update is one post, not one per customer).

        X refuses duplicate content (403), which also guards a re-run; ``dedupe_key`` is the
        ledger's business.
        """
        outcome = _call(lambda: self._pool.client().create_tweet(text=text, user_auth=True))
        if isinstance(outcome, _Failure):
            return BroadcastResult(PROVIDER, None, outcome.error, outcome.raw)
        data = outcome.data or {}
        return BroadcastResult(PROVIDER, data.get("id"), None, {"data": data, "dedupe_key": dedupe_key})

    def close(self) -> None:
        self._pool.close(lambda client: client.session.close())


@dataclass(frozen=True)
class _Failure:
    error: Transient | Permanent
    raw: dict[str, Any] = field(default_factory=dict)


def _call(request: Callable[[], tweepy.Response]) -> tweepy.Response | _Failure:
    """Runs a tweepy call; returns its response, or the normalised failure."""
    try:
        return request()
    except tweepy.TweepyException as exc:
        return _from_tweepy_error(exc)
    except requests.Timeout:
        return _Failure(Transient("timeout"))
    except requests.ConnectionError as exc:
        return _Failure(Transient(f"connection_error:{type(exc).__name__}"))


def _from_tweepy_error(exc: tweepy.TweepyException) -> _Failure:
    if not isinstance(exc, tweepy.HTTPException):
        return _Failure(Transient(f"x_error:{type(exc).__name__}"))
    response = exc.response
    status = int(response.status_code)
    headers = response.headers
    text = redact_text("; ".join(str(m) for m in exc.api_messages) or _problem_detail(response))
    raw: dict[str, Any] = {"status_code": status, "headers": safe_headers(headers), "message": text}
    if isinstance(exc, tweepy.TooManyRequests) or status == 429:
        return _Failure(Transient("rate_limited", seconds_until(header(headers, "x-rate-limit-reset"))), raw)
    if isinstance(exc, tweepy.TwitterServerError) or status >= 500:
        return _Failure(Transient(f"server_error:{status}"), raw)
    if isinstance(exc, tweepy.Unauthorized):
        return _Failure(Permanent(PermanentReason.unauthorized, text), raw)
    if isinstance(exc, tweepy.NotFound):
        return _Failure(Permanent(PermanentReason.invalid_address, text), raw)
    if isinstance(exc, tweepy.Forbidden):
        # Duplicate content is a refused post; anything else is the recipient not accepting our DMs.
        reason = PermanentReason.rejected if "duplicate" in text.lower() else PermanentReason.blocked
        return _Failure(Permanent(reason, text), raw)
    if isinstance(exc, tweepy.BadRequest) and "participant" in text.lower():
        return _Failure(Permanent(PermanentReason.invalid_address, text), raw)
    return _Failure(Permanent(PermanentReason.rejected, text), raw)


def _problem_detail(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("title") or f"HTTP {response.status_code}")
    return f"HTTP {response.status_code}"
