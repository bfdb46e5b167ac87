"""``GET /healthz``: a load balancer's probe sees the web app unhealthy while the ledger cannot be read."""

from __future__ import annotations

from orchestrator.settings import get_settings
from tests.support.web import web_fixture  # noqa: F401


def test_healthz_is_healthy_only_while_the_ledger_can_be_read(web, sqlite_url, monkeypatch, tmp_path):
    answer = web.client.get("/healthz")
    assert answer.status_code == 200 and answer.json() == {"ok": True, "database": "ok"}

    for url in ("postgresql://nobody@127.0.0.1:1/gone",  # no server there
                f"sqlite:///{tmp_path / 'never-initialised.db'}"):  # no schema: `orchestrator init` never ran
        monkeypatch.setenv("ORCH_DATABASE_URL", url)
        get_settings.cache_clear()
        answer = web.client.get("/healthz")
        assert answer.status_code == 503, url
        assert answer.json() == {"ok": False, "database": "unavailable"}
