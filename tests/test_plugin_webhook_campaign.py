"""The proof that a package of your own adds a channel with no change to the core: the webhook
channel in tests/plugins/webhook_channel (installed by `make test` as its own distribution) is
imported as `contact.webhook`, routed by a policy and used by a real campaign flow."""

from __future__ import annotations

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from channels.channel_set import installed_channels
from channels.registry import adapter_for
from flows.campaign import campaign
from orchestrator.customer_import import import_customers
from orchestrator.models import MessageStatus
from orchestrator.settings import REPO_ROOT, get_settings
from tests.support.flow_world import MARKETING_FACTS, ledger, use_fake_providers


class Receiver(ThreadingHTTPServer):
    """Customers' webhook endpoints: records each JSON body by path; ``/gone`` answers 410."""

    def __init__(self) -> None:
        self.received: dict[str, list[dict]] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.received.setdefault(self.path, []).append(body)
                self.send_response(410 if self.path == "/gone" else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def receiver():
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_the_out_of_tree_channel_is_installed_as_a_package_of_its_own():
    spec = installed_channels()["webhook"]
    assert type(adapter_for("webhook")).__module__ == "webhook_channel"  # not part of this repository
    assert spec.address.name == "url" and spec.cost == 0.5


def test_a_campaign_goes_out_through_the_webhook_channel(prefect_harness, sqlite_url, receiver, tmp_path,
                                                        monkeypatch, fake_sendgrid):
    # The policy and the templates are the user's files: the core is not touched.
    policy = {"topics": {"marketing": {"priority": 10, "channels": ["webhook", "email"],
                                       "tone": "professional", "when_capped": "fallback"}},
              "caps": [{"name": "webhook-1d", "max": 1, "window": "1d", "channel": "webhook"}]}
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy))
    templates = tmp_path / "templates"
    shutil.copytree(REPO_ROOT / "templates", templates)
    sale = templates / "messages" / "spring_sale"
    meta = yaml.safe_load((sale / "message.yaml").read_text())
    meta["channels"].append("webhook")
    (sale / "message.yaml").write_text(yaml.safe_dump(meta))
    (sale / "professional" / "webhook.txt").write_text(
        "{{ data.offer }} until {{ data.ends_on }} with code {{ data.code }}: {{ data.shop_url }}\n")
    monkeypatch.setenv("ORCH_POLICY_FILE", str(tmp_path / "policy.yaml"))
    monkeypatch.setenv("ORCH_TEMPLATES_DIR", str(templates))
    use_fake_providers(monkeypatch, sendgrid=fake_sendgrid)
    get_settings.cache_clear()

    customers = tmp_path / "customers.csv"
    customers.write_text(
        "external_id,email,contact.webhook\n"
        f"hooked,hooked@example.com,{receiver.url}/hooked\n"
        f"gone,gone@example.com,{receiver.url}/gone\n"
        "mail,mail@example.com,\n"
        "bad,bad@example.com,ftp://example.com/x\n",
        encoding="utf-8",
    )
    report = import_customers(customers)
    assert report.imported == 3 and [(r.line, r.field) for r in report.rejected] == [(5, "contact.webhook")]

    state = campaign(name="hooks", segment="all", template="spring_sale", data=MARKETING_FACTS, chunk_size=2,
                     return_state=True)
    assert state.is_completed()

    [posted] = receiver.received["/hooked"]
    assert posted["topic"] == "marketing" and posted["template"] == "spring_sale"
    assert posted["text"] == ("20% off every annual plan until Sunday 30 March with code SPRING20: "
                              "https://example.com/pricing")
    rows = sorted(ledger("campaign:hooks").values(), key=lambda m: m.id)
    by = {}
    for m in rows:
        by.setdefault(m.customer_id, []).append((m.channel, m.status, m.reason_codes[-1]))
    assert sorted(by.values()) == sorted([
        [("webhook", MessageStatus.sent, "route:webhook")],
        # The endpoint is gone (410): a permanent failure, then exactly one fallback to email.
        [("webhook", MessageStatus.failed, "permanent:invalid_address"), ("email", MessageStatus.sent,
                                                                         "route:email")],
        [("email", MessageStatus.sent, "route:email")],
    ])
    assert len(receiver.received["/gone"]) == 1
    assert sorted(r.address for r in fake_sendgrid.requests) == ["gone@example.com", "mail@example.com"]
