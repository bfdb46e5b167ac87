"""Worker processes for the reliability tests: each runs the core functions the flows call.

They are started from a forkserver that has imported this module (and so the orchestrator, the
channel SDKs and the templates) once, so a worker is ready in milliseconds and a SIGKILL lands in
the middle of real work, not in the interpreter's start-up. A forkserver child inherits the
forkserver's environment, not the test's: every worker takes its settings as ``env``.
"""

from __future__ import annotations

import multiprocessing
import os
from multiprocessing import forkserver
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import text

import channels.sendgrid.adapter  # noqa: F401 - preloaded so a worker starts without importing SDKs
import channels.twilio.adapter  # noqa: F401
from channels.registry import adapter_for
from orchestrator.db import get_engine, session_scope
from orchestrator.dispatch.run import dispatch_due
from orchestrator.policy import Intent, load_policy, reserve_chunk
from orchestrator.settings import REPO_ROOT, get_settings
from orchestrator.templating import render  # noqa: F401 - template machinery preloaded

ROOT = Path(__file__).resolve().parents[2]
OUTAGE_FACTS: dict[str, Any] = yaml.safe_load((REPO_ROOT / "templates" / "sample_data.yaml").read_text())[
    "messages"]["outage_notice"]
# (topic, template, dedupe key, template facts)
Plan = list[tuple[str, str, str, dict[str, Any]]]


def context() -> BaseContext:
    """A forkserver that has this module preloaded (started once per test session)."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    # Python 3.11's forkserver ignores the parent's sys.path: give it the project root this way.
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), before) if p)
    try:
        forkserver.ensure_running()
    finally:
        if before is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = before
    return ctx


def provider_env(url: str, sendgrid: Any, twilio: Any, **extra: str) -> dict[str, str]:
    """The settings a worker needs to reach the database and the fake providers."""
    return {"ORCH_DATABASE_URL": url, "ORCH_SENDGRID_API_KEY": sendgrid.api_key,
            "ORCH_SENDGRID_HOST": sendgrid.url, "ORCH_TWILIO_ACCOUNT_SID": twilio.account_sid,
            "ORCH_TWILIO_AUTH_TOKEN": twilio.auth_token, "ORCH_TWILIO_FROM_NUMBER": "+15557654321",
            "ORCH_TWILIO_BASE_URL": twilio.url, "ORCH_PUBLIC_BASE_URL": "https://hooks.example.com",
            "ORCH_TWILIO_RATE": "1000", **extra}  # the fake is no long code (1 SMS/s by default)


def _adopt(env: dict[str, str]) -> None:
    for stale in [key for key in os.environ if key.startswith("ORCH_") and key not in env]:
        del os.environ[stale]  # left from the test that happened to start the forkserver
    os.environ.update(env)
    get_settings.cache_clear()


def reserve_and_dispatch(env: dict[str, str], customer_ids: list[int], plan: Plan, chunk_size: int,
                         seed: int, barrier: Any) -> None:
    """What a campaign or outage flow does per chunk: reserve every intent of ``plan``, then dispatch.

    Each worker starts at a different chunk and takes the plan in a different order, so workers
    race for the same customers with the same and with different dedupe keys.
    """
    _adopt(env)
    policy = load_policy()
    chunks = [customer_ids[i : i + chunk_size] for i in range(0, len(customer_ids), chunk_size)]
    shift = seed * len(chunks) // 4
    chunks = chunks[shift:] + chunks[:shift]
    order = plan[seed % len(plan):] + plan[: seed % len(plan)]
    barrier.wait()
    for chunk in chunks:
        due: list[int] = []
        for topic, template, key, data in order:
            intents = [Intent(customer_id=c, topic=topic, template=template, dedupe_key=key, data=data)
                       for c in chunk]
            result = reserve_chunk(intents, policy=policy)
            due += [r.message_id for r in result.rows
                    if r.message_id is not None and r.status != "suppressed"]
        dispatch_due(message_ids=due)
    dispatch_due()  # whatever another worker reserved but left behind
    get_engine().dispose()


def dispatch_until_killed(env: dict[str, str], claim_size: int, ready: Any) -> None:
    """Dispatches every due message; the test kills it with SIGKILL at a random moment.

    The database connection and the adapters are set up before ``ready``, so the kill falls in
    the dispatch itself.
    """
    _adopt(env)
    with session_scope() as session:
        session.execute(text("SELECT 1"))
    adapters = {channel: adapter_for(channel) for channel in ("email", "sms")}
    ready.set()
    dispatch_due(claim_size=claim_size, adapters=adapters)
