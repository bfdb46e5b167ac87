"""The contact-point lookup: one campaign reaching 10,000 customers by an address on the customer
row (SMS, ``customer.phone``) and the same campaign reaching them by contact points (WhatsApp,
``contact_point`` rows), in one run.

    .venv/bin/python -m bench.bench_contact_points [--customers 10000] [--repeat 3]
                                                   [--backend sqlite|postgres|both]

Both arms do the same work otherwise: the same customers, consent (an opt-in on the channel),
topic (no caps, no quiet hours), message and text (the WhatsApp template is the SMS one copied),
chunks of 1,000 customers reserved and dispatched to an adapter that accepts everything without
I/O. What differs is where the address comes from: the customer row the chunk reads anyway, or
one more query per chunk on ``contact_point`` (in reservation, and in dispatch with the last
inbound time for WhatsApp's window). The arms alternate, each on a fresh database; the medians
and their ratio are reported, and the lookup itself is timed per chunk.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import yaml
from sqlalchemy import insert, select
from sqlmodel import col

from bench.bench_dispatch import FACTS, NullAdapter
from bench.databases import backends, database, postgres_available
from orchestrator.contact_points import reach_of
from orchestrator.db import get_engine, session_scope
from orchestrator.dispatch.run import dispatch_due
from orchestrator.models import ConsentEvent, ContactPoint, Customer, table_of, utcnow
from orchestrator.policy import Intent, reserve_chunk
from orchestrator.policy.config import load_policy
from orchestrator.settings import REPO_ROOT, get_settings

CHUNK = 1_000
ARMS = ("sms", "whatsapp")  # the customer column, the contact point


class NullSms(NullAdapter):
    channel: ClassVar[str] = "sms"


class NullWhatsApp(NullAdapter):
    channel: ClassVar[str] = "whatsapp"


def configure(tmp: Path) -> dict[str, dict[str, str]]:
    """The environment of each arm: a templates copy whose WhatsApp outage text is the SMS one,
    and the arm's policy file."""
    templates = tmp / "templates"
    shutil.copytree(REPO_ROOT / "templates", templates)
    tone = templates / "messages" / "outage_notice" / "empathetic"
    shutil.copyfile(tone / "sms.txt", tone / "whatsapp.txt")
    environments = {}
    for channel in ARMS:
        policy = tmp / f"policy-{channel}.yaml"
        policy.write_text(yaml.safe_dump({"topics": {"outage": {
            "priority": 90, "channels": [channel], "tone": "empathetic", "bypass_caps": True,
            "bypass_quiet_hours": True, "counts_toward_caps": False}}}))
        environments[channel] = {"ORCH_TEMPLATES_DIR": str(templates), "ORCH_POLICY_FILE": str(policy)}
    return environments


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """The process environment with ``values`` set, restored afterwards."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    get_settings.cache_clear()
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
        get_settings.cache_clear()


def seed(url: str, n: int, channel: str) -> list[int]:
    """``n`` customers with a phone; on the WhatsApp arm each also has a contact point (the window
    open); each has opted in to the arm's channel."""
    now = utcnow()
    with get_engine(url).begin() as conn:
        conn.execute(insert(table_of(Customer)), [
            {"external_id": f"c{i}", "name": f"Ada Lovelace {i}", "phone": f"+1415{i:07d}",
             "timezone": "UTC", "locale": "en", "tier": "standard", "attributes": {},
             "created_at": now, "updated_at": now} for i in range(n)])
        ids = [r[0] for r in conn.execute(select(Customer.id).order_by(Customer.id))]
        conn.execute(insert(table_of(ConsentEvent)), [
            {"customer_id": cid, "channel": channel, "topic": "*", "state": "opted_in", "source": "bench",
             "created_at": now} for cid in ids])
        if channel == "whatsapp":
            conn.execute(insert(table_of(ContactPoint)), [
                {"customer_id": cid, "channel": "whatsapp", "address": f"whatsapp:+1415{i:07d}",
                 "verified": True, "source": "bench", "last_inbound_at": now - timedelta(hours=1),
                 "created_at": now, "updated_at": now} for i, cid in enumerate(ids)])
    return ids


def campaign(url: str, ids: list[int], channel: str) -> dict[str, float]:
    """Reserve chunk by chunk, then dispatch in claims of a chunk: seconds for each."""
    policy = load_policy()
    started = time.perf_counter()
    for start in range(0, len(ids), CHUNK):
        reserve_chunk([Intent(customer_id=cid, topic="outage", template="outage_notice",
                              dedupe_key="bench:outage", data=FACTS) for cid in ids[start:start + CHUNK]],
                      policy=policy, url=url)
    reserved = time.perf_counter()
    adapter = NullSms(500) if channel == "sms" else NullWhatsApp(500)
    report = dispatch_due(limit=len(ids), claim_size=CHUNK, adapters={channel: adapter}, url=url)
    done = time.perf_counter()
    if report.total("sent") != len(ids):
        raise RuntimeError(f"{channel}: sent {report.total('sent')} of {len(ids)}: {report.rows()}")
    return {"reserve": reserved - started, "dispatch": done - reserved, "total": done - started}


def lookup_ms(url: str, ids: list[int], channel: str) -> float:
    """Milliseconds per chunk to read the chunk's addresses (and the last inbound time on WhatsApp)."""
    times = []
    with session_scope(url) as session:
        for start in range(0, len(ids), CHUNK):
            customers = session.connection().execute(
                select(table_of(Customer)).where(col(Customer.id).in_(ids[start:start + CHUNK]))
            ).mappings().all()
            began = time.perf_counter()
            found = reach_of(session, customers, [channel]).addresses
            times.append(time.perf_counter() - began)
            assert all(found[cid][channel] for cid in ids[start:start + CHUNK])
    return 1000 * statistics.median(times)


def run(backend: str, n: int, repeat: int, tmp: Path) -> dict[str, Any]:
    environments = configure(tmp)
    runs: dict[str, list[dict[str, float]]] = {arm: [] for arm in ARMS}
    lookups: dict[str, list[float]] = {arm: [] for arm in ARMS}
    for _ in range(repeat):
        for arm in ARMS:
            with environment(environments[arm]), database(backend, tmp) as url:
                ids = seed(url, n, arm)
                runs[arm].append(campaign(url, ids, arm))
                lookups[arm].append(lookup_ms(url, ids, arm))
    med = {arm: {k: statistics.median(r[k] for r in runs[arm]) for k in ("reserve", "dispatch", "total")}
           for arm in ARMS}
    return {
        "backend": backend, "customers": n, "repeat": repeat, "chunks": -(-n // CHUNK),
        **{f"{arm}_{k}_s": v for arm in ARMS for k, v in med[arm].items()},
        "total_ratio": med["whatsapp"]["total"] / med["sms"]["total"],
        "dispatch_ratio": med["whatsapp"]["dispatch"] / med["sms"]["dispatch"],
        "reserve_ratio": med["whatsapp"]["reserve"] / med["sms"]["reserve"],
        "extra_ms_per_chunk": 1000 * (med["whatsapp"]["total"] - med["sms"]["total"]) / -(-n // CHUNK),
        "lookup_ms_per_chunk_sms": statistics.median(lookups["sms"]),
        "lookup_ms_per_chunk_whatsapp": statistics.median(lookups["whatsapp"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args()
    for backend in backends(args.backend):
        if backend == "postgres" and not postgres_available():
            print("postgres: skipped (not reachable)")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            report = run(backend, args.customers, args.repeat, Path(tmp))
            print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in report.items()),
                  flush=True)


if __name__ == "__main__":
    main()
