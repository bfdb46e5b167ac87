"""Pytest fixtures that run each fake provider for one test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fakes.sendgrid import FakeSendGrid
from tests.support.fakes.twilio import FakeTwilio
from tests.support.fakes.x import FakeX


@pytest.fixture
def fake_sendgrid() -> Iterator[FakeSendGrid]:
    with FakeSendGrid() as fake:
        yield fake


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture
def fake_x() -> Iterator[FakeX]:
    with FakeX() as fake:
        yield fake
