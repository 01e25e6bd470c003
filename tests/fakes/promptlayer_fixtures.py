"""Pytest fixtures for ``FakePromptLayerServer`` (load with ``pytest_plugins``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.promptlayer_server import FakePromptLayerServer


@pytest.fixture(scope="session")
def fake_promptlayer_server() -> Iterator[FakePromptLayerServer]:
    """One fake PromptLayer for the whole run."""
    with FakePromptLayerServer() as server:
        yield server


@pytest.fixture
def fake_promptlayer(
    fake_promptlayer_server: FakePromptLayerServer,
) -> Iterator[FakePromptLayerServer]:
    """The session server, emptied: no prompt, log, fault or key leaks in from earlier tests
    (nor, afterwards, a background retry of this test's runs into the next test)."""
    from pl_magic.runlog.promptlayer import stop_all

    fake_promptlayer_server.reset()
    yield fake_promptlayer_server
    stop_all(wait_s=20)


@pytest.fixture
def promptlayer_env(
    fake_promptlayer: FakePromptLayerServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """PROMPTLAYER_API_KEY (a fresh secret the fake accepts) and PROMPTLAYER_BASE_URL at the
    fake; backoff and sync intervals tiny so retry tests take milliseconds. Yields the key."""
    from tests.conftest import new_secret

    key = new_secret("pl_test_")
    fake_promptlayer.api_keys = {key}
    monkeypatch.setenv("PROMPTLAYER_API_KEY", key)
    monkeypatch.setenv("PROMPTLAYER_BASE_URL", fake_promptlayer.url)
    monkeypatch.setenv("PL_MAGIC_PROMPTLAYER_BACKOFF", "0.001")
    monkeypatch.setenv("PL_MAGIC_SYNC_INTERVAL", "0")
    yield key
