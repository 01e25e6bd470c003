"""The httpx2 PromptLayer client: key placement, trailing slashes, timeouts, retries."""

from __future__ import annotations

import socket
import time

import pytest

from pl_magic.core.errors import (
    ConfigurationError,
    PromptLayerAuthError,
    PromptLayerError,
    PromptLayerUnavailableError,
)
from pl_magic.core.promptlayer_api import PromptLayerAPI, Settings
from tests.conftest import new_secret
from tests.helpers import chat, model


def _api(key, url, **settings):
    api = PromptLayerAPI(key, url, Settings(**{"backoff_s": 0.001, **settings}))
    api.sleeps = []  # type: ignore[attr-defined]

    def record(seconds):
        api.sleeps.append(seconds)  # type: ignore[attr-defined]

    api.sleep = record
    return api


def _dead_url() -> str:
    """A URL nothing listens on (bound, then closed: connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def seeded(promptlayer_env, fake_promptlayer):
    fake_promptlayer.add_prompt("greet", chat(("user", "hi {name}")), model(), labels=["prod"])
    return fake_promptlayer


def test_key_goes_where_promptlayer_expects_it(promptlayer_env, seeded):
    api = _api(promptlayer_env, seeded.url)
    record = api.get_template("greet", {"label": "prod"})
    api.list_templates()
    api.template_labels(record["id"])
    answer = api.track_request(
        {
            "function_name": "f",
            "provider_type": "openai",
            "args": [],
            "kwargs": {},
            "request_start_time": 1.0,
            "request_end_time": 2.0,
        }
    )
    api.track_score(answer["request_id"], 90)
    api.track_metadata(answer["request_id"], {"a": "b"})
    group = api.create_group()
    api.track_group(answer["request_id"], group)

    placement = {
        (r.kind, r.header_key is not None, r.body_key is not None) for r in seeded.requests
    }
    assert placement == {
        ("template.get", True, True),
        ("templates.list", True, False),
        ("template.labels", True, False),
        ("track.request", False, True),
        ("track.score", False, True),
        ("track.metadata", False, True),
        ("group.create", False, True),
        ("track.group", False, True),
    }
    assert all(promptlayer_env in (r.header_key, r.body_key) for r in seeded.requests)
    assert seeded.requests[0].headers["user-agent"].startswith("pl_magic/")


@pytest.mark.parametrize("suffix", ["/", "//"])
def test_a_trailing_slash_in_the_base_url_works(promptlayer_env, seeded, suffix):
    api = _api(promptlayer_env, seeded.url + suffix)
    assert api.get_template("greet", {})["prompt_name"] == "greet"
    assert [r.path for r in seeded.requests] == ["/prompt-templates/greet"]


def test_names_are_quoted_in_the_path(promptlayer_env, fake_promptlayer):
    fake_promptlayer.add_prompt("a/b:c d", chat(("user", "x")), model())
    api = _api(promptlayer_env, fake_promptlayer.url)
    assert api.get_template("a/b:c d", {})["prompt_name"] == "a/b:c d"
    assert fake_promptlayer.requests[0].path == "/prompt-templates/a%2Fb%3Ac%20d"


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_429_and_5xx_are_retried_with_backoff(promptlayer_env, seeded, status):
    seeded.fail_next("template.get", status, times=2)
    api = _api(promptlayer_env, seeded.url, backoff_s=0.25)
    assert api.get_template("greet", {})["prompt_name"] == "greet"
    assert len(seeded.requests_for("template.get")) == 3
    assert api.sleeps == [0.25, 0.5]  # doubling; the fake's retry-after: 0 is below it


def test_retry_after_longer_than_the_backoff_is_honoured(promptlayer_env, seeded):
    seeded.fail_next("template.get", 429)
    api = _api(promptlayer_env, seeded.url, backoff_s=0.01)

    import httpx2

    real = api._http()
    original = real.send

    def send(request, **kw):  # the fake says retry-after: 0; make it 2 s for this test
        response = original(request, **kw)
        if response.status_code == 429:
            response.headers["retry-after"] = "2"
        return response

    real.send = send  # type: ignore[method-assign]
    assert isinstance(real, httpx2.Client)
    api.get_template("greet", {})
    assert api.sleeps == [2.0]


def test_retries_stop_after_the_last_attempt(promptlayer_env, seeded):
    seeded.fail_next("template.get", 503, times=10)
    api = _api(promptlayer_env, seeded.url, retries=2)
    with pytest.raises(PromptLayerUnavailableError, match="HTTP 503 fetching prompt 'greet'"):
        api.get_template("greet", {})
    assert len(seeded.requests_for("template.get")) == 3
    assert len(api.sleeps) == 2


@pytest.mark.parametrize("status", [400, 404, 409, 422])
def test_4xx_are_not_retried(promptlayer_env, seeded, status):
    seeded.fail_next("template.get", status, times=5)
    api = _api(promptlayer_env, seeded.url)
    with pytest.raises(PromptLayerError) as info:
        api.get_template("greet", {})
    assert info.value.status_code == status
    assert not isinstance(info.value, PromptLayerUnavailableError)
    assert len(seeded.requests_for("template.get")) == 1 and api.sleeps == []


def test_a_bad_key_is_one_line_without_the_key(promptlayer_env, seeded):
    bad = new_secret("pl_bad_")
    api = _api(bad, seeded.url)
    with pytest.raises(PromptLayerAuthError) as info:
        api.get_template("greet", {})
    message = str(info.value)
    assert "HTTP 401" in message and "PROMPTLAYER_API_KEY" in message
    assert bad not in message and "\n" not in message
    assert len(seeded.requests) == 1  # never retried
    assert bad not in repr(api)


def test_connection_errors_are_retried_then_one_line(promptlayer_env):
    api = _api(promptlayer_env, _dead_url())
    with pytest.raises(PromptLayerUnavailableError) as info:
        api.get_template("greet", {})
    assert "unreachable" in str(info.value) and "PROMPTLAYER_BASE_URL" in str(info.value)
    assert len(api.sleeps) == 2


def test_a_dropped_connection_is_retried(promptlayer_env, seeded):
    seeded.fail_next("template.get", "drop")
    api = _api(promptlayer_env, seeded.url)
    assert api.get_template("greet", {})["prompt_name"] == "greet"
    assert len(seeded.requests_for("template.get")) == 2


def test_every_call_has_a_timeout(promptlayer_env, seeded):
    seeded.hang_s = 2.0
    seeded.fail_next("template.get", "hang", times=5)
    api = _api(promptlayer_env, seeded.url, timeout_s=0.2, retries=1)
    started = time.monotonic()
    with pytest.raises(PromptLayerUnavailableError, match="timed out"):
        api.get_template("greet", {})
    assert time.monotonic() - started < 1.5  # 2 attempts of 0.2 s, not 2 x 2 s


def test_a_budget_bounds_the_whole_call_retries_included(promptlayer_env, seeded):
    seeded.hang_s = 2.0
    seeded.fail_next("track.request", "hang", times=5)
    api = _api(promptlayer_env, seeded.url, retries=5)
    started = time.monotonic()
    with pytest.raises(PromptLayerUnavailableError):
        api.track_request({"function_name": "f"}, budget_s=0.3)
    assert time.monotonic() - started < 1.0


def test_an_answer_that_is_not_json_says_so(promptlayer_env, seeded):
    seeded.fail_next("template.get", "html")
    with pytest.raises(PromptLayerError, match=r"not JSON .*PROMPTLAYER_BASE_URL"):
        _api(promptlayer_env, seeded.url).get_template("greet", {})


def test_base_url_and_key_come_from_the_environment(promptlayer_env, fake_promptlayer, monkeypatch):
    api = PromptLayerAPI()
    assert api.base_url == fake_promptlayer.url
    monkeypatch.delenv("PROMPTLAYER_API_KEY")
    with pytest.raises(ConfigurationError, match="PROMPTLAYER_API_KEY"):
        PromptLayerAPI()
    monkeypatch.delenv("PROMPTLAYER_BASE_URL")
    assert PromptLayerAPI("k").base_url == "https://api.promptlayer.com"
    with pytest.raises(ConfigurationError, match="http"):
        PromptLayerAPI("k", "api.promptlayer.com")


def test_settings_from_the_environment(monkeypatch):
    monkeypatch.setenv("PL_MAGIC_PROMPTLAYER_TIMEOUT", "7")
    monkeypatch.setenv("PL_MAGIC_PROMPTLAYER_TRACK_TIMEOUT", "0.5")
    monkeypatch.setenv("PL_MAGIC_PROMPTLAYER_RETRIES", "4")
    monkeypatch.setenv("PL_MAGIC_PROMPTLAYER_BACKOFF", "0.1")
    settings = Settings.from_env()
    assert (settings.timeout_s, settings.track_timeout_s, settings.retries, settings.backoff_s) == (
        7.0,
        0.5,
        4,
        0.1,
    )
