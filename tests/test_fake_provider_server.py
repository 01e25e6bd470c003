"""Self-test of ``FakeProviderServer``, driven by the real provider SDKs over HTTP.

If the fake drifts from what openai, anthropic (incl. AnthropicVertex) and google-genai
(incl. Vertex) accept, or a fault stops producing the exception pl_magic must handle, these
tests fail, so tests built on the fake keep meaning something. The offline safety net
(dead proxy, no GCE probing, no real credentials) comes from ``tests/conftest.py``.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from tests.fakes.provider_server import FakeProviderServer, Recorded
from tests.fakes.service_account import write_fake_service_account

API_KEY = "sk-test-SECRET-7f3a"  # distinctive, so a test can prove no body echoes it
HELLO = "hello there world"
HELLO_ECHO = "echo: " + HELLO
# HELLO_ECHO in 4-character deltas, the server's default chunk size.
HELLO_CHUNKS = ["echo", ": he", "llo ", "ther", "e wo", "rld"]


def _user(text: str) -> Any:
    """A one-message conversation (typed Any: each SDK wants its own TypedDict)."""
    return [{"role": "user", "content": text}]


def _claude_text(message: Any) -> str:
    """Concatenated text blocks of an Anthropic message."""
    return "".join(block.text for block in message.content if block.type == "text")


def _claude_deltas(events: Any) -> list[str]:
    """Text deltas of a raw Anthropic event stream."""
    return [
        e.delta.text
        for e in events
        if e.type == "content_block_delta" and e.delta.type == "text_delta"
    ]


# Every test starts from a reset server, even one that only asks for an SDK client.
pytestmark = pytest.mark.usefixtures("fake_provider")

# Clients are module-scoped because building one costs ~0.1 s (TLS context setup), which
# adds up over this many tests. Retries are off unless a test opts in with with_options().


@pytest.fixture(scope="module")
def oai(fake_provider_server: FakeProviderServer) -> openai.OpenAI:
    return openai.OpenAI(
        api_key=API_KEY, base_url=fake_provider_server.openai_base_url, max_retries=0
    )


@pytest.fixture(scope="module")
def claude(fake_provider_server: FakeProviderServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        api_key=API_KEY, base_url=fake_provider_server.anthropic_base_url, max_retries=0
    )


@pytest.fixture(scope="module")
def gemini(fake_provider_server: FakeProviderServer) -> genai.Client:
    # Held in a fixture on purpose: a temporary genai.Client closes its HTTP client when
    # garbage-collected, failing the call made on it.
    return genai.Client(
        api_key=API_KEY, http_options={"base_url": fake_provider_server.gemini_base_url}
    )


@pytest.fixture
def service_account(
    fake_provider: FakeProviderServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """ADC through a fake service account whose token_uri is the fake server (§2b)."""
    path = write_fake_service_account(tmp_path / "sa.json", fake_provider.token_uri)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    return path


@pytest.fixture
def claude_vertex(
    fake_provider: FakeProviderServer, service_account: Path
) -> anthropic.AnthropicVertex:
    return anthropic.AnthropicVertex(
        region="us-east5",
        project_id="p1",
        base_url=fake_provider.anthropic_vertex_base_url,
        max_retries=0,
    )


@pytest.fixture
def gemini_vertex(fake_provider: FakeProviderServer, service_account: Path) -> genai.Client:
    # project/location must be explicit with a custom base_url, or genai POSTs to "/"
    # without credentials ("API-gateway mode").
    return genai.Client(
        vertexai=True,
        project="p1",
        location="us-central1",
        http_options={"base_url": fake_provider.vertex_base_url},
    )


def _only(server: FakeProviderServer, kind: str) -> Recorded:
    """The single recorded request of ``kind`` (fails when there are more or fewer)."""
    (rec,) = server.requests_for(kind)
    return rec


# -- OpenAI chat completions ---------------------------------------------------------------------


def test_openai_chat_non_stream(fake_provider: FakeProviderServer, oai: openai.OpenAI) -> None:
    resp = oai.chat.completions.create(
        model="gpt-x",
        messages=[{"role": "system", "content": "be brief"}, *_user(HELLO)],
    )

    assert resp.choices[0].message.content == HELLO_ECHO
    assert resp.choices[0].finish_reason == "stop"
    assert resp.id.startswith("chatcmpl-")
    assert resp.model == "gpt-x"
    assert resp.usage is not None
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (5, 4)
    assert resp.usage.total_tokens == 9
    rec = _only(fake_provider, "openai.chat")
    assert (rec.method, rec.path, rec.model, rec.stream) == (
        "POST",
        "/v1/chat/completions",
        "gpt-x",
        False,
    )
    assert rec.headers["authorization"] == f"Bearer {API_KEY}"
    assert rec.body["messages"][1] == {"role": "user", "content": HELLO}
    assert rec.retry_count == 0


@pytest.mark.parametrize("include_usage", [False, True])
def test_openai_chat_stream_raw_chunks(
    fake_provider: FakeProviderServer, oai: openai.OpenAI, include_usage: bool
) -> None:
    chunks = list(
        oai.chat.completions.create(
            model="gpt-x",
            messages=_user(HELLO),
            stream=True,
            stream_options={"include_usage": include_usage},
        )
    )

    assert chunks[0].choices[0].delta.role == "assistant"
    texts = [
        c.choices[0].delta.content for c in chunks[1:] if c.choices and c.choices[0].delta.content
    ]
    assert texts == HELLO_CHUNKS
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    assert finishes.count("stop") == 1
    usage_chunks = [c for c in chunks if not c.choices]
    if include_usage:
        (usage_chunk,) = usage_chunks
        assert usage_chunk is chunks[-1]
        assert usage_chunk.usage is not None
        assert usage_chunk.usage.completion_tokens == 4
    else:
        assert usage_chunks == []
    assert {c.id for c in chunks} == {chunks[0].id}
    assert _only(fake_provider, "openai.chat").stream is True


def test_openai_chat_stream_accumulator(oai: openai.OpenAI) -> None:
    with oai.chat.completions.stream(
        model="gpt-x", messages=_user(HELLO), stream_options={"include_usage": True}
    ) as stream:
        final = stream.get_final_completion()

    assert final.choices[0].message.content == HELLO_ECHO
    assert final.choices[0].finish_reason == "stop"
    assert final.usage is not None
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (3, 4)


# -- OpenAI legacy completions -------------------------------------------------------------------


def test_openai_completions(fake_provider: FakeProviderServer, oai: openai.OpenAI) -> None:
    resp = oai.completions.create(model="gpt-instruct", prompt=HELLO)
    chunks = list(oai.completions.create(model="gpt-instruct", prompt=HELLO, stream=True))

    assert resp.choices[0].text == HELLO_ECHO
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None
    assert resp.usage.prompt_tokens == 3
    assert [c.choices[0].text for c in chunks[:-1]] == HELLO_CHUNKS
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert [(r.path, r.stream) for r in fake_provider.requests_for("openai.completions")] == [
        ("/v1/completions", False),
        ("/v1/completions", True),
    ]


# -- OpenAI Responses ----------------------------------------------------------------------------

RESPONSES_INPUT: list[Any] = [
    {"role": "user", "content": "first question"},
    {"role": "assistant", "content": "ok"},
    {"role": "user", "content": [{"type": "input_text", "text": HELLO}]},
]


def test_openai_responses_non_stream(fake_provider: FakeProviderServer, oai: openai.OpenAI) -> None:
    resp = oai.responses.create(model="gpt-x", input=RESPONSES_INPUT, instructions="be terse")

    assert resp.output_text == HELLO_ECHO
    assert resp.status == "completed"
    assert resp.usage is not None
    # first question (2) + ok (1) + HELLO (3) + instructions (2)
    assert (resp.usage.input_tokens, resp.usage.output_tokens) == (8, 4)
    rec = _only(fake_provider, "openai.responses")
    assert (rec.path, rec.stream, rec.model) == ("/v1/responses", False, "gpt-x")


def test_openai_responses_stream_events(oai: openai.OpenAI) -> None:
    with oai.responses.stream(model="gpt-x", input=HELLO) as stream:
        events = list(stream)
        final = stream.get_final_response()

    n = len(HELLO_CHUNKS)
    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * n,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert [e.delta for e in events if e.type == "response.output_text.delta"] == HELLO_CHUNKS
    assert final.output_text == HELLO_ECHO
    assert final.usage is not None
    assert final.usage.output_tokens == 4


# -- Anthropic first-party -----------------------------------------------------------------------


def test_anthropic_messages_non_stream(
    fake_provider: FakeProviderServer, claude: anthropic.Anthropic
) -> None:
    msg = claude.messages.create(
        model="claude-x",
        max_tokens=64,
        system="be brief",
        messages=[{"role": "user", "content": [{"type": "text", "text": HELLO}]}],
    )

    assert _claude_text(msg) == HELLO_ECHO
    assert (msg.stop_reason, msg.model) == ("end_turn", "claude-x")
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (5, 4)
    rec = _only(fake_provider, "anthropic.messages")
    assert (rec.path, rec.stream, rec.model) == ("/v1/messages", False, "claude-x")
    # anthropic 2.x sends the key as a bearer token, not x-api-key.
    assert rec.headers["authorization"] == f"Bearer {API_KEY}"
    assert "anthropic-version" in rec.headers
    assert rec.retry_count == 0


def test_anthropic_messages_stream(
    fake_provider: FakeProviderServer, claude: anthropic.Anthropic
) -> None:
    raw = list(
        claude.messages.create(model="claude-x", max_tokens=64, messages=_user(HELLO), stream=True)
    )
    with claude.messages.stream(model="claude-x", max_tokens=64, messages=_user(HELLO)) as stream:
        final = stream.get_final_message()

    n = len(HELLO_CHUNKS)
    # ping is sent but the SDK drops it.
    assert [e.type for e in raw] == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * n,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert _claude_deltas(raw) == HELLO_CHUNKS
    assert _claude_text(final) == HELLO_ECHO
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (3, 4)
    assert [r.stream for r in fake_provider.requests_for("anthropic.messages")] == [True, True]


def test_anthropic_accepts_x_api_key_and_rejects_missing_credentials(
    fake_provider: FakeProviderServer,
) -> None:
    url = fake_provider.anthropic_base_url + "/v1/messages"
    body = {"model": "claude-x", "max_tokens": 8, "messages": _user(HELLO)}

    ok = httpx2.post(url, json=body, headers={"x-api-key": API_KEY})
    denied = httpx2.post(url, json=body)

    assert ok.status_code == 200
    assert ok.json()["content"][0]["text"] == HELLO_ECHO
    assert denied.status_code == 401
    assert denied.json()["error"]["type"] == "authentication_error"
    assert denied.headers["request-id"] == denied.json()["request_id"]


# -- Vertex: AnthropicVertex and genai with a fake service account -------------------------------


def test_anthropic_vertex_with_service_account(
    fake_provider: FakeProviderServer, claude_vertex: anthropic.AnthropicVertex
) -> None:
    model = "claude-x@2025"
    msg = claude_vertex.messages.create(model=model, max_tokens=64, messages=_user(HELLO))
    with claude_vertex.messages.stream(model=model, max_tokens=64, messages=_user(HELLO)) as s:
        streamed = s.get_final_message()

    assert _claude_text(msg) == HELLO_ECHO
    assert msg.model == model
    assert _claude_text(streamed) == HELLO_ECHO
    assert streamed.usage.output_tokens == 4
    token = _only(fake_provider, "token")  # fetched once, then cached
    assert b"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer" in token.raw
    base = f"/v1/projects/p1/locations/us-east5/publishers/anthropic/models/{model}"
    calls = fake_provider.requests_for("anthropic.vertex")
    assert [(r.path, r.stream, r.model) for r in calls] == [
        (base + ":rawPredict", False, model),
        (base + ":streamRawPredict", True, model),
    ]
    for rec in calls:
        assert rec.headers["authorization"] == "Bearer ya29.fake"
        assert "model" not in rec.body
        assert "anthropic_version" in rec.body
    assert calls[1].body["stream"] is True


def test_vertex_gemini_with_service_account(
    fake_provider: FakeProviderServer, gemini_vertex: genai.Client
) -> None:
    resp = gemini_vertex.models.generate_content(model="gemini-x", contents=HELLO)
    chunks = list(gemini_vertex.models.generate_content_stream(model="gemini-x", contents=HELLO))

    assert resp.text == HELLO_ECHO
    assert "".join(c.text or "" for c in chunks) == HELLO_ECHO
    _only(fake_provider, "token")
    base = "/v1beta1/projects/p1/locations/us-central1/publishers/google/models/gemini-x"
    calls = fake_provider.requests_for("vertex.gemini")
    assert [(r.path, r.query, r.stream) for r in calls] == [
        (base + ":generateContent", {}, False),
        (base + ":streamGenerateContent", {"alt": "sse"}, True),
    ]
    assert {r.headers["authorization"] for r in calls} == {"Bearer ya29.fake"}


def test_vertex_express_mode_uses_api_key(fake_provider: FakeProviderServer) -> None:
    client = genai.Client(
        vertexai=True, api_key=API_KEY, http_options={"base_url": fake_provider.vertex_base_url}
    )

    assert client.models.generate_content(model="gemini-x", contents=HELLO).text == HELLO_ECHO
    rec = _only(fake_provider, "vertex.gemini")
    assert rec.path == "/v1beta1/publishers/google/models/gemini-x:generateContent"
    assert rec.headers["x-goog-api-key"] == API_KEY
    assert fake_provider.requests_for("token") == []


# -- Gemini API ----------------------------------------------------------------------------------


def test_gemini_non_stream(fake_provider: FakeProviderServer, gemini: genai.Client) -> None:
    resp = gemini.models.generate_content(
        model="gemini-x",
        contents=HELLO,
        config=genai_types.GenerateContentConfig(system_instruction="be brief"),
    )

    assert resp.text == HELLO_ECHO
    assert resp.candidates is not None
    assert resp.candidates[0].finish_reason == genai_types.FinishReason.STOP
    assert resp.usage_metadata is not None
    assert resp.usage_metadata.prompt_token_count == 5
    assert resp.usage_metadata.candidates_token_count == 4
    rec = _only(fake_provider, "gemini")
    # genai 3.x defaults to /v1, not /v1beta.
    assert (rec.path, rec.model, rec.stream) == (
        "/v1/models/gemini-x:generateContent",
        "gemini-x",
        False,
    )
    assert rec.headers["x-goog-api-key"] == API_KEY


def test_gemini_stream(fake_provider: FakeProviderServer, gemini: genai.Client) -> None:
    chunks = list(gemini.models.generate_content_stream(model="models/gemini-x", contents=HELLO))

    assert [c.text for c in chunks] == HELLO_CHUNKS
    finishes = [c.candidates[0].finish_reason if c.candidates else None for c in chunks]
    assert finishes == [None] * (len(chunks) - 1) + [genai_types.FinishReason.STOP]
    assert chunks[-1].usage_metadata is not None
    assert chunks[-1].usage_metadata.total_token_count == 7
    assert all(c.usage_metadata is None for c in chunks[:-1])
    rec = _only(fake_provider, "gemini")
    assert (rec.path, rec.query, rec.stream) == (
        "/v1/models/gemini-x:streamGenerateContent",
        {"alt": "sse"},
        True,
    )


def test_gemini_v1beta(fake_provider: FakeProviderServer) -> None:
    client = genai.Client(
        api_key=API_KEY,
        http_options={"base_url": fake_provider.gemini_base_url, "api_version": "v1beta"},
    )

    assert client.models.generate_content(model="gemini-x", contents=HELLO).text == HELLO_ECHO
    assert _only(fake_provider, "gemini").path == "/v1beta/models/gemini-x:generateContent"


# -- Knobs ---------------------------------------------------------------------------------------


def test_reply_text_and_chunk_size(fake_provider: FakeProviderServer, oai: openai.OpenAI) -> None:
    fake_provider.reply_text = "abcdefg"
    fake_provider.chunk_size = 3

    resp = oai.chat.completions.create(model="gpt-x", messages=_user(HELLO))
    stream = oai.chat.completions.create(model="gpt-x", messages=_user(HELLO), stream=True)
    deltas = [
        c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content
    ]

    assert resp.choices[0].message.content == "abcdefg"
    assert deltas == ["abc", "def", "g"]


def test_stream_chunks_override(
    fake_provider: FakeProviderServer, claude: anthropic.Anthropic
) -> None:
    fake_provider.stream_chunks = ["Hel", "lo, ", "wor", "ld"]

    events = list(
        claude.messages.create(model="claude-x", max_tokens=8, messages=_user(HELLO), stream=True)
    )
    msg = claude.messages.create(model="claude-x", max_tokens=8, messages=_user(HELLO))

    assert _claude_deltas(events) == fake_provider.stream_chunks
    assert _claude_text(msg) == "Hello, world"
    assert msg.usage.output_tokens == 2


def test_reset_restores_defaults(fake_provider: FakeProviderServer, oai: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError):
        oai.chat.completions.create(model="flaky-429-m", messages=_user(HELLO))
    list(oai.chat.completions.create(model="flaky-429-m", messages=_user(HELLO), stream=True))
    assert fake_provider.final_sent_count == 1
    fake_provider.reply_text = "fixed"
    fake_provider.chunk_size = 1
    fake_provider.stream_chunks = ["a", "b"]
    fake_provider.delay_s = 5.0
    fake_provider.chunk_delay_s = 5.0
    fake_provider.hold_before_last = threading.Event()
    fake_provider.fail_next("err-500")

    fake_provider.reset()

    assert fake_provider.requests == []
    assert fake_provider.final_sent_count == 0
    knobs = (
        fake_provider.reply_text,
        fake_provider.chunk_size,
        fake_provider.stream_chunks,
        fake_provider.delay_s,
        fake_provider.chunk_delay_s,
        fake_provider.hold_before_last,
    )
    assert knobs == (None, 4, None, 0.0, 0.0, None)
    # Fault queue cleared, and the flaky model fails once more (flaky memory cleared too).
    with pytest.raises(openai.RateLimitError):
        oai.chat.completions.create(model="flaky-429-m", messages=_user(HELLO))
    resp = oai.chat.completions.create(model="flaky-429-m", messages=_user(HELLO))
    assert resp.choices[0].message.content == HELLO_ECHO


def test_unknown_path_is_404_and_recorded(fake_provider: FakeProviderServer) -> None:
    resp = httpx2.get(fake_provider.url + "/v1/models")

    assert resp.status_code == 404
    rec = _only(fake_provider, "unknown")
    assert (rec.method, rec.path) == ("GET", "/v1/models")


def test_rejects_unknown_fault_and_kind(fake_provider: FakeProviderServer) -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        fake_provider.fail_next("err-418")
    with pytest.raises(ValueError, match="unknown kind"):
        fake_provider.requests_for("openai")


def test_hold_before_last_lets_client_see_chunks_first(
    fake_provider: FakeProviderServer, oai: openai.OpenAI
) -> None:
    gate = threading.Event()
    fake_provider.hold_before_last = gate
    stream = iter(oai.chat.completions.create(model="gpt-x", messages=_user(HELLO), stream=True))

    # The role chunk plus every delta but the last arrive while the server holds the stream.
    early = [next(stream) for _ in range(len(HELLO_CHUNKS))]
    assert [c.choices[0].delta.content for c in early[1:]] == HELLO_CHUNKS[:-1]
    assert fake_provider.final_sent_count == 0
    # The hold must not block the event loop: another request is answered meanwhile.
    other = oai.chat.completions.create(model="gpt-x", messages=_user("still serving"))
    assert other.choices[0].message.content == "echo: still serving"

    gate.set()
    rest = list(stream)

    assert rest[0].choices[0].delta.content == HELLO_CHUNKS[-1]
    assert rest[-1].choices[0].finish_reason == "stop"
    assert fake_provider.final_sent_count == 1


def test_delay_s_triggers_client_timeout(
    fake_provider: FakeProviderServer, oai: openai.OpenAI
) -> None:
    fake_provider.delay_s = 0.5

    with pytest.raises(openai.APITimeoutError):
        oai.with_options(timeout=0.1).chat.completions.create(model="gpt-x", messages=_user(HELLO))


def test_chunk_delay_s_spaces_deltas(
    fake_provider: FakeProviderServer, gemini: genai.Client
) -> None:
    fake_provider.chunk_delay_s = 0.05
    arrivals = [
        time.monotonic()
        for _ in gemini.models.generate_content_stream(model="gemini-x", contents=HELLO)
    ]

    assert len(arrivals) == len(HELLO_CHUNKS)
    assert arrivals[-1] - arrivals[0] >= 0.05 * (len(HELLO_CHUNKS) - 1) * 0.9


# -- HTTP status faults --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "exc_type", "status", "code"),
    [
        ("err-401", openai.AuthenticationError, 401, "invalid_api_key"),
        ("err-403", openai.PermissionDeniedError, 403, "permission_denied"),
        ("err-404", openai.NotFoundError, 404, "model_not_found"),
        ("err-429", openai.RateLimitError, 429, "rate_limit_exceeded"),
        ("err-500", openai.InternalServerError, 500, None),
        ("err-503", openai.InternalServerError, 503, None),
        ("err-529", openai.InternalServerError, 529, None),
    ],
)
def test_openai_status_faults_by_model_name(
    fake_provider: FakeProviderServer,
    oai: openai.OpenAI,
    fault: str,
    exc_type: type[openai.APIStatusError],
    status: int,
    code: str | None,
) -> None:
    with pytest.raises(exc_type) as info:
        oai.chat.completions.create(model=f"gpt-x-{fault}", messages=_user(HELLO))

    assert info.value.status_code == status
    assert info.value.code == code
    assert API_KEY not in info.value.response.text
    assert len(fake_provider.requests_for("openai.chat")) == 1


@pytest.mark.parametrize(
    ("fault", "exc_type", "status", "error_type"),
    [
        ("err-401", anthropic.AuthenticationError, 401, "authentication_error"),
        ("err-403", anthropic.PermissionDeniedError, 403, "permission_error"),
        ("err-404", anthropic.NotFoundError, 404, "not_found_error"),
        ("err-429", anthropic.RateLimitError, 429, "rate_limit_error"),
        ("err-500", anthropic.InternalServerError, 500, "api_error"),
        ("err-503", anthropic.ServiceUnavailableError, 503, "api_error"),
        ("err-529", anthropic.OverloadedError, 529, "overloaded_error"),
    ],
)
def test_anthropic_status_faults_from_queue(
    fake_provider: FakeProviderServer,
    claude: anthropic.Anthropic,
    fault: str,
    exc_type: type[anthropic.APIStatusError],
    status: int,
    error_type: str,
) -> None:
    fake_provider.fail_next(fault)

    with pytest.raises(exc_type) as info:
        claude.messages.create(model="claude-x", max_tokens=8, messages=_user(HELLO))
    # The queue entry is used up: the next call succeeds.
    ok = claude.messages.create(model="claude-x", max_tokens=8, messages=_user(HELLO))

    assert info.value.status_code == status
    assert info.value.type == error_type
    assert info.value.request_id is not None
    assert info.value.request_id.startswith("req_fake_")
    assert API_KEY not in info.value.response.text
    assert _claude_text(ok) == HELLO_ECHO


@pytest.mark.parametrize(
    ("fault", "exc_type", "status", "google_status"),
    [
        ("err-401", genai_errors.ClientError, 401, "UNAUTHENTICATED"),
        ("err-403", genai_errors.ClientError, 403, "PERMISSION_DENIED"),
        ("err-404", genai_errors.ClientError, 404, "NOT_FOUND"),
        ("err-429", genai_errors.ClientError, 429, "RESOURCE_EXHAUSTED"),
        ("err-500", genai_errors.ServerError, 500, "INTERNAL"),
        ("err-503", genai_errors.ServerError, 503, "UNAVAILABLE"),
    ],
)
def test_gemini_status_faults(
    fake_provider: FakeProviderServer,
    gemini: genai.Client,
    fault: str,
    exc_type: type[genai_errors.APIError],
    status: int,
    google_status: str,
) -> None:
    with pytest.raises(exc_type) as info:
        gemini.models.generate_content(model=f"gemini-{fault}", contents=HELLO)

    assert (info.value.code, info.value.status) == (status, google_status)
    assert API_KEY not in str(info.value.details)
    assert len(fake_provider.requests_for("gemini")) == 1  # genai does not retry by default


def test_retryable_errors_carry_short_retry_hints(fake_provider: FakeProviderServer) -> None:
    body = {"model": "gpt-x-err-429", "messages": _user(HELLO)}
    headers = {"authorization": f"Bearer {API_KEY}"}
    url = fake_provider.openai_base_url + "/chat/completions"

    rate_limited = httpx2.post(url, json=body, headers=headers)
    forbidden = httpx2.post(url, json={**body, "model": "gpt-x-err-403"}, headers=headers)

    assert rate_limited.status_code == 429
    assert rate_limited.headers["retry-after-ms"] == "10"
    assert rate_limited.headers["retry-after"] == "0"
    assert "retry-after-ms" not in forbidden.headers


def test_missing_openai_credentials_get_401(fake_provider: FakeProviderServer) -> None:
    resp = httpx2.post(
        fake_provider.openai_base_url + "/chat/completions",
        json={"model": "gpt-x", "messages": _user(HELLO)},
    )

    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "invalid_api_key"


# -- Retries -------------------------------------------------------------------------------------


def test_openai_retries_429_twice_then_raises(
    fake_provider: FakeProviderServer, oai: openai.OpenAI
) -> None:
    client = oai.with_options(max_retries=2)  # the SDK default
    start = time.monotonic()

    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-x-err-429", messages=_user(HELLO))

    assert [r.retry_count for r in fake_provider.requests_for("openai.chat")] == [0, 1, 2]
    # retry-after-ms: 10 must win over the SDK backoff (0.5 s + 1 s, minus up to 25 % jitter).
    assert time.monotonic() - start < 1.0


def test_openai_flaky_429_succeeds_on_retry_once_per_model(
    fake_provider: FakeProviderServer, oai: openai.OpenAI
) -> None:
    client = oai.with_options(max_retries=2)

    def ask() -> str | None:
        resp = client.chat.completions.create(model="flaky-429-model", messages=_user(HELLO))
        return resp.choices[0].message.content

    assert [ask(), ask()] == [HELLO_ECHO, HELLO_ECHO]
    # One 429 and its retry, then the second call goes through at once.
    assert [r.retry_count for r in fake_provider.requests_for("openai.chat")] == [0, 1, 0]

    fake_provider.reset()  # forgets which models already failed

    assert ask() == HELLO_ECHO
    assert [r.retry_count for r in fake_provider.requests_for("openai.chat")] == [0, 1]


def test_anthropic_retries_529_and_recovers_from_flaky_500(
    fake_provider: FakeProviderServer, claude: anthropic.Anthropic
) -> None:
    client = claude.with_options(max_retries=2)

    with pytest.raises(anthropic.OverloadedError):
        client.messages.create(model="claude-err-529", max_tokens=8, messages=_user(HELLO))
    ok = client.messages.create(model="claude-flaky-500", max_tokens=8, messages=_user(HELLO))

    counts = [(r.model, r.retry_count) for r in fake_provider.requests_for("anthropic.messages")]
    assert counts == [
        ("claude-err-529", 0),
        ("claude-err-529", 1),
        ("claude-err-529", 2),
        ("claude-flaky-500", 0),
        ("claude-flaky-500", 1),
    ]
    assert _claude_text(ok) == HELLO_ECHO


def test_gemini_retries_only_when_configured(fake_provider: FakeProviderServer) -> None:
    retrying = genai.Client(
        api_key=API_KEY,
        http_options=genai_types.HttpOptions(
            base_url=fake_provider.gemini_base_url,
            retry_options=genai_types.HttpRetryOptions(
                attempts=3, initial_delay=0.01, max_delay=0.02, http_status_codes=[429]
            ),
        ),
    )

    resp = retrying.models.generate_content(model="gemini-flaky-429", contents=HELLO)
    with pytest.raises(genai_errors.ClientError):
        retrying.models.generate_content(model="gemini-err-429", contents=HELLO)

    assert resp.text == HELLO_ECHO
    models = [r.model for r in fake_provider.requests_for("gemini")]
    assert models == ["gemini-flaky-429"] * 2 + ["gemini-err-429"] * 3
    # genai sends no retry counter header, unlike openai/anthropic.
    assert {r.retry_count for r in fake_provider.requests} == {None}


# -- Stream faults: cut (connection dropped) -----------------------------------------------------


def test_cut_openai_stream_raises_connection_error_after_text(oai: openai.OpenAI) -> None:
    received: list[str] = []
    with pytest.raises(openai.APIConnectionError) as info:
        for chunk in oai.chat.completions.create(
            model="gpt-cut", messages=_user(HELLO), stream=True
        ):
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)

    assert received == HELLO_CHUNKS[:3]
    assert isinstance(info.value.__cause__, httpx2.RemoteProtocolError)


def test_cut_openai_non_stream(fake_provider: FakeProviderServer, oai: openai.OpenAI) -> None:
    with pytest.raises(openai.APIConnectionError):
        oai.chat.completions.create(model="gpt-cut", messages=_user(HELLO))

    assert len(fake_provider.requests_for("openai.chat")) == 1


def test_cut_anthropic_stream_raises_raw_transport_error(claude: anthropic.Anthropic) -> None:
    # anthropic does not wrap this one: pl_magic must catch httpx2.TransportError too.
    with (
        pytest.raises(httpx2.RemoteProtocolError),
        claude.messages.stream(model="claude-cut", max_tokens=8, messages=_user(HELLO)) as stream,
    ):
        stream.get_final_message()


def test_cut_gemini_stream_raises_raw_transport_error(gemini: genai.Client) -> None:
    received: list[str | None] = []
    with pytest.raises(httpx2.RemoteProtocolError):
        for chunk in gemini.models.generate_content_stream(model="gemini-cut", contents=HELLO):
            received.append(chunk.text)

    assert received == HELLO_CHUNKS[:3]


# -- Stream faults: eof (clean end, no terminal event) -------------------------------------------


def test_eof_openai_chat_stream_ends_without_finish_reason(oai: openai.OpenAI) -> None:
    chunks = list(oai.chat.completions.create(model="gpt-eof", messages=_user(HELLO), stream=True))

    assert [c.choices[0].delta.content for c in chunks[1:]] == HELLO_CHUNKS[:3]
    assert {c.choices[0].finish_reason for c in chunks} == {None}


def test_eof_openai_non_stream_has_no_finish_reason(oai: openai.OpenAI) -> None:
    resp = oai.chat.completions.create(model="gpt-eof", messages=_user(HELLO))

    assert resp.choices[0].message.content == "".join(HELLO_CHUNKS[:3])
    assert resp.choices[0].finish_reason is None


def test_eof_responses_accumulator_raises(oai: openai.OpenAI) -> None:
    with (
        pytest.raises(RuntimeError, match=r"response\.completed"),
        oai.responses.stream(model="gpt-eof", input=HELLO) as stream,
    ):
        stream.get_final_response()


def test_eof_anthropic_final_message_has_no_stop_reason(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(model="claude-eof", max_tokens=8, messages=_user(HELLO)) as stream:
        final = stream.get_final_message()

    assert final.stop_reason is None
    assert _claude_text(final) == "".join(HELLO_CHUNKS[:3])


def test_eof_gemini_stream_has_no_finish_reason(gemini_vertex: genai.Client) -> None:
    chunks = list(gemini_vertex.models.generate_content_stream(model="gemini-eof", contents=HELLO))

    assert [c.text for c in chunks] == HELLO_CHUNKS[:3]
    assert all(c.candidates and c.candidates[0].finish_reason is None for c in chunks)


# -- Stream faults: sse-error (in-band error event) ----------------------------------------------


def test_sse_error_openai_chat_raises_api_error(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.APIError) as info:
        list(oai.chat.completions.create(model="gpt-sse-error", messages=_user(HELLO), stream=True))

    assert not isinstance(info.value, openai.APIStatusError)
    assert info.value.type == "server_error"


def test_sse_error_responses_event_is_yielded(oai: openai.OpenAI) -> None:
    events = list(oai.responses.create(model="gpt-sse-error", input=HELLO, stream=True))

    assert events[-1].type == "error"
    assert events[-1].code == "server_error"
    assert not any(e.type == "response.completed" for e in events)


def test_sse_error_anthropic_raises_status_error_with_200(
    claude_vertex: anthropic.AnthropicVertex,
) -> None:
    with pytest.raises(anthropic.APIStatusError) as info:
        list(
            claude_vertex.messages.create(
                model="claude-sse-error", max_tokens=8, messages=_user(HELLO), stream=True
            )
        )

    assert info.value.status_code == 200
    assert info.value.type == "overloaded_error"
    assert not isinstance(info.value, anthropic.OverloadedError)


def test_sse_error_gemini_raises_server_error(gemini: genai.Client) -> None:
    with pytest.raises(genai_errors.ServerError) as info:
        list(gemini.models.generate_content_stream(model="gemini-sse-error", contents=HELLO))

    assert (info.value.code, info.value.status) == (500, "INTERNAL")


def test_sse_error_non_stream_is_a_500(
    fake_provider: FakeProviderServer, gemini: genai.Client
) -> None:
    fake_provider.fail_next("sse-error")

    with pytest.raises(genai_errors.ServerError):
        gemini.models.generate_content(model="gemini-x", contents=HELLO)
