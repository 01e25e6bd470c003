"""Pytest fixtures for ``FakeProviderServer`` (load with ``pytest_plugins``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.provider_server import FakeProviderServer


@pytest.fixture(scope="session")
def fake_provider_server() -> Iterator[FakeProviderServer]:
    """One fake provider server for the whole test run (starting one per test is wasteful)."""
    with FakeProviderServer() as server:
        yield server


@pytest.fixture
def fake_provider(fake_provider_server: FakeProviderServer) -> FakeProviderServer:
    """The session server, reset so no log, queued fault or knob leaks in from earlier tests."""
    fake_provider_server.reset()
    return fake_provider_server
