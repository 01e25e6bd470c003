"""Native responses and streams -> Reply, for replies the fake server does not produce
(tool calls, thinking, blocked prompts), built from the SDKs' own types."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import pytest
from google.genai import types as genai_types

from pl_magic.core.blueprint import ModelSpec
from pl_magic.core.errors import StreamTruncatedError
from pl_magic.providers import get_provider
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
