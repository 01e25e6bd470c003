"""A template cannot route a request (or its key) around the base-URL rule, and a PromptLayer
key never shows in an error, whatever its spelling.

Every test drives the official SDKs (or pl_magic's PromptLayer client) over HTTP against the
fake servers on 127.0.0.1 and reads what reached them.
"""

from __future__ import annotations

import copy
import traceback
from typing import Any
from urllib.parse import quote

import pytest

import pl_magic
from pl_magic.core import errors
from tests import conftest
from tests.fakes.provider_server import PROVIDER_KINDS, FakeProviderServer
from tests.helpers import chat, model, publish


def _provider_requests(server: Any) -> list[Any]:
    return [r for r in server.requests if r.kind in PROVIDER_KINDS]


def _refused(prompt: str, parameter: str, **kwargs: Any) -> str:
    with pytest.raises(errors.InvalidTemplateError) as info:
        pl_magic.run(prompt, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert repr(parameter) in message and "provider_base_url" in message
    assert "PL_MAGIC_TRUSTED_BASE_URLS" in message
    return message


@pytest.mark.parametrize("env", ["gemini_env", "vertex_env"])
def test_gemini_http_options_cannot_redirect_the_request(
    env: str, request: pytest.FixtureRequest, fake_provider: Any
) -> None:
    secret = str(request.getfixturevalue(env))
    provider = "google" if env == "gemini_env" else "vertexai"
    with FakeProviderServer() as listener:
        options = {"base_url": listener.url + "/", "headers": {"x-extra": "1"}}
        meta = model("gemini-2.5-flash", provider, http_options=options)
        publish("g", chat(("user", "hi")), meta)
        message = _refused("g", "http_options")
        assert secret not in message
        assert listener.requests == [], "the template's http_options reached a server"
    assert _provider_requests(fake_provider) == []


def test_gemini_http_options_in_overrides_are_refused(gemini_env: str, fake_provider: Any) -> None:
    with FakeProviderServer() as listener:
        publish("g", chat(("user", "hi")), model("gemini-2.5-flash", "google"))
        overrides = {"http_options": {"base_url": listener.url + "/"}}
        _refused("g", "http_options", model_parameter_overrides=overrides)
        assert listener.requests == []
    assert _provider_requests(fake_provider) == []


@pytest.mark.parametrize(
    ("env", "meta"),
    [
        ("openai_env", model("gpt-4o-mini")),
        ("anthropic_env", model("claude-sonnet-4-5", provider="anthropic")),
    ],
)
@pytest.mark.parametrize("parameter", ["extra_headers", "extra_query"])
def test_openai_and_anthropic_parameters_cannot_change_headers_or_query(
    env: str,
    meta: dict[str, Any],
    parameter: str,
    request: pytest.FixtureRequest,
    fake_provider: Any,
) -> None:
    request.getfixturevalue(env)
    value = {"authorization": "Bearer other", "x-api-key": "other", "x-goog-api-key": "other"}
    meta = copy.deepcopy(meta)  # parametrize shares one dict between cases
    meta["model"]["parameters"][parameter] = value
    publish("p", chat(("user", "hi")), meta)
    _refused("p", parameter)
    assert _provider_requests(fake_provider) == []


def test_anthropic_temperature_still_goes_in_extra_body(
    anthropic_env: str, fake_provider: Any
) -> None:
    publish("a", chat(("user", "hi")), model("claude-sonnet-4-5", "anthropic", temperature=0.3))
    pl_magic.run("a")
    (sent,) = _provider_requests(fake_provider)
    assert sent.body["temperature"] == 0.3


# -- the PromptLayer key ---------------------------------------------------------------------

MALFORMED = "pl_0123456789abcdefSECRET\n"


def _no_key_in(exc: BaseException, key: str) -> None:
    shown = str(exc) + repr(exc) + "".join(traceback.format_exception(exc))
    for spelling in errors.spellings(key):
        assert spelling not in shown


def test_a_promptlayer_key_argument_with_a_newline_is_refused_up_front(
    fake_promptlayer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROMPTLAYER_API_KEY", raising=False)
    with pytest.raises(errors.MalformedKeyError) as info:
        pl_magic.PromptLayer(api_key=MALFORMED, base_url=fake_promptlayer.url).templates.get("x")
    message = str(info.value)
    assert "\n" not in message and "api_key" in message and "strip it" in message
    _no_key_in(info.value, MALFORMED)
    assert fake_promptlayer.requests == []


def test_a_promptlayer_key_variable_with_a_newline_is_refused_up_front(
    fake_promptlayer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMPTLAYER_API_KEY", MALFORMED)
    with pytest.raises(errors.MalformedKeyError) as info:
        pl_magic.PromptLayer(base_url=fake_promptlayer.url).templates.get("x")
    message = str(info.value)
    assert "PROMPTLAYER_API_KEY" in message and "strip it" in message
    _no_key_in(info.value, MALFORMED)
    assert fake_promptlayer.requests == []


_TRACK_BODY = {
    "function_name": "openai.chat.completions.create",
    "provider_type": "openai",
    "args": [],
    "kwargs": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
    "request_response": {"choices": []},
    "request_start_time": 1.0,
    "request_end_time": 2.0,
}


def test_every_spelling_of_a_key_argument_is_redacted(
    fake_promptlayer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pl_magic.core.promptlayer_api import PromptLayerAPI

    monkeypatch.delenv("PROMPTLAYER_API_KEY", raising=False)
    key = conftest.new_secret("pl_test/x+y=")  # URL-encoding and JSON escaping change it
    fake_promptlayer.api_keys = {key}
    echoed = f"key {quote(key, safe='')} and {key!r} refused"
    fake_promptlayer.mangle_next("track.request", lambda answer: {"message": echoed})
    api = PromptLayerAPI(key, fake_promptlayer.url)
    try:
        with pytest.raises(errors.PromptLayerError) as info:
            api.track_request(_TRACK_BODY)
    finally:
        api.close()
    assert "***" in str(info.value)
    _no_key_in(info.value, key)
