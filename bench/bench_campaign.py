"""Campaign flow throughput: ``python -m bench.bench_campaign [--customers 20000]``.

Runs the real campaign flow (SQLite, local outbox, an ephemeral Prefect server) over a synthetic
audience in chunks, then over a small audience with one customer per chunk (what "one task per
message" would cost), and reports customers per second for both and their ratio, measured in
this run. A re-run of the big campaign shows the cost of the idempotent path (all duplicates).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--chunk-size", type=int, default=1000)
    parser.add_argument("--per-message-sample", type=int, default=200)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-campaign-"))
    os.chdir(work)
    sample = args.per_message_sample
    # Two audiences that do not overlap, so the marketing cap does not stop the second campaign.
    (work / "segments.yaml").write_text(
        "segments:\n"
        f"  sample: {{description: the first customers, filter: {{id: {{range: {{max: {sample}}}}}}}}}\n"
        f"  bulk: {{description: the others, filter: {{id: {{range: {{min: {sample + 1}}}}}}}}}\n",
        encoding="utf-8")
    os.environ.update({"ORCH_DATABASE_URL": f"sqlite:///{work / 'bench.db'}", "ORCH_OUTBOX_DIR": str(work),
                       "ORCH_SEGMENTS_FILE": str(work / "segments.yaml"),
                       "ORCH_CHANNEL_ADAPTERS": '{"email": "outbox", "sms": "outbox", "social": "outbox"}',
                       "PREFECT_LOGGING_LEVEL": "WARNING", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"})

    from prefect import flow

    from flows.campaign import campaign
    from orchestrator.customer_import import import_customers
    from orchestrator.db import upgrade
    from samples.generate import write_bulk_csv
    from tests.support.flow_world import MARKETING_FACTS

    upgrade()
    import_customers(write_bulk_csv(work / "customers.csv", args.customers + sample))

    @flow
    def warm_up() -> None:  # starts the ephemeral Prefect server outside the measurements
        pass

    warm_up()

    def timed(name: str, segment: str, chunk_size: int) -> tuple[float, dict]:
        start = time.perf_counter()
        result = campaign(name=name, segment=segment, template="spring_sale", data=MARKETING_FACTS,
                          chunk_size=chunk_size)
        return time.perf_counter() - start, result

    seconds, result = timed("bench", "bulk", args.chunk_size)
    again, _ = timed("bench", "bulk", args.chunk_size)
    print(f"chunked: {result['customers']} customers in {result['chunks']} chunks, {seconds:.1f} s, "
          f"{result['customers'] / seconds:,.0f} customers/s; reserved {result['reserved']}, "
          f"dispatched {sum(result['dispatched'].values())}")
    print(f"re-run (all duplicates, nothing sent): {again:.1f} s, "
          f"{result['customers'] / again:,.0f} customers/s")

    # One customer per chunk on a sample of the audience: the cost of one task per message.
    per_message, small = timed("bench-per-message", "sample", 1)
    print(f"one customer per task: {small['customers']} customers, {per_message:.1f} s, "
          f"{small['customers'] / per_message:,.1f} customers/s")
    ratio = (result["customers"] / seconds) / (small["customers"] / per_message)
    print(f"ratio: chunks of {args.chunk_size} move {ratio:,.0f}x more customers per second")


if __name__ == "__main__":
    main()
