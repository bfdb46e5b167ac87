"""One temporary Prefect server for the whole test session (starting one takes ~10 s).

Tests that need the engine (flow runs, artifacts, logs sent to the API) request the
``prefect_harness`` fixture explicitly; unit tests call ``flow.fn()`` / ``task.fn()`` instead.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with pytest.MonkeyPatch.context() as env:
        # The server's telemetry heartbeat only adds lock contention on its SQLite file.
        env.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        with prefect_test_harness(server_startup_timeout=60):
            yield
