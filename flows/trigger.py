"""Starting an outage notice the moment support asks: the flow run is created and executed at once
by the process that received the trigger (the web app for ``POST /incidents``).

Why this and not a deployment picked up by a worker, a served flow or an automation: each of those
waits for a poll (a worker polls its pool about every 10 s) and then starts a process that imports
the project (seconds on a busy machine), while the web app already has everything loaded (see
``warm_up``). The run is created on the Prefect server first, so it appears in the UI with its
logs and artifacts like any other; a retried trigger carries the same idempotency key, gets the
same flow run back from the server and does not start it again (unless that run ended unfinished:
see ``_run_for``).

``orchestrator outage notify`` hands its trigger to this same path when a running web app is
configured (``ORCH_SERVICE_URL``; ``orchestrator.cli.service``): a new process that imports Prefect
and the project and then runs the flow itself took 2.5-4 s to its first message on a quiet machine
(35 s at a load of 15), while the handoff costs the command line's start without Prefect (about
0.5 s of CPU) plus one request. Without a service the command runs the flow in its own process.

What the first trigger would otherwise pay is loaded by ``warm_up`` when the web app starts, and
the outage flow's first chunk is small (``flows.outage.FIRST_CHUNK_SIZE``), so its first messages
are decided, rendered and sent while the rest of the audience is still being reserved.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from typing import Any

from flows.garbage_collection import loading_for_good

log = logging.getLogger(__name__)

_started: dict[str, str] = {}  # idempotency key -> flow run id, for runs this process started
_flow_ids: dict[str | None, Any] = {}  # Prefect API URL -> the outage-notice flow's id there
_lock = threading.Lock()
_UNFINISHED = {"FAILED", "CRASHED", "CANCELLED"}  # run states a repeated trigger starts again from
MAX_RESTARTS = 20  # runs one trigger may start after unfinished ones


def idempotency_key(parameters: dict[str, Any]) -> str:
    """The same trigger (same parameters) gives the same key: ``incident-<sha256>``."""
    canonical = repr(sorted(parameters.items())).encode()
    return f"incident-{hashlib.sha256(canonical).hexdigest()[:32]}"


def start_outage_notice(parameters: dict[str, Any], api_url: str | None) -> str:
    """Creates the outage notice's flow run (once per key) and runs it in a thread; returns its id.

    ``api_url``: the Prefect server the run is recorded on; without one, Prefect's local temporary
    server is used and the run id is only known to this process.
    """
    from flows.outage import outage_notice
    from orchestrator.pacing import urgency

    key = idempotency_key(parameters)
    with _lock:
        if key in _started:
            return _started[key]
        # Campaigns running meanwhile stop between chunks while the run is created and started (on a busy
        # machine that took seconds); the database write goes on beside the request to the server.
        urgency.announce_soon()
        flow_run, created = _run_for(outage_notice, parameters, key, api_url)
        run_id = str(flow_run.id)
        _started[key] = run_id
    if created:
        threading.Thread(target=_execute, args=(outage_notice, flow_run, parameters, api_url, key),
                         name=f"outage-notice-{parameters.get('incident_id')}", daemon=True).start()
    else:
        log.info("outage notice for this trigger already exists: flow run %s", run_id)
    return run_id


def warm_up(api_url: str | None) -> None:
    """Loads what an outage notice needs (flows and Prefect's engines, policy, templates, adapters, the
    API client, the database and the decision's queries) so the first trigger does not pay for it."""
    try:
        with loading_for_good():
            import prefect.flow_engine  # noqa: F401 - imported by the first run otherwise
            import prefect.task_engine  # noqa: F401

            import flows.outage  # noqa: F401
            from channels.channel_set import installed_channels
            from flows.pipeline import audience_chunks
            from orchestrator.outage_notice import TOPIC
            from orchestrator.policy.plan import plan_audience
            from orchestrator.templating.environment import get_template_set
            from orchestrator.templating.lengths import x_weighted_length

            templates = get_template_set()
            for name in templates.env.list_templates():  # compiled once per process (about 0.1 s)
                templates.compile(name)
            # The update's public post is measured by twitter-text, whose loading (0.4 s) would
            # otherwise share the first notice's time with its first messages.
            x_weighted_length("")
            installed_channels()  # loads every adapter that declares a channel
        # A dry run for one customer (writes nothing): loads the policy, opens the database and
        # prepares the decision's queries.
        plan_audience(None, TOPIC, "outage_notice", customer_ids=next(audience_chunks("all", 1), []))
        with _settings(api_url):
            from prefect.client.orchestration import get_client
            from prefect.events import emit_event

            with get_client(sync_client=True) as client:
                client.hello()
                _flow_id(client, flows.outage.outage_notice, api_url)
            # A flow run's first event opens the events connection: open it now.
            emit_event(event="orchestrator.web.ready", resource={"prefect.resource.id": "orchestrator.web"})
    except Exception:  # warming up is an optimisation: the first trigger will say what is wrong
        log.warning("warming up for outage notices failed", exc_info=True)


def _run_for(flow: Any, parameters: dict[str, Any], key: str, api_url: str | None) -> tuple[Any, bool]:
    """The trigger's run: the one its key names on the server, unless that one ended unfinished
    (failed, crashed, cancelled: the database was down, say). Then the trigger sent again starts a
    run of its own, keyed after the one that failed, so retries of it still share one run; the
    ledger notifies nobody twice whatever ran before."""
    for _ in range(MAX_RESTARTS + 1):
        flow_run, created = _create_run(flow, parameters, key, api_url)
        state = getattr(flow_run, "state", None)
        if created or state is None or state.type.value not in _UNFINISHED:
            break
        key = f"{key}:after:{flow_run.id}"
    return flow_run, created


def _create_run(flow: Any, parameters: dict[str, Any], key: str, api_url: str | None) -> tuple[Any, bool]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import FlowRunCreate
    from prefect.client.schemas.objects import FlowRun, FlowRunPolicy
    from prefect.states import Pending, to_state_create

    from flows.outage import run_tags

    name = f"outage-{parameters['incident_id']}-{parameters['status']}".lower()

    def create(client: Any) -> Any:
        run = FlowRunCreate(flow_id=_flow_id(client, flow, api_url), flow_version=flow.version, name=name,
                            parameters=parameters, idempotency_key=key, state=to_state_create(Pending()),
                            # created with its tags, the run does not stop to add them
                            tags=run_tags(parameters["incident_id"], parameters.get("severity", "major")),
                            empirical_policy=FlowRunPolicy(retries=flow.retries,
                                                           retry_delay=int(flow.retry_delay_seconds or 0)))
        return client.request("POST", "/flow_runs/", json=run.model_dump(mode="json", exclude_unset=True))

    with _settings(api_url), get_client(sync_client=True) as client:
        try:
            response = create(client)
        except Exception:  # the flow id this process remembers may be gone (a new server database)
            _flow_ids.pop(api_url, None)
            response = create(client)
    flow_run = FlowRun.model_validate(response.json())
    flow_run.parameters = parameters
    return flow_run, response.status_code == 201  # 200: the server already had a run with this key


def _flow_id(client: Any, flow: Any, api_url: str | None) -> Any:
    """The flow's id on the server (registered once per process and server: one round trip less per
    trigger)."""
    from prefect.client.schemas.actions import FlowCreate
    from prefect.client.schemas.objects import Flow

    if api_url not in _flow_ids:
        response = client.request("POST", "/flows/", json=FlowCreate(name=flow.name).model_dump(mode="json"))
        _flow_ids[api_url] = Flow.model_validate(response.json()).id
    return _flow_ids[api_url]


def _execute(flow: Any, flow_run: Any, parameters: dict[str, Any], api_url: str | None, key: str) -> None:
    from prefect.flow_engine import run_flow

    try:
        with _settings(api_url):
            run_flow(flow, flow_run=flow_run, parameters=parameters)
    except Exception:
        log.exception("outage notice %s for incident %s failed", flow_run.id, parameters.get("incident_id"))
        with _lock:  # the trigger sent again asks the server, which starts a run after this one
            _started.pop(key, None)


def _settings(api_url: str | None) -> Any:
    import contextlib

    if not api_url:
        return contextlib.nullcontext()
    from prefect.settings import PREFECT_API_URL, temporary_settings

    return temporary_settings({PREFECT_API_URL: api_url})
