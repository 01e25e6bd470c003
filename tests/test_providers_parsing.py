"""Native responses and streams -> Reply, for replies the fake server does not produce
(tool calls, thinking, blocked prompts), built from the SDKs' own types; and the pieces the
providers share (message reading, Google credential discovery, SDK error classification)."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import pytest
from google.genai import types as genai_types

from pl_magic.core.blueprint import ModelSpec
from pl_magic.core.errors import (
    ConfigurationError,
    MissingApiKeyError,
    ProviderError,
    StreamTruncatedError,
    UntrustedBaseUrlError,
)
from pl_magic.providers import _sdk_errors, _turns, get_provider, google_auth
from pl_magic.providers.base import ParameterMap

CLAUDE = ModelSpec("anthropic", "claude-sonnet-4-5")
GEMINI = ModelSpec("google", "gemini-2.5-flash")


def _events(*events: dict[str, Any]) -> list[Any]:
    adapter: Any = anthropic.types.RawMessageStreamEvent
    from pydantic import TypeAdapter

    return [TypeAdapter(adapter).validate_python(e) for e in events]


def test_anthropic_tool_use_becomes_tool_calls():
    message = anthropic.types.Message.model_validate(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-x",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "s"},
                {"type": "text", "text": "Let me add."},
                {"type": "tool_use", "id": "toolu_1", "name": "add", "input": {"a": 2}},
            ],
            "stop_reason": "tool_use",
            "stop_sequence": None,
            "usage": {"input_tokens": 7, "output_tokens": 4},
        }
    )
    reply = get_provider("anthropic").parse(message, CLAUDE)
    assert reply.text == "Let me add."  # thinking is not the reply
    assert reply.finish_reason == "tool_use"
    assert (reply.input_tokens, reply.output_tokens) == (7, 4)
    assert reply.tool_calls == [
        {"id": "toolu_1", "type": "function", "function": {"name": "add", "arguments": '{"a": 2}'}}
    ]
    json.dumps(reply.raw)


def test_anthropic_stream_assembles_text_tool_calls_and_usage():
    state = get_provider("anthropic").stream_state(CLAUDE)
    events = _events(
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "claude-x",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 9, "output_tokens": 1},
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi "}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Ada"}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "tool_use", "id": "toolu_1", "name": "add", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"a": '},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": "2}"},
        },
        {"type": "content_block_stop", "index": 1},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"output_tokens": 12},
        },
        {"type": "message_stop"},
    )
    added = [state.feed(e) for e in events]
    assert "".join(added) == "Hi Ada"
    reply = state.finish()
    assert (reply.text, reply.finish_reason) == ("Hi Ada", "tool_use")
    assert (reply.input_tokens, reply.output_tokens) == (9, 12)
    assert reply.tool_calls == [
        {"id": "toolu_1", "type": "function", "function": {"name": "add", "arguments": '{"a": 2}'}}
    ]
    assert reply.raw["content"][1]["input"] == {"a": 2}
    assert reply.raw["id"] == "msg_1" and reply.raw["stop_reason"] == "tool_use"
    json.dumps(reply.raw)


def test_anthropic_stream_without_message_stop_is_truncated():
    state = get_provider("anthropic").stream_state(CLAUDE)
    for event in _events(
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 1},
        },
    ):
        state.feed(event)
    with pytest.raises(StreamTruncatedError) as info:
        state.finish()
    assert info.value.partial_text == "Hi"


def test_gemini_function_calls_and_thoughts():
    response = genai_types.GenerateContentResponse.model_validate(
        {
            "candidates": [
                {
                    "content": {
                        "role": "model",
                        "parts": [
                            {"text": "thinking...", "thought": True},
                            {"text": "Adding."},
                            {"functionCall": {"name": "add", "args": {"a": 2}}},
                        ],
                    },
                    "finishReason": "STOP",
                }
            ],
            "usageMetadata": {
                "promptTokenCount": 5,
                "candidatesTokenCount": 3,
                "thoughtsTokenCount": 10,
            },
        }
    )
    reply = get_provider("google").parse(response, GEMINI)
    assert (reply.text, reply.finish_reason) == ("Adding.", "STOP")
    assert (reply.input_tokens, reply.output_tokens) == (5, 13)  # thinking is billed output
    assert reply.tool_calls == [
        {"id": "call_0", "type": "function", "function": {"name": "add", "arguments": '{"a": 2}'}}
    ]
    json.dumps(reply.raw)


def test_gemini_blocked_prompt_is_a_reply_with_the_block_reason():
    response = genai_types.GenerateContentResponse.model_validate(
        {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 4}}
    )
    reply = get_provider("google").parse(response, GEMINI)
    assert (reply.text, reply.finish_reason) == ("", "SAFETY")


def test_gemini_stream_is_complete_only_with_a_finish_reason():
    def chunk(text: str, finish: str | None = None) -> Any:
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": text}]}}
        if finish:
            candidate["finishReason"] = finish
        return genai_types.GenerateContentResponse.model_validate({"candidates": [candidate]})

    state = get_provider("google").stream_state(GEMINI)
    state.feed(chunk("Hel"))
    state.feed(chunk("lo"))
    with pytest.raises(StreamTruncatedError):
        state.finish()
    state.feed(chunk("!", "MAX_TOKENS"))
    reply = state.finish()
    assert (reply.text, reply.finish_reason) == ("Hello!", "MAX_TOKENS")
    assert reply.raw["candidates"][0]["content"]["parts"] == [{"text": "Hello!"}]


@pytest.mark.parametrize(
    ("provider", "model", "params", "expected"),
    [
        (
            "anthropic",
            "claude-x",
            {"max_output_tokens": 5, "stop": "x"},
            {"max_tokens": 5, "stop_sequences": ["x"]},
        ),
        (
            "google",
            "gemini-x",
            {"max_tokens": 5, "stop": "x"},
            {"max_output_tokens": 5, "stop_sequences": ["x"]},
        ),
        (
            "google",
            "gemini-x",
            {"maxOutputTokens": 5, "topK": 3},
            {"max_output_tokens": 5, "top_k": 3},
        ),
        ("vertexai", "claude-x", {"max_output_tokens": 5}, {"max_tokens": 5}),
        ("vertexai", "gemini-x", {"max_tokens": 5}, {"max_output_tokens": 5}),
    ],
)
def test_parameter_maps_rename_to_native_names(provider, model, params, expected):
    pmap: ParameterMap = get_provider(provider).parameters_for(None, model)
    adapted, dropped = pmap.adapt(params)
    assert (adapted, dropped) == (expected, [])


# -- what the providers share ----------------------------------------------------------------


def test_data_url_gives_media_type_and_base64_data():
    assert _turns.data_url("data:image/jpeg;base64,AAAA") == ("image/jpeg", "AAAA")
    assert _turns.data_url("data:;base64,AAAA") == ("image/png", "AAAA")
    assert _turns.data_url("data:text/plain,hello") is None
    assert _turns.data_url("https://x.test/a.png") is None


def test_tool_calls_parse_json_arguments_and_keep_the_rest():
    calls = _turns.tool_calls(
        [
            {"id": "c1", "function": {"name": "add", "arguments": '{"a": 1}'}},
            {"id": "c2", "function": {"name": "say", "arguments": "not json"}},
            {"id": "c3", "function": {"name": "now"}},
            {"id": "c4", "function": {"name": "d", "arguments": {"k": 2}}},
        ]
    )
    assert calls == [
        ("c1", "add", {"a": 1}),
        ("c2", "say", {"arguments": "not json"}),
        ("c3", "now", {}),
        ("c4", "d", {"k": 2}),
    ]
    assert _turns.tool_calls(None) == []


def test_function_tools_and_forced_function():
    rendered = {
        "tools": [
            {"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}},
            {"type": "web_search"},
        ]
    }
    assert _turns.function_tools(rendered) == [("add", None, {"type": "object"})]
    assert _turns.forced_function({"type": "function", "function": {"name": "add"}}) == "add"
    for choice in ("auto", "required", None, {"type": "function"}, {"function": {}}):
        assert _turns.forced_function(choice) is None


def test_to_turns_takes_system_out_folds_tool_results_and_merges_roles():
    shape = _turns.TurnShape(
        key="blocks",
        assistant_role="bot",
        text=lambda text: {"t": text},
        image=lambda url: {"img": url},
        native_types=frozenset({"keep"}),
    )
    rendered = {
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
                    {"type": "keep", "x": 1},
                    {"type": "drop"},
                    "not a block",
                ],
            },
            {"role": "assistant", "content": "", "tool_calls": [{"id": "c1"}]},
            {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "4"}]},
            {"role": "developer", "content": "Be kind."},
            {"role": "function", "tool_call_id": "c2", "content": "5"},
        ]
    }
    system, turns = _turns.to_turns(
        rendered,
        shape,
        lambda msg, text: {"result": text, "for": msg.get("tool_call_id")},
        lambda calls: [{"call": call["id"]} for call in calls or []],
    )
    assert system == "Be brief.\n\nBe kind."
    assert turns == [
        {
            "role": "user",
            "blocks": [{"t": "Hi"}, {"img": "https://x.test/a.png"}, {"type": "keep", "x": 1}],
        },
        {"role": "bot", "blocks": [{"call": "c1"}]},
        {"role": "user", "blocks": [{"result": "4", "for": "c1"}, {"result": "5", "for": "c2"}]},
    ]
    completion = {"type": "completion", "content": [{"type": "text", "text": "Go"}]}
    assert _turns.to_turns(completion, shape, print, print) == (
        None,
        [{"role": "user", "blocks": [{"t": "Go"}]}],
    )


def test_google_credentials_are_found_offline(tmp_path, monkeypatch):
    monkeypatch.setattr("pl_magic.providers.google_auth._on_google_cloud", lambda: False)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))
    assert google_auth.google_credentials_problem() == "GOOGLE_APPLICATION_CREDENTIALS"
    (tmp_path / "application_default_credentials.json").write_text("{}")
    assert google_auth.google_credentials_problem() is None
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    assert "names a file that does not exist" in str(google_auth.google_credentials_problem())


def test_require_google_cloud_names_every_missing_setting(tmp_path, monkeypatch):
    monkeypatch.setattr("pl_magic.providers.google_auth._on_google_cloud", lambda: False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))
    for name in ("GOOGLE_APPLICATION_CREDENTIALS", "PROJ_A", "PROJ_B", "REGION"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(MissingApiKeyError) as caught:
        google_auth.require_google_cloud("vertexai", ("PROJ_A", "PROJ_B"), ("REGION",), why="w")
    assert str(caught.value) == (
        "No credentials for vertexai (w): set the environment variables PROJ_A (or PROJ_B), "
        "REGION and GOOGLE_APPLICATION_CREDENTIALS"
    )
    assert caught.value.variables == [
        "PROJ_A",
        "PROJ_B",
        "REGION",
        "GOOGLE_APPLICATION_CREDENTIALS",
    ]
    (tmp_path / "application_default_credentials.json").write_text("{}")
    monkeypatch.setenv("PROJ_B", "p")
    monkeypatch.setenv("REGION", "r")
    assert google_auth.require_google_cloud("vertexai", ("PROJ_A", "PROJ_B"), ("REGION",)) == [
        "p",
        "r",
    ]
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    with pytest.raises(ConfigurationError, match="names a file that does not exist"):
        google_auth.require_google_cloud("vertexai", ("PROJ_B",))


def test_vertex_token_goes_only_where_keys_may_go(monkeypatch):
    monkeypatch.delenv("PL_MAGIC_TRUSTED_BASE_URLS", raising=False)
    monkeypatch.delenv("SOME_VERTEX_URL", raising=False)
    env = ("SOME_VERTEX_URL",)
    assert not google_auth.vertex_keyless("vertexai", None, env)
    assert not google_auth.vertex_keyless("vertexai", "https://aiplatform.googleapis.com", env)
    assert google_auth.vertex_keyless("vertexai", "http://127.0.0.1:9/v1", env)
    with pytest.raises(UntrustedBaseUrlError):
        google_auth.vertex_keyless("vertexai", "https://elsewhere.example.com", env)


def test_sdk_error_classification_shared_by_the_providers():
    import httpx2

    assert [_sdk_errors.category_for_status(s) for s in (None, 401, 404, 408, 429, 503, 422)] == [
        "unknown",
        "auth",
        "not_found",
        "timeout",
        "rate_limit",
        "server",
        "bad_request",
    ]
    error = _sdk_errors.transport_error("google", httpx2.ConnectError("refused"))
    assert (error.provider, error.category) == ("google", "connection")
    assert _sdk_errors.transport_error("google", ValueError("x")) is None
    request = httpx2.Request("POST", "https://api.anthropic.com/v1/messages")
    timeout = anthropic.APITimeoutError(request)
    assert _sdk_errors.connection_error("anthropic", timeout, anthropic).category == "timeout"
    assert _sdk_errors.connection_error("anthropic", ValueError("x"), anthropic) is None
    unknown = _sdk_errors.error_for("anthropic", ValueError("boom"), lambda exc: None)
    assert unknown.category == "unknown"
    assert "ValueError: boom" in str(unknown)
    same = ProviderError("anthropic", "server", "down")
    assert _sdk_errors.error_for("anthropic", same, lambda exc: None) is same
