"""Anthropic, Gemini (API and Vertex) and Claude on Vertex, next to OpenAI, over HTTP against
the fake provider server: the five routes, overrides between them, missing configuration,
faults at the wire and streaming.

Every route is configured only through environment variables (the fixtures in
tests/fakes/fixtures.py set what a user would set).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
from dataclasses import dataclass
from typing import Any

import anthropic
import openai
import pytest
from google.genai import types as genai_types

import pl_magic
from pl_magic import providers
from pl_magic.core.errors import (
    ConfigurationError,
    InvalidInputError,
    MissingApiKeyError,
    ProviderError,
    StreamTruncatedError,
    UnknownProviderError,
    is_secret_name,
)
from tests.fakes.fixtures import VERTEX_CLAUDE_REGION, VERTEX_GEMINI_LOCATION, VERTEX_PROJECT
from tests.helpers import chat, model, publish, runs

SUPPORT = chat(("system", "You are terse."), ("user", "Say hi to {name}"))
REPLY = "echo: Say hi to Ada"


@dataclass(frozen=True)
class Route:
    """One way to reach a model, and what the fake server must see for it."""

    id: str
    env: str  # fixture name
    provider: str
    model: str
    kind: str  # Recorded.kind
    path: str  # non-streamed path; streamed paths are derived
    header: str  # credential header name
    bearer: bool  # the header holds "Bearer <credential>"
    native: type

    def stream_path(self) -> str:
        for plain, streamed in (
            (":generateContent", ":streamGenerateContent"),
            (":rawPredict", ":streamRawPredict"),
        ):
            if self.path.endswith(plain):
                return self.path.replace(plain, streamed)
        return self.path

    def credential(self, request: Any, expected: str) -> bool:
        value = request.headers.get(self.header, "")
        return value == (f"Bearer {expected}" if self.bearer else expected)


_VERTEX_GEMINI = (
    f"/v1beta1/projects/{VERTEX_PROJECT}/locations/{VERTEX_GEMINI_LOCATION}"
    "/publishers/google/models/gemini-2.5-flash:generateContent"
)
CLAUDE_VERTEX_MODEL = "claude-sonnet-4-5@20250929"
ROUTES = [
    Route(
        "openai",
        "openai_env",
        "openai",
        "gpt-4o-mini",
        "openai.chat",
        "/v1/chat/completions",
        "authorization",
        True,
        openai.types.chat.ChatCompletion,
    ),
    Route(
        "anthropic",
        "anthropic_env",
        "anthropic",
        "claude-sonnet-4-5",
        "anthropic.messages",
        "/v1/messages",
        "authorization",
        True,
        anthropic.types.Message,
    ),
    Route(
        "gemini",
        "gemini_env",
        "google",
        "gemini-2.5-flash",
        "gemini",
        "/v1/models/gemini-2.5-flash:generateContent",
        "x-goog-api-key",
        False,
        genai_types.GenerateContentResponse,
    ),
    Route(
        "gemini-vertex",
        "vertex_env",
        "google",
        "gemini-2.5-flash",
        "vertex.gemini",
        _VERTEX_GEMINI,
        "authorization",
        True,
        genai_types.GenerateContentResponse,
    ),
    Route(
        "claude-vertex",
        "anthropic_vertex_env",
        "vertexai",
        CLAUDE_VERTEX_MODEL,
        "anthropic.vertex",
        f"/v1/projects/{VERTEX_PROJECT}/locations/{VERTEX_CLAUDE_REGION}"
        f"/publishers/anthropic/models/{CLAUDE_VERTEX_MODEL}:rawPredict",
        "authorization",
        True,
        anthropic.types.Message,
    ),
]
# The vertexai provider's Gemini route (same wire as gemini-vertex, other provider name).
VERTEXAI_GEMINI = Route(
    "vertexai-gemini",
    "vertex_env",
    "vertexai",
    "gemini-2.5-flash",
    "vertex.gemini",
    _VERTEX_GEMINI,
    "authorization",
    True,
    genai_types.GenerateContentResponse,
)
ALL_ROUTES = [*ROUTES, VERTEXAI_GEMINI]
BY_ID = {r.id: r for r in ALL_ROUTES}


def _ids(routes: list[Route]) -> list[str]:
    return [r.id for r in routes]


def _setup(request: pytest.FixtureRequest, route: Route) -> str:
    """Apply the route's environment; the credential the fake server should see."""
    return str(request.getfixturevalue(route.env))


def _reply_text(blueprint: dict[str, Any]) -> str:
    content = blueprint["prompt_template"]["messages"][-1]["content"]
    return content[-1]["text"] if content else ""


def _native_body(route: Route, body: dict[str, Any]) -> tuple[str, str]:
    """(system text, last user text) as the route's native body carries them."""
    if route.provider == "openai":  # as PromptLayer's llm_kwargs: system text, user parts
        return body["messages"][0]["content"], body["messages"][-1]["content"][-1]["text"]
    if route.kind.startswith("anthropic"):
        return body["system"], body["messages"][-1]["content"][-1]["text"]
    return body["systemInstruction"]["parts"][0]["text"], body["contents"][-1]["parts"][-1]["text"]


def _raw_text(route: Route, raw: dict[str, Any]) -> str:
    """The reply text inside a logged native response."""
    if route.provider == "openai":
        return str(raw["choices"][0]["message"]["content"])
    if route.kind.startswith("anthropic"):
        return str(raw["content"][0]["text"])
    return str(raw["candidates"][0]["content"]["parts"][0]["text"])


def _provider_requests(fake: Any, route: Route) -> list[Any]:
    return fake.requests_for(route.kind)


# -- the five routes -------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("route", ALL_ROUTES, ids=_ids(ALL_ROUTES))
def test_each_route_returns_the_run_contract(request, fake_provider, route, stream):
    credential = _setup(request, route)
    publish("support", SUPPORT, model(route.model, route.provider, temperature=0.5))

    if stream:
        chunks = list(pl_magic.run("support", input_variables={"name": "Ada"}, stream=True))
        result = chunks[-1]
        assert all(c["request_id"] is None for c in chunks[:-1]) and len(chunks) >= 3
        assert all(set(c) == {"request_id", "raw_response", "prompt_blueprint"} for c in chunks)
    else:
        result = pl_magic.run("support", input_variables={"name": "Ada"})
        assert isinstance(result["raw_response"], route.native)

    assert set(result) == {"request_id", "raw_response", "prompt_blueprint"}
    assert result["request_id"]
    (req,) = _provider_requests(fake_provider, route)
    assert req.path == (route.stream_path() if stream else route.path)
    assert req.stream is stream
    if stream and route.kind in ("gemini", "vertex.gemini"):
        assert req.query.get("alt") == "sse"
    assert route.credential(req, credential), req.headers
    system, user = _native_body(route, req.body)
    assert (system, user) == ("You are terse.", "Say hi to Ada")
    bp = result["prompt_blueprint"]
    assert _reply_text(bp) == REPLY
    assert bp["prompt_template"]["messages"][-1]["role"] == "assistant"
    assert bp["metadata"]["model"]["provider"] == route.provider
    assert bp["metadata"]["model"]["name"] == route.model
    (row,) = runs()
    assert row["request_id"] == result["request_id"]
    assert (row["status"], row["output"]) == ("ok", REPLY)
    assert (row["provider"], row["model"]) == (route.provider, route.model)
    assert row["input_tokens"] > 0 and row["output_tokens"] == 5
    assert row["latency_s"] > 0 and row["ttft_s"] > 0 and row["latency_s"] >= row["ttft_s"]
    assert row["cost_usd"] is not None
    assert row["finish_reason"]
    raw = json.loads(row["raw_response"])  # for a stream: the assembled reply
    assert _raw_text(route, raw) == REPLY
    assert credential not in row["raw_response"]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("route", ALL_ROUTES, ids=_ids(ALL_ROUTES))
def test_each_route_async(request, fake_provider, route, stream):
    _setup(request, route)
    publish("support", SUPPORT, model(route.model, route.provider))

    async def go() -> dict[str, Any]:
        if not stream:
            return await pl_magic.arun("support", input_variables={"name": "Ada"})
        chunks = [
            c
            async for c in await pl_magic.arun(
                "support", input_variables={"name": "Ada"}, stream=True
            )
        ]
        assert [c["request_id"] is not None for c in chunks].count(True) == 1
        return chunks[-1]

    result = asyncio.run(go())
    assert _reply_text(result["prompt_blueprint"]) == REPLY
    (req,) = _provider_requests(fake_provider, route)
    assert req.path == (route.stream_path() if stream else route.path)
    (row,) = runs()
    assert (row["status"], row["output"], row["output_tokens"]) == ("ok", REPLY, 5)


ASYNC_LOOP_ROUTES = [pytest.param(r, id=r.id) for r in ALL_ROUTES]


@pytest.mark.parametrize("route", ASYNC_LOOP_ROUTES)
def test_async_runs_from_successive_event_loops(request, fake_provider, route):
    # Scripts call asyncio.run() more than once; pooled connections of the first loop
    # must not be reused from the second (each loop gets its own async client).
    _setup(request, route)
    publish("support", SUPPORT, model(route.model, route.provider))

    async def go(stream: bool) -> str:
        if not stream:
            result = await pl_magic.arun("support", input_variables={"name": "Ada"})
            return _reply_text(result["prompt_blueprint"])
        chunks = [
            c
            async for c in await pl_magic.arun(
                "support", input_variables={"name": "Ada"}, stream=True
            )
        ]
        return _reply_text(chunks[-1]["prompt_blueprint"])

    assert [asyncio.run(go(s)) for s in (False, True, False)] == [REPLY] * 3
    attempts = _provider_requests(fake_provider, route)
    assert len(attempts) == 3  # no attempt failed on a dead loop's connection and was retried


def test_gemini_api_key_may_come_from_gemini_api_key(gemini_env, fake_provider, monkeypatch):
    monkeypatch.delenv("GOOGLE_API_KEY")
    monkeypatch.setenv("GEMINI_API_KEY", gemini_env)
    publish("p", SUPPORT, model("gemini-2.5-flash", "google"))
    pl_magic.run("p", input_variables={"name": "Ada"})
    (req,) = fake_provider.requests
    assert req.headers["x-goog-api-key"] == gemini_env


def test_vertex_aliases_are_accepted(vertex_env, anthropic_vertex_env, fake_provider, monkeypatch):
    for name in (
        "GOOGLE_CLOUD_PROJECT",
        "GOOGLE_CLOUD_LOCATION",
        "ANTHROPIC_VERTEX_PROJECT_ID",
        "CLOUD_ML_REGION",
    ):
        monkeypatch.delenv(name)
    monkeypatch.setenv("VERTEX_AI_PROJECT_ID", "alias-project")
    monkeypatch.setenv("VERTEX_AI_PROJECT_LOCATION", "europe-west4")
    publish("p", SUPPORT, model("gemini-2.5-flash", "vertexai"))

    pl_magic.run("p", input_variables={"name": "Ada"})
    pl_magic.run("p", input_variables={"name": "Ada"}, model="claude-sonnet-4-5")

    (gemini,) = fake_provider.requests_for("vertex.gemini")
    (claude,) = fake_provider.requests_for("anthropic.vertex")
    assert gemini.path.startswith("/v1beta1/projects/alias-project/locations/europe-west4/")
    assert claude.path.startswith("/v1/projects/alias-project/locations/europe-west4/")


def test_vertex_service_account_token_is_fetched_once_and_used(
    anthropic_vertex_env, fake_provider, fake_service_account, monkeypatch
):
    # A service-account file of its own, so no client cached by another test has the token.
    from tests.fakes.service_account import write_fake_service_account

    own = write_fake_service_account(
        fake_service_account.parent / "own.json", fake_provider.token_uri
    )
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(own))
    publish("p", SUPPORT, model("claude-sonnet-4-5", "vertexai"))
    for _ in range(2):
        pl_magic.run("p", input_variables={"name": "Ada"})
    kinds = [r.kind for r in fake_provider.requests]
    assert kinds == ["token", "anthropic.vertex", "anthropic.vertex"]
    token = fake_provider.requests[0]
    assert "grant_type" in token.raw.decode() and b"assertion=" in token.raw


# -- one template, every route ---------------------------------------------------------------

# Where each route's wire body carries temperature and max tokens.
_WIRE_PARAMS = {
    "openai": lambda b: (b["temperature"], b["max_tokens"]),
    "anthropic": lambda b: (b["temperature"], b["max_tokens"]),
    "gemini": lambda b: (
        b["generationConfig"]["temperature"],
        b["generationConfig"]["maxOutputTokens"],
    ),
    "gemini-vertex": lambda b: (
        b["generationConfig"]["temperature"],
        b["generationConfig"]["maxOutputTokens"],
    ),
    "claude-vertex": lambda b: (b["temperature"], b["max_tokens"]),
    "vertexai-gemini": lambda b: (
        b["generationConfig"]["temperature"],
        b["generationConfig"]["maxOutputTokens"],
    ),
}
# Under which names the blueprint records them.
_TARGET_NAMES = {
    "openai": ("temperature", "max_tokens"),
    "anthropic": ("temperature", "max_tokens"),
    "gemini": ("temperature", "max_output_tokens"),
    "gemini-vertex": ("temperature", "max_output_tokens"),
    "claude-vertex": ("temperature", "max_tokens"),
    "vertexai-gemini": ("temperature", "max_output_tokens"),
}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("route", ALL_ROUTES, ids=_ids(ALL_ROUTES))
def test_one_openai_template_runs_on_every_route(request, fake_provider, route, stream):
    _setup(request, route)
    publish(
        "support",
        SUPPORT,
        model("gpt-4o-mini", "openai", temperature=0.3, max_tokens=77, logprobs=True),
    )
    override = {"provider": route.provider, "model": route.model}
    if route.id == "openai":
        override = {"model": "gpt-4.1-mini"}  # model= alone keeps the provider

    out = pl_magic.run("support", input_variables={"name": "Ada"}, stream=stream, **override)
    result = list(out)[-1] if stream else out

    (req,) = _provider_requests(fake_provider, route)
    assert _WIRE_PARAMS[route.id](req.body) == (0.3, 77)
    meta = result["prompt_blueprint"]["metadata"]
    ran = meta["model"]
    expected_model = override["model"]
    assert (ran["provider"], ran["name"]) == (BY_ID[route.id].provider, expected_model)
    if route.provider == "openai":
        assert "dropped_parameters" not in meta
    else:
        # logprobs has no equivalent on the other providers: dropped and reported
        assert meta["dropped_parameters"] == ["logprobs"]
    (row,) = runs()
    assert (row["provider"], row["model"], row["status"]) == (ran["provider"], ran["name"], "ok")
    assert json.loads(row["parameters"]) == ran["parameters"]


def test_provider_override_fills_required_defaults_and_overrides_win(
    anthropic_env, gemini_env, fake_provider
):
    publish("p", SUPPORT, model("gpt-4o-mini", "openai", seed=3, stop="END"))

    first = pl_magic.run("p", input_variables={"name": "A"}, provider="anthropic")
    second = pl_magic.run(
        "p",
        input_variables={"name": "A"},
        provider="google",
        model_parameter_overrides={"max_tokens": 12, "temperature": 0.1},
    )

    claude, gemini = fake_provider.requests
    assert claude.body["model"] == "claude-sonnet-4-6"  # the target's default model
    assert claude.body["max_tokens"] == 1024  # required by Anthropic, filled
    assert claude.body["stop_sequences"] == ["END"]
    assert "seed" not in claude.body
    assert first["prompt_blueprint"]["metadata"]["dropped_parameters"] == ["seed"]
    assert gemini.path == "/v1/models/gemini-2.5-flash:generateContent"
    assert gemini.body["generationConfig"] == {
        "temperature": 0.1,
        "maxOutputTokens": 12,
        "stopSequences": ["END"],
        "seed": 3,
    }
    assert "dropped_parameters" not in second["prompt_blueprint"]["metadata"]


def test_model_override_within_vertexai_switches_route_and_names(
    vertex_env, anthropic_vertex_env, fake_provider
):
    publish("p", SUPPORT, model("gemini-2.5-flash", "vertexai", max_output_tokens=40, seed=1))

    result = pl_magic.run("p", input_variables={"name": "A"}, model="claude-sonnet-4-5")

    (req,) = fake_provider.requests_for("anthropic.vertex")
    assert req.body["max_tokens"] == 40 and "seed" not in req.body
    meta = result["prompt_blueprint"]["metadata"]
    assert meta["model"]["provider"] == "vertexai"
    assert meta["model"]["parameters"] == {"max_tokens": 40}
    assert meta["dropped_parameters"] == ["seed"]


def test_vertexai_names_the_models_it_serves(vertex_env, fake_provider):
    publish("p", SUPPORT, model("llama-3-70b", "vertexai"))
    with pytest.raises(InvalidInputError) as info:
        pl_magic.run("p", input_variables={"name": "A"})
    message = str(info.value)
    assert "gemini" in message and "claude" in message and "llama-3-70b" in message
    assert "\n" not in message
    assert fake_provider.requests == []


def test_unknown_gemini_parameter_fails_before_the_call(gemini_env, fake_provider):
    publish("p", SUPPORT, model("gemini-2.5-flash", "google", bogus_knob=1))
    with pytest.raises(ProviderError) as info:
        pl_magic.run("p", input_variables={"name": "A"})
    assert info.value.category == "bad_request" and "bogus_knob" in str(info.value)
    assert fake_provider.requests == []


def test_anthropic_sampling_parameters_reach_the_wire(anthropic_env, fake_provider):
    # anthropic >= 1.0 dropped temperature/top_p/top_k from messages.create; they travel in
    # extra_body and still land at the top level of the JSON body.
    publish(
        "p",
        SUPPORT,
        model("claude-sonnet-4-5", "anthropic", temperature=0.2, top_p=0.9, top_k=5, max_tokens=9),
    )
    pl_magic.run("p", input_variables={"name": "A"})
    body = fake_provider.requests[0].body
    assert (body["temperature"], body["top_p"], body["top_k"], body["max_tokens"]) == (
        0.2,
        0.9,
        5,
        9,
    )


# -- request building ------------------------------------------------------------------------

CONVERSATION = {
    "type": "chat",
    "messages": [
        {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
        {"role": "user", "content": [{"type": "text", "text": "What is 2+2?"}]},
        {
            "role": "assistant",
            "content": [],
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "add", "arguments": '{"a": 2, "b": 2}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "4"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "It is 4."}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "And this picture, {who}?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            ],
        },
    ],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "add",
                "description": "Add two numbers",
                "parameters": {
                    "type": "object",
                    "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
                },
            },
        }
    ],
    "tool_choice": "auto",
}


def test_anthropic_request_maps_roles_blocks_and_tools(anthropic_env, fake_provider):
    publish("conv", CONVERSATION, model("claude-sonnet-4-5", "anthropic"))
    pl_magic.run("conv", input_variables={"who": "Ada"})
    body = fake_provider.requests[0].body
    assert body["system"] == "Be brief."
    assert [m["role"] for m in body["messages"]] == [
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    assert body["messages"][1]["content"] == [
        {"type": "tool_use", "id": "call_1", "name": "add", "input": {"a": 2, "b": 2}}
    ]
    assert body["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "call_1", "content": "4"}
    ]
    last = body["messages"][-1]["content"]
    assert last[0] == {"type": "text", "text": "And this picture, Ada?"}
    assert last[1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
    }
    assert body["tools"] == [
        {
            "name": "add",
            "description": "Add two numbers",
            "input_schema": CONVERSATION["tools"][0]["function"]["parameters"],
        }
    ]
    assert body["tool_choice"] == {"type": "auto"}


def test_gemini_request_maps_roles_parts_and_tools(gemini_env, fake_provider):
    publish("conv", CONVERSATION, model("gemini-2.5-flash", "google"))
    pl_magic.run("conv", input_variables={"who": "Ada"})
    body = fake_provider.requests[0].body
    assert body["systemInstruction"]["parts"] == [{"text": "Be brief."}]
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user", "model", "user"]
    assert body["contents"][1]["parts"] == [
        {"functionCall": {"name": "add", "args": {"a": 2, "b": 2}}}
    ]
    assert body["contents"][2]["parts"] == [
        {"functionResponse": {"name": "add", "response": {"result": "4"}}}
    ]
    last = body["contents"][-1]["parts"]
    assert last[0] == {"text": "And this picture, Ada?"}
    blob = last[1]["inlineData"]
    assert blob["data"] == "iVBORw0KGgo="
    # genai passes a dict part's keys through; protobuf JSON accepts either spelling
    assert (blob.get("mimeType") or blob.get("mime_type")) == "image/png"
    declaration = body["tools"][0]["functionDeclarations"][0]
    assert declaration["name"] == "add"
    schema = declaration.get("parametersJsonSchema") or declaration.get("parameters_json_schema")
    assert schema == CONVERSATION["tools"][0]["function"]["parameters"]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}


@pytest.mark.parametrize("route_id", ["anthropic", "gemini"])
def test_completion_template_becomes_one_user_turn(request, fake_provider, route_id):
    route = BY_ID[route_id]
    _setup(request, route)
    publish(
        "c",
        {"type": "completion", "content": [{"type": "text", "text": "Once upon {x}"}]},
        model(route.model, route.provider),
    )
    result = pl_magic.run("c", input_variables={"x": "a time"})
    body = fake_provider.requests[0].body
    if route_id == "anthropic":
        assert body["messages"] == [
            {"role": "user", "content": [{"type": "text", "text": "Once upon a time"}]}
        ]
    else:
        assert body["contents"] == [{"role": "user", "parts": [{"text": "Once upon a time"}]}]
    content = result["prompt_blueprint"]["prompt_template"]["content"]
    assert content[-1]["text"] == "echo: Once upon a time"


# -- missing configuration -------------------------------------------------------------------

_REQUIRED = [
    ("openai", "OPENAI_API_KEY", "OPENAI_API_KEY"),
    ("anthropic", "ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY"),
    ("gemini", "GOOGLE_API_KEY", "GOOGLE_API_KEY or GEMINI_API_KEY"),
    ("gemini-vertex", "GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_PROJECT"),
    ("gemini-vertex", "GOOGLE_CLOUD_LOCATION", "GOOGLE_CLOUD_LOCATION"),
    ("gemini-vertex", "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_APPLICATION_CREDENTIALS"),
    ("claude-vertex", "ANTHROPIC_VERTEX_PROJECT_ID", "ANTHROPIC_VERTEX_PROJECT_ID"),
    ("claude-vertex", "CLOUD_ML_REGION", "CLOUD_ML_REGION"),
    ("claude-vertex", "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_APPLICATION_CREDENTIALS"),
    ("vertexai-gemini", "GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_PROJECT"),
    ("vertexai-gemini", "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_APPLICATION_CREDENTIALS"),
]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize(
    ("route_id", "variable", "named"), _REQUIRED, ids=[f"{r}-{v}" for r, v, _ in _REQUIRED]
)
def test_missing_variable_is_a_one_line_error_before_any_request(
    request, fake_provider, monkeypatch, route_id, variable, named, stream
):
    route = BY_ID[route_id]
    _setup(request, route)
    publish("p", SUPPORT, model(route.model, route.provider))
    monkeypatch.delenv(variable)
    if route_id == "openai":
        # The OpenAI route needs no key for a server on loopback (a local model), so the
        # fake's URL would be served keyless; use a remote-looking URL instead.
        monkeypatch.setenv("OPENAI_BASE_URL", "https://api.example.invalid/v1")

    with pytest.raises(MissingApiKeyError) as info:
        out = pl_magic.run("p", input_variables={"name": "A"}, stream=stream)
        list(out) if stream else None

    message = str(info.value)
    assert "\n" not in message
    assert named in message, message
    assert variable in info.value.variables
    assert fake_provider.requests == []  # not even a token request
    assert runs() == []


def test_all_missing_vertex_settings_are_named_at_once(vertex_env, fake_provider, monkeypatch):
    for name in ("GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION", "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.delenv(name)
    publish("p", SUPPORT, model("gemini-2.5-flash", "google"))
    with pytest.raises(MissingApiKeyError) as info:
        pl_magic.run("p", input_variables={"name": "A"})
    message = str(info.value)
    for name in ("GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION", "GOOGLE_APPLICATION_CREDENTIALS"):
        assert name in message
    assert "GOOGLE_GENAI_USE_VERTEXAI" in message  # says why Vertex was chosen
    assert fake_provider.requests == []


def test_credentials_file_that_does_not_exist_is_named(
    anthropic_vertex_env, fake_provider, monkeypatch, tmp_path
):
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "nope.json"))
    publish("p", SUPPORT, model("claude-sonnet-4-5", "vertexai"))
    with pytest.raises(ConfigurationError) as info:
        pl_magic.run("p", input_variables={"name": "A"})
    assert "GOOGLE_APPLICATION_CREDENTIALS" in str(info.value) and "nope.json" in str(info.value)
    assert fake_provider.requests == []


def test_gcloud_application_default_credentials_count_as_configured(
    anthropic_vertex_env, fake_provider, fake_service_account, monkeypatch, tmp_path
):
    # `gcloud auth application-default login` writes this file; google-auth finds it.
    gcloud = tmp_path / "gcloud"
    gcloud.mkdir()
    adc = gcloud / "application_default_credentials.json"
    adc.write_text(fake_service_account.read_text())
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(gcloud))
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS")
    publish("p", SUPPORT, model("claude-sonnet-4-5", "vertexai"))
    pl_magic.run("p", input_variables={"name": "A"})
    (req,) = fake_provider.requests_for("anthropic.vertex")
    assert req.headers["authorization"] == "Bearer ya29.fake"


def test_no_key_value_appears_in_errors(anthropic_env, fake_provider):
    publish("p", SUPPORT, model("claude-err-401", "anthropic"))
    with pytest.raises(ProviderError) as info:
        pl_magic.run("p", input_variables={"name": "A"})
    assert anthropic_env not in str(info.value)
    assert anthropic_env not in json.dumps(runs(), default=str)


# -- faults at the wire ----------------------------------------------------------------------

# Routes whose model name can carry a fault (the vertexai routes need gemini/claude in it).
FAULT_ROUTES = [r for r in ALL_ROUTES if r.id != "gemini-vertex"]


def _faulty(route: Route, fault: str) -> str:
    return f"{route.model}-{fault}"


@pytest.mark.parametrize("route", FAULT_ROUTES, ids=_ids(FAULT_ROUTES))
def test_429_is_retried_then_succeeds(request, fake_provider, route):
    _setup(request, route)
    publish("p", SUPPORT, model(_faulty(route, "flaky-429"), route.provider))
    result = pl_magic.run("p", input_variables={"name": "Ada"})
    assert _reply_text(result["prompt_blueprint"]) == REPLY
    attempts = _provider_requests(fake_provider, route)
    assert len(attempts) == 2
    if route.kind != "gemini" and route.kind != "vertex.gemini":
        assert [r.retry_count for r in attempts] == [0, 1]
    assert runs()[0]["status"] == "ok"


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("route", FAULT_ROUTES, ids=_ids(FAULT_ROUTES))
def test_401_is_not_retried(request, fake_provider, route, stream):
    credential = _setup(request, route)
    publish("p", SUPPORT, model(_faulty(route, "err-401"), route.provider))
    with pytest.raises(ProviderError) as info:
        out = pl_magic.run("p", input_variables={"name": "Ada"}, stream=stream)
        list(out) if stream else None
    assert (info.value.category, info.value.status_code) == ("auth", 401)
    assert len(_provider_requests(fake_provider, route)) == 1
    assert "\n" not in str(info.value) and credential not in str(info.value)
    (row,) = runs()
    assert (row["status"], row["error_category"]) == ("error", "auth")


@pytest.mark.parametrize("route_id", ["anthropic", "claude-vertex"])
def test_anthropic_529_is_a_server_error(request, fake_provider, route_id):
    route = BY_ID[route_id]
    _setup(request, route)
    publish("p", SUPPORT, model(_faulty(route, "err-529"), route.provider))
    with pytest.raises(ProviderError) as info:
        pl_magic.run("p", input_variables={"name": "Ada"})
    assert (info.value.category, info.value.status_code) == ("server", 529)
    assert isinstance(info.value.__cause__, anthropic.OverloadedError)
    assert len(_provider_requests(fake_provider, route)) == 3  # the SDK retries 529
    assert runs()[0]["error_category"] == "server"


@pytest.mark.parametrize("route", FAULT_ROUTES, ids=_ids(FAULT_ROUTES))
def test_in_band_stream_error_is_a_server_error(request, fake_provider, route):
    _setup(request, route)
    publish(
        "p",
        chat(("user", "one two three four")),
        model(_faulty(route, "sse-error"), route.provider),
    )
    with pytest.raises(ProviderError) as info:
        list(pl_magic.run("p", stream=True))
    assert info.value.category == "server"
    if route.kind.startswith("anthropic"):
        assert "overloaded" in str(info.value).lower()  # Anthropic's in-band overloaded event
    (row,) = runs()
    assert (row["status"], row["error_category"]) == ("error", "server")
    assert row["output"]  # the text before the error is kept


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("route", FAULT_ROUTES, ids=_ids(FAULT_ROUTES))
def test_stream_cut_midway_is_a_connection_error_with_partial_text(
    request, fake_provider, route, use_async
):
    _setup(request, route)
    full = "echo: one two three four five six"
    publish(
        "p",
        chat(("user", "one two three four five six")),
        model(_faulty(route, "cut"), route.provider),
    )
    with pytest.raises(ProviderError) as info:
        _consume(use_async)
    assert info.value.category == "connection"
    (row,) = runs()
    assert (row["status"], row["error_category"]) == ("error", "connection")
    assert row["output"] and full.startswith(row["output"]) and row["output"] != full
    assert info.value.partial_text == row["output"]


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("route", FAULT_ROUTES, ids=_ids(FAULT_ROUTES))
def test_clean_early_end_of_stream_is_truncated(request, fake_provider, route, use_async):
    _setup(request, route)
    full = "echo: one two three four five six"
    publish(
        "p",
        chat(("user", "one two three four five six")),
        model(_faulty(route, "eof"), route.provider),
    )
    with pytest.raises(StreamTruncatedError) as info:
        _consume(use_async)
    (row,) = runs()
    assert (row["status"], row["error_category"]) == ("error", "truncated")
    assert row["output"] and full.startswith(row["output"]) and row["output"] != full
    assert info.value.partial_text == row["output"]


@pytest.mark.parametrize("route", FAULT_ROUTES, ids=_ids(FAULT_ROUTES))
def test_non_streamed_reply_without_end_marker_is_accepted(request, fake_provider, route):
    # Decision (as PromptLayer): a whole JSON body without a finish/stop reason is a reply;
    # only streams, which can end early, are checked for their terminal marker.
    _setup(request, route)
    publish(
        "p",
        chat(("user", "one two three four five six")),
        model(_faulty(route, "eof"), route.provider),
    )
    result = pl_magic.run("p")
    (row,) = runs()
    assert (row["status"], row["finish_reason"]) == ("ok", None)
    assert _reply_text(result["prompt_blueprint"]) == row["output"]


def _consume(use_async: bool) -> list[dict[str, Any]]:
    if not use_async:
        return list(pl_magic.run("p", stream=True))

    async def go() -> list[dict[str, Any]]:
        return [c async for c in await pl_magic.arun("p", stream=True)]

    return asyncio.run(go())


@pytest.mark.parametrize("route", FAULT_ROUTES, ids=_ids(FAULT_ROUTES))
def test_500_is_retried_then_a_server_error(request, fake_provider, route):
    _setup(request, route)
    publish("p", SUPPORT, model(_faulty(route, "err-500"), route.provider))
    with pytest.raises(ProviderError) as info:
        pl_magic.run("p", input_variables={"name": "Ada"})
    assert (info.value.category, info.value.status_code) == ("server", 500)
    assert len(_provider_requests(fake_provider, route)) == 3  # 1 + the default 2 retries


@pytest.mark.parametrize("route", FAULT_ROUTES, ids=_ids(FAULT_ROUTES))
def test_404_model_is_not_found(request, fake_provider, route):
    _setup(request, route)
    publish("p", SUPPORT, model(_faulty(route, "err-404"), route.provider))
    with pytest.raises(ProviderError) as info:
        pl_magic.run("p", input_variables={"name": "Ada"})
    assert info.value.category == "not_found"
    assert len(_provider_requests(fake_provider, route)) == 1


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("route", ALL_ROUTES, ids=_ids(ALL_ROUTES))
def test_slow_provider_is_a_timeout(request, fake_provider, monkeypatch, route, use_async):
    _setup(request, route)
    # (the timeout leaves a loaded CI machine time to get the request to the server: at
    # 0.5 s, Vertex's sync request once never arrived; the server answers well after it)
    monkeypatch.setenv("PL_MAGIC_TIMEOUT", "1.5")
    monkeypatch.setenv("PL_MAGIC_MAX_RETRIES", "0")
    publish("p", SUPPORT, model(route.model, route.provider))

    async def arun() -> Any:
        return await pl_magic.arun("p", input_variables={"name": "A"})

    # One call first, so that the SDK's first-use work (imports, its HTTP session) is not
    # inside the short timeout below on a loaded machine: the request must reach the server.
    asyncio.run(arun()) if use_async else pl_magic.run("p", input_variables={"name": "A"})
    fake_provider.reset()
    fake_provider.delay_s = 4.0

    with pytest.raises(ProviderError) as info:
        asyncio.run(arun()) if use_async else pl_magic.run("p", input_variables={"name": "A"})
    assert info.value.category == "timeout"
    assert len(_provider_requests(fake_provider, route)) == 1
    assert runs()[-1]["error_category"] == "timeout"


# -- streaming builds the blueprint the same way everywhere ----------------------------------


def test_streams_from_every_provider_build_the_same_blueprints(
    openai_env,
    anthropic_env,
    gemini_env,
    anthropic_vertex_env,
    vertex_env,
    fake_provider,
    monkeypatch,
):
    # vertex_env turned google onto Vertex; run the Gemini API route as its own provider.
    monkeypatch.delenv("GOOGLE_GENAI_USE_VERTEXAI")
    fake_provider.reply_text = "alpha beta gamma delta epsilon"
    fake_provider.chunk_size = 6
    routes = [
        ("openai", "gpt-4o-mini"),
        ("anthropic", "claude-sonnet-4-5"),
        ("google", "gemini-2.5-flash"),
        ("vertexai", "gemini-2.5-flash"),
        ("vertexai", "claude-sonnet-4-5"),
    ]
    publish("p", SUPPORT, model("gpt-4o-mini", "openai"))
    seen = {}
    prefixes = []
    for provider, name in routes:
        chunks = list(
            pl_magic.run(
                "p", input_variables={"name": "A"}, stream=True, provider=provider, model=name
            )
        )
        assert [c["request_id"] is not None for c in chunks] == [False] * (len(chunks) - 1) + [True]
        texts = [_reply_text(c["prompt_blueprint"]) for c in chunks]
        # the reply only grows, chunk by chunk, and the last chunk holds all of it
        assert all(b.startswith(a) for a, b in itertools.pairwise(texts))
        assert texts[-1] == "alpha beta gamma delta epsilon"
        for c in chunks:
            bp = c["prompt_blueprint"]
            ran = bp["metadata"]["model"]
            assert (ran["provider"], ran["name"]) == (provider, name)
            assert bp["prompt_template"]["messages"][-1]["role"] == "assistant"
            prefixes.append(bp["prompt_template"]["messages"][:-1])
        # the same six-character deltas everywhere: the same sequence of growing texts
        # (chunks before the first text, like OpenAI's role chunk, hold an empty reply)
        seen[(provider, name)] = [t for i, t in enumerate(texts) if t and t != texts[i - 1]]
    assert len({tuple(v) for v in seen.values()}) == 1, seen
    assert all(p == prefixes[0] for p in prefixes)  # the rendered prompt, unchanged
    assert [r["status"] for r in runs()] == ["ok"] * 5


def test_cost_is_priced_for_each_family(anthropic_env, gemini_env, fake_provider):
    publish("p", SUPPORT, model("claude-sonnet-4-5", "anthropic"))
    pl_magic.run("p", input_variables={"name": "A"})
    pl_magic.run("p", input_variables={"name": "A"}, provider="google")
    costs = [r["cost_usd"] for r in runs()]
    assert all(c is not None and c > 0 for c in costs)


# -- the provider table ---------------------------------------------------------------------


def test_the_table_names_every_adapter_and_agrees_with_it():
    assert providers.supported() == ["anthropic", "google", "openai", "vertexai"]
    for name in providers.supported():
        entry = providers.info(name)
        adapter = providers.get_provider(name)
        assert entry.name == adapter.name == name
        assert entry.default_model and not hasattr(adapter, "default_model")  # one home
    with pytest.raises(UnknownProviderError) as info:
        providers.info("mistral")
    assert "use one of anthropic, google, openai, vertexai" in str(info.value)


def test_every_key_variable_is_a_secret_by_its_name():
    for entry in providers.PROVIDERS.values():
        assert all(is_secret_name(v) for v in entry.key_env_vars), entry.name
        assert not any(is_secret_name(v) for v in entry.base_url_env_vars), entry.name


@pytest.mark.parametrize(
    ("model", "provider"),
    [
        ("gpt-4o-mini", "openai"),
        ("o1-mini", "openai"),
        ("o1", "openai"),
        ("o3-mini", "openai"),
        ("o4-mini", "openai"),
        ("chatgpt-4o-latest", "openai"),
        ("claude-sonnet-4-6", "anthropic"),
        ("gemini-2.5-flash", "google"),
        ("o4", None),
        ("gpt4", None),
        ("llama3", None),
        ("Claude-3", None),
        ("", None),
    ],
)
def test_a_bare_model_name_finds_its_provider_by_prefix(model, provider):
    assert providers.provider_for_model(model) == provider


def test_suggested_models_per_provider():
    assert providers.suggested_models() == {
        "openai": ["gpt-4o-mini", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-4o", "o4-mini"],
        "anthropic": ["claude-sonnet-4-6", "claude-haiku-4-5", "claude-opus-4-1"],
        "google": ["gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.5-flash-lite"],
        "vertexai": ["gemini-2.5-flash", "gemini-2.5-pro", "claude-sonnet-4-5@20250929"],
    }


@pytest.mark.parametrize(
    ("provider", "model", "api_type", "expected"),
    [
        ("openai", "gpt-4o", None, "openai.chat.completions.create"),
        ("openai", "gpt-4o", "", "openai.chat.completions.create"),
        ("openai", "gpt-4o", "chat-completions", "openai.chat.completions.create"),
        ("openai", "gpt-4o", "completions", "openai.completions.create"),
        ("openai", "gpt-4o", "responses", "openai.responses.create"),
        ("openai", "claude-via-gateway", "chat", "openai.responses.create"),
        ("anthropic", "claude-sonnet-4-6", None, "anthropic.messages.create"),
        ("google", "gemini-2.5-flash", None, "google.model.generate_content"),
        ("google", "claude-lookalike", None, "google.model.generate_content"),
        ("vertexai", "gemini-2.5-flash", None, "google.model.generate_content"),
        ("vertexai", "claude-sonnet-4-5@20250929", None, "anthropic.messages.create"),
        ("vertexai", "Claude-upper", None, "google.model.generate_content"),
    ],
)
def test_promptlayer_function_name_comes_from_the_descriptor(provider, model, api_type, expected):
    assert providers.info(provider).function_name_for(model, api_type) == expected


def test_a_registered_entry_replaces_its_name_for_the_block_only():
    real = providers.get_provider("google")
    stand_in = dataclasses.replace(
        providers.info("google"), adapter="pl_magic.providers.openai:OpenAIProvider"
    )
    extra = dataclasses.replace(providers.info("openai"), name="extra", model_prefixes=("ex-",))
    with providers.registered(stand_in, extra):
        assert providers.get_provider("google").name == "openai"
        assert providers.provider_for_model("ex-1") == "extra"
        assert "extra" in providers.supported()
    assert providers.get_provider("google") is real
    assert "extra" not in providers.supported() and providers.provider_for_model("ex-1") is None
