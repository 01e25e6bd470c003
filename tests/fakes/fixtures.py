"""Pytest fixtures for ``FakeProviderServer`` (load with ``pytest_plugins``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.provider_server import FakeProviderServer
from tests.fakes.service_account import write_fake_service_account


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


# -- provider environments ---------------------------------------------------------------------
# Each sets only the environment variables a user would set (credentials, and the SDKs' own
# base-URL variables pointed at the fake server), and yields the credential the fake server
# should see. Keys come from ``new_secret`` so the final audit can prove none reached SQLite.

VERTEX_PROJECT = "p1"
VERTEX_GEMINI_LOCATION = "us-central1"
VERTEX_CLAUDE_REGION = "us-east5"
#: The bearer token the fake /token endpoint hands out for the fake service account.
FAKE_ACCESS_TOKEN = "ya29.fake"


@pytest.fixture(scope="session")
def fake_service_account(
    fake_provider_server: FakeProviderServer, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A service-account JSON whose token_uri is the fake server (one RSA key per run)."""
    path = tmp_path_factory.mktemp("gcp") / "service-account.json"
    return write_fake_service_account(path, fake_provider_server.token_uri, VERTEX_PROJECT)


@pytest.fixture
def fast_genai_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """genai ignores retry-after: make its backoff milliseconds instead of half-seconds."""
    monkeypatch.setattr("pl_magic.providers.google.RETRY_INITIAL_DELAY_S", 0.01)
    monkeypatch.setattr("pl_magic.providers.google.RETRY_MAX_DELAY_S", 0.05)


@pytest.fixture
def not_on_google_cloud(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials must come from GOOGLE_APPLICATION_CREDENTIALS, even on a Google VM."""
    monkeypatch.setattr("pl_magic.providers.google_auth._on_google_cloud", lambda: False)


@pytest.fixture
def anthropic_env(fake_provider: FakeProviderServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """ANTHROPIC_API_KEY and ANTHROPIC_BASE_URL (read by the SDK); returns the key."""
    from tests.conftest import new_secret

    key = new_secret("sk-ant-test-")
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_provider.anthropic_base_url)
    return key


@pytest.fixture
def gemini_env(
    fake_provider: FakeProviderServer, monkeypatch: pytest.MonkeyPatch, fast_genai_retries: None
) -> str:
    """GOOGLE_API_KEY and GOOGLE_GEMINI_BASE_URL (read by genai); returns the key."""
    from tests.conftest import new_secret

    key = new_secret("AIza-test-")
    monkeypatch.setenv("GOOGLE_API_KEY", key)
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", fake_provider.gemini_base_url)
    return key


@pytest.fixture
def vertex_env(
    fake_provider: FakeProviderServer,
    fake_service_account: Path,
    monkeypatch: pytest.MonkeyPatch,
    fast_genai_retries: None,
    not_on_google_cloud: None,
) -> str:
    """The ``google`` provider on Vertex AI (GOOGLE_GENAI_USE_VERTEXAI=true); returns the
    bearer token the fake server should see."""
    monkeypatch.setenv("GOOGLE_GENAI_USE_VERTEXAI", "true")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", VERTEX_PROJECT)
    monkeypatch.setenv("GOOGLE_CLOUD_LOCATION", VERTEX_GEMINI_LOCATION)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(fake_service_account))
    monkeypatch.setenv("GOOGLE_VERTEX_BASE_URL", fake_provider.vertex_base_url)
    return FAKE_ACCESS_TOKEN


@pytest.fixture
def anthropic_vertex_env(
    fake_provider: FakeProviderServer,
    fake_service_account: Path,
    monkeypatch: pytest.MonkeyPatch,
    not_on_google_cloud: None,
) -> str:
    """Claude on Vertex AI (``vertexai`` provider); returns the bearer token to expect."""
    monkeypatch.setenv("ANTHROPIC_VERTEX_PROJECT_ID", VERTEX_PROJECT)
    monkeypatch.setenv("CLOUD_ML_REGION", VERTEX_CLAUDE_REGION)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(fake_service_account))
    monkeypatch.setenv("ANTHROPIC_VERTEX_BASE_URL", fake_provider.anthropic_vertex_base_url)
    return FAKE_ACCESS_TOKEN
