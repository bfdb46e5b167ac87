"""Template rendering throughput, in one process: ``python -m bench.bench_templates [--messages 5000]``.

For each channel of a marketing message and an outage notice, renders ``--messages`` copies for
different customers: once through ``render()`` (one sandboxed environment, compiled templates
cached) and once with ``build_context()`` included (two signed links per customer). As a
reference measured in the same run, the same SMS rendered by compiling its template on every
call (what a renderer without a template cache would do). Reports renders per second and ratios.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from jinja2 import DictLoader
from jinja2.sandbox import ImmutableSandboxedEnvironment

from orchestrator.templating import build_context, message_info, render
from orchestrator.templating.catalog import get_catalog


def _rate(n: int, run: Callable[[int], object]) -> float:
    start = time.perf_counter()
    for i in range(n):
        run(i)
    return n / (time.perf_counter() - start)


def _measure(message: str, variant: str, customers: list[dict], facts: dict,
             count: int) -> tuple[float, float]:
    """(render only, build_context + render) per second for one message on one channel variant."""
    topic = message_info(message).topic
    channel, _, kind = variant.partition(":")
    contexts = [build_context(c, facts, topic=topic) for c in customers[:count]]
    only_render = _rate(count, lambda i: render(message, tone=None, channel=channel, kind=kind or None,
                                                context=contexts[i]))
    with_context = _rate(count, lambda i: render(message, tone=None, channel=channel, kind=kind or None,
                                                 context=build_context(customers[i], facts, topic=topic)))
    return only_render, with_context


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    n = parser.parse_args().messages
    catalog = get_catalog()
    sample = catalog.sample_data
    customers = [{**sample["customer"], "id": i + 1, "name": f"Customer {i} Example"} for i in range(n)]

    print(f"{'message':<16} {'channel':<12} {'render/s':>10} {'context+render/s':>17}")
    rates: dict[tuple[str, str], float] = {}
    for message in ("spring_sale", "outage_notice"):
        for variant in message_info(message).variants:
            count = n if variant != "social:post" else max(1, n // 50)  # a post goes out once per run
            rendered, with_context = _measure(message, variant, customers, sample["messages"][message], count)
            rates[(message, variant)] = rendered
            print(f"{message:<16} {variant:<12} {rendered:>10.0f} {with_context:>17.0f}")

    uncached_env = ImmutableSandboxedEnvironment(loader=DictLoader(catalog.sources), cache_size=0)
    context = {**build_context(customers[0], sample["messages"]["spring_sale"], topic="marketing"),
               "message": {"marketing": True}}
    sms_template = "messages/spring_sale/professional/sms.txt"
    uncached = _rate(max(1, n // 10), lambda i: uncached_env.get_template(sms_template).render(context))
    sms, email = rates[("spring_sale", "sms")], rates[("spring_sale", "email")]
    print(f"\nSMS compiled on every call: {uncached:.0f}/s; render() with cached templates is "
          f"{sms / uncached:.0f}x faster")
    print(f"an email (subject + HTML + text) costs {sms / email:.1f}x an SMS")


if __name__ == "__main__":
    main()
