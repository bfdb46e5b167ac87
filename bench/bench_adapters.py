"""Adapter throughput against the local fake providers, in one process:
``python -m bench.bench_adapters [--messages 400] [--latency-ms 5] [--concurrency 8]``.

For each provider, sends the same messages twice: once with a plain sequential loop over the
SDK (one client, one request at a time: what a naive integration does) and once through our
adapter (bounded thread pool, one client per worker thread, kept-alive connections). The fake
adds ``--latency-ms`` to every answer to stand in for the network round trip to the provider.
Reports messages per second for both and the ratio adapter / plain loop, all measured in this run.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import tweepy
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import CustomArg, Mail
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client as TwilioClient

from channels.base import OutboundMessage
from channels.sendgrid.adapter import SendGridEmailAdapter
from channels.twilio.adapter import TwilioSmsAdapter
from channels.x.adapter import X_HOSTS, RoutingAdapter, XSocialAdapter
from tests.support.fakes import FakeSendGrid, FakeTwilio, FakeX

X_CREDENTIALS = dict(consumer_key="ck", consumer_secret="cs", access_token="at", access_token_secret="ats")


def _messages(channel: str, n: int) -> list[OutboundMessage]:
    def address(i: int) -> str:
        return {"email": f"c{i}@example.com", "sms": f"+1415{i:07d}", "social": str(10_000 + i)}[channel]

    return [
        OutboundMessage(
            message_id=i, channel=channel, to=address(i), body=f"Message {i}", subject="Benchmark"
        )
        for i in range(1, n + 1)
    ]


def _rate(n: int, run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return n / (time.perf_counter() - start)


def _adapter_rate(adapter, messages: list[OutboundMessage]) -> float:
    def run() -> None:
        size = adapter.limits.max_batch
        for i in range(0, len(messages), size):
            results = adapter.send(messages[i : i + size])
            failed = [r for r in results if not r.ok]
            if failed:
                raise RuntimeError(f"{len(failed)} messages failed, e.g. {failed[0].error}")

    try:
        return _rate(len(messages), run)
    finally:
        adapter.close()


def bench_sendgrid(messages: list[OutboundMessage], latency: float, workers: int) -> dict[str, float]:
    with FakeSendGrid(latency=latency) as fake:
        sg = SendGridAPIClient(api_key=fake.api_key, host=fake.url)
        sg.client.timeout = 10

        def plain() -> None:
            for m in messages:
                mail = Mail("news@example.com", m.to, m.subject, m.body)
                mail.custom_arg = CustomArg("message_id", str(m.message_id))
                sg.send(mail)

        common = dict(api_key=fake.api_key, host=fake.url, concurrency=workers, timeout=10)
        return {
            "plain SDK loop": _rate(len(messages), plain),
            "adapter, SDK transport (no keep-alive)": _adapter_rate(
                SendGridEmailAdapter(**common, keep_alive=False), messages
            ),
            "adapter": _adapter_rate(SendGridEmailAdapter(**common), messages),
        }


def bench_twilio(messages: list[OutboundMessage], latency: float, workers: int) -> dict[str, float]:
    with FakeTwilio(latency=latency) as fake:
        client = TwilioClient(fake.account_sid, fake.auth_token, http_client=TwilioHttpClient(timeout=10))
        client.api.base_url = fake.url

        def plain() -> None:
            for m in messages:
                client.messages.create(to=m.to, from_="+15550001111", body=m.body)

        adapter = TwilioSmsAdapter(
            account_sid=fake.account_sid,
            auth_token=fake.auth_token,
            from_number="+15550001111",
            base_url=fake.url,
            concurrency=workers,
            timeout=10,
        )
        return {"plain SDK loop": _rate(len(messages), plain), "adapter": _adapter_rate(adapter, messages)}


def bench_x(messages: list[OutboundMessage], latency: float, workers: int) -> dict[str, float]:
    with FakeX(latency=latency) as fake:
        client = tweepy.Client(**X_CREDENTIALS)
        for host in X_HOSTS:
            client.session.mount(host, RoutingAdapter(fake.url, 10))

        def plain() -> None:
            for m in messages:
                client.create_direct_message(participant_id=m.to, text=m.body, user_auth=True)

        adapter = XSocialAdapter(**X_CREDENTIALS, base_url=fake.url, concurrency=workers, timeout=10)
        return {"plain SDK loop": _rate(len(messages), plain), "adapter": _adapter_rate(adapter, messages)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--latency-ms", type=float, default=5.0, help="added by the fakes to each answer")
    parser.add_argument("--concurrency", type=int, default=8, help="adapter worker threads")
    args = parser.parse_args()
    latency = args.latency_ms / 1000
    print(
        f"{args.messages} messages per run, fake provider latency {args.latency_ms:g} ms, "
        f"adapter concurrency {args.concurrency}"
    )
    for name, bench, channel in (
        ("sendgrid", bench_sendgrid, "email"),
        ("twilio", bench_twilio, "sms"),
        ("x", bench_x, "social"),
    ):
        rates = bench(_messages(channel, args.messages), latency, args.concurrency)
        baseline = rates["plain SDK loop"]
        for label, rate in rates.items():
            print(f"  {name:9} {label:40} {rate:8.0f} msg/s   x{rate / baseline:5.1f} vs plain loop")


if __name__ == "__main__":
    main()
