"""One campaign across processes: ORCH_TASK_RUNNER=dask sends its chunk tasks to a Dask cluster
(here a local one of 2 worker processes) on PostgreSQL; the fakes see each customer exactly once."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.support.flow_world import add_customer, ledger, use_fake_providers
from tests.support.ledger import add_messages

pytest.importorskip("prefect_dask")


@pytest.mark.postgres
@pytest.mark.slow
def test_a_campaign_runs_its_chunks_on_a_dask_cluster_with_caps_exact(prefect_harness, pg_url, monkeypatch,
                                                                    fake_sendgrid):
    from dask.distributed import LocalCluster
    from prefect.settings import PREFECT_API_URL

    from flows.campaign import campaign
    from flows.common import chunk_task_runner
    from orchestrator.settings import get_settings

    use_fake_providers(monkeypatch, sendgrid=fake_sendgrid)
    customers = [add_customer(f"c{i}", email=f"c{i}@example.com") for i in range(40)]
    capped = customers[:5]  # already had a marketing email within the 2-day cap: they get nothing
    add_messages(capped, template="promo", topic="marketing", dedupe="earlier", status="sent")
    # The workers are processes of their own: they read the same settings from the environment.
    monkeypatch.setenv("PREFECT_API_URL", PREFECT_API_URL.value())
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        monkeypatch.setenv("ORCH_TASK_RUNNER", "dask")
        monkeypatch.setenv("ORCH_DASK_ADDRESS", cluster.scheduler_address)
        get_settings.cache_clear()
        runner = chunk_task_runner(max_workers=4)
        assert type(runner).__name__ == "DaskTaskRunner"
        run = campaign.with_options(task_runner=runner)
        result = run(name="dask-spring", segment="all", template="spring_sale", chunk_size=8,
                     data={"offer": "20% off", "code": "SPRING20", "ends_on": "Sunday",
                           "shop_url": "https://example.com/pricing"})

    assert result["chunks"] == 5
    per_address = Counter(r.address for r in fake_sendgrid.accepted())
    assert set(per_address.values()) == {1}  # nobody twice
    assert len(per_address) == 35  # everyone but the capped customers
    assert not {f"c{i}@example.com" for i in range(5)} & set(per_address)
    rows = ledger("campaign:dask-spring")
    assert Counter(m.status for m in rows.values()) == {"sent": 35, "suppressed": 5}
