"""Local fake provider servers (SendGrid, Twilio, X) that the real SDKs are pointed at.

Used by the adapter tests, the flow tests and the benchmarks: each fake speaks its
provider's HTTP API, records every request and injects faults on demand.
"""

from tests.support.fakes.base import TRANSIENT_FAULTS, FakeProvider, Fault, RecordedRequest
from tests.support.fakes.sendgrid import FakeSendGrid
from tests.support.fakes.twilio import FakeTwilio
from tests.support.fakes.x import FakeX

__all__ = [
    "TRANSIENT_FAULTS", "Fault", "FakeProvider", "FakeSendGrid", "FakeTwilio", "FakeX", "RecordedRequest",
]
