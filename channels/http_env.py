"""Proxy and certificate settings read from the environment once per HTTP session, not per request.

requests reads ``HTTPS_PROXY``, ``NO_PROXY`` and ``REQUESTS_CA_BUNDLE`` from the process environment
on every request (``Session.trust_env``), walking every variable each time: for an SDK that makes
one request per message (Twilio, X) that walk cost more CPU than building the request. A session
that talks to one provider host resolves them once, as requests would for that host, and stops
looking.
"""

from __future__ import annotations

import os

import requests
from requests.utils import get_environ_proxies


def settle_environment(session: requests.Session | None, url: str) -> None:
    """Fixes ``session``'s proxies and CA bundle to what the environment says for ``url`` now
    (``None``: an SDK client without a kept session, which has nothing to fix)."""
    if session is None:
        return
    session.proxies.update(get_environ_proxies(url))  # NO_PROXY for this host is honoured here
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle and session.verify is True:
        session.verify = bundle
    session.trust_env = False
