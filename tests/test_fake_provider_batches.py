"""Self-test of the fake provider server's batch APIs, driven by the official SDKs over HTTP.

Each provider's batch life cycle (submit → poll → results → cancel, list, partial errors,
limits) goes through the SDK's own batch methods, and every result is checked against what
the live non-streamed call answers for the same request, so batch mode built on this fake
sees the same answers as live runs.
"""

from __future__ import annotations

import json
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

from tests.fakes.provider_server import FakeProviderServer
from tests.fakes.service_account import write_fake_service_account

API_KEY = "sk-test-batch-5c1e"

pytestmark = pytest.mark.usefixtures("fake_provider")


def _without_ids(obj: Any) -> Any:
    """``obj`` without its ``id`` keys (each answer gets a fresh id, live or batched)."""
    if isinstance(obj, dict):
        return {k: _without_ids(v) for k, v in obj.items() if k not in ("id", "responseId")}
    if isinstance(obj, list):
        return [_without_ids(v) for v in obj]
    return obj


def _jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def claude(fake_provider_server: FakeProviderServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        api_key=API_KEY, base_url=fake_provider_server.anthropic_base_url, max_retries=0
    )


@pytest.fixture(scope="module")
def oai(fake_provider_server: FakeProviderServer) -> openai.OpenAI:
    return openai.OpenAI(
        api_key=API_KEY, base_url=fake_provider_server.openai_base_url, max_retries=0
    )


# -- OpenAI ----------------------------------------------------------------------------------


def _chat_line(custom_id: str, text: str, model: str = "gpt-4o-mini") -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": model, "messages": [{"role": "user", "content": text}]},
    }


def _upload(oai: openai.OpenAI, lines: list[Any], name: str = "batch.jsonl") -> str:
    data = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines)
    return oai.files.create(file=(name, data.encode()), purpose="batch").id


def _submit(oai: openai.OpenAI, lines: list[Any], endpoint: Any = "/v1/chat/completions") -> Any:
    file_id = _upload(oai, lines)
    return oai.batches.create(input_file_id=file_id, endpoint=endpoint, completion_window="24h")


def test_openai_life_cycle_matches_live_answers(
    fake_provider: FakeProviderServer, oai: openai.OpenAI
) -> None:
    fake_provider.batches.processing_polls = 3
    lines = [
        _chat_line("a", "first question"),
        _chat_line("b", "second batch-err-400 question"),
        _chat_line("c", "third question"),
        _chat_line("d", "fourth question"),
    ]
    file_id = _upload(oai, lines)
    created = oai.batches.create(
        input_file_id=file_id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"comparison": "cmp-1"},
    )
    assert created.status == "validating"
    assert created.metadata == {"comparison": "cmp-1"}
    assert created.model == "gpt-4o-mini"
    assert created.request_counts is not None and created.request_counts.total == 4

    seen = [oai.batches.retrieve(created.id) for _ in range(4)]
    assert [b.status for b in seen] == ["in_progress", "in_progress", "finalizing", "completed"]
    done = [b.request_counts.completed + b.request_counts.failed for b in seen[:3]]
    assert done == sorted(done) and done[-1] < 4  # progress grows while in progress
    final = seen[-1]
    assert final.request_counts.model_dump() == {"completed": 3, "failed": 1, "total": 4}
    assert final.output_file_id and final.error_file_id and final.completed_at

    output = _jsonl(oai.files.content(final.output_file_id).text)
    assert [o["custom_id"] for o in output] == ["a", "c", "d"]
    live = oai.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "first question"}]
    ).http_response.json()
    first = output[0]
    assert first["error"] is None and first["response"]["status_code"] == 200
    assert _without_ids(first["response"]["body"]) == _without_ids(live)
    usage = final.usage
    assert usage is not None and usage.input_tokens == 6 and usage.output_tokens == 9

    (failed,) = _jsonl(oai.files.content(final.error_file_id).text)
    assert failed["custom_id"] == "b" and failed["response"]["status_code"] == 400
    assert failed["response"]["body"]["error"]["type"] == "invalid_request_error"

    batch_calls = [(c.action, c.target) for c in fake_provider.batches.calls_of("openai")]
    assert batch_calls[:2] == [("upload", file_id), ("create", created.id)]
    assert len(fake_provider.batches.submitted("openai")) == 1
    assert len(fake_provider.requests_for("openai.batches")) == 5


def test_openai_submitted_shows_a_batchs_requests_before_its_first_read(
    fake_provider: FakeProviderServer, oai: openai.OpenAI
) -> None:
    # The fake validates an OpenAI input file at the batch's first read; a test looking at
    # what was submitted before any read (wait=False) must still see every request, not
    # an empty list that makes its assertions on them pass vacuously.
    fake_provider.batches.processing_polls = 2
    batch = _submit(oai, [_chat_line(f"r{i}", f"question {i}") for i in range(3)])
    (job,) = fake_provider.batches.submitted("openai")
    assert [r.custom_id for r in job.requests] == ["r0", "r1", "r2"]
    assert job.requests[0].body["messages"][0]["content"] == "question 0"
    # looking is not a read of the batch: it has not moved on
    assert [c.action for c in fake_provider.batches.calls_of("openai")] == ["upload", "create"]
    assert oai.batches.retrieve(batch.id).status == "in_progress"


def test_openai_responses_endpoint_with_structured_output(
    fake_provider: FakeProviderServer, oai: openai.OpenAI
) -> None:
    schema = {
        "type": "object",
        "properties": {
            "label": {"type": "string", "enum": ["yes", "no"]},
            "score": {"type": "integer"},
        },
        "required": ["label", "score"],
        "additionalProperties": False,
    }
    text_format = {"format": {"type": "json_schema", "name": "verdict", "schema": schema}}
    body = {"model": "gpt-4.1", "input": "is it good?", "text": text_format}
    batch = _submit(
        oai,
        [{"custom_id": "q1", "method": "POST", "url": "/v1/responses", "body": body}],
        endpoint="/v1/responses",
    )
    batch = oai.batches.retrieve(batch.id)
    assert batch.status == "completed"
    (line,) = _jsonl(oai.files.content(batch.output_file_id).text)
    answer = line["response"]["body"]
    assert json.loads(answer["output"][0]["content"][0]["text"]) == {"label": "yes", "score": 1}
    live = oai.responses.with_raw_response.create(**body).http_response.json()
    assert _without_ids(answer) == _without_ids(live)


def test_openai_cancel_keeps_processed_results(
    fake_provider: FakeProviderServer, oai: openai.OpenAI
) -> None:
    fake_provider.batches.processing_polls = 100
    fake_provider.batches.processed_before_stop = 1
    batch = _submit(oai, [_chat_line(f"r{i}", f"question {i}") for i in range(3)])
    assert oai.batches.retrieve(batch.id).status == "in_progress"
    cancelling = oai.batches.cancel(batch.id)
    assert cancelling.status == "cancelling" and cancelling.cancelling_at
    cancelled = oai.batches.retrieve(batch.id)
    assert cancelled.status == "cancelled" and cancelled.cancelled_at
    assert cancelled.request_counts.model_dump() == {"completed": 1, "failed": 0, "total": 3}
    (ok,) = _jsonl(oai.files.content(cancelled.output_file_id).text)
    assert ok["custom_id"] == "r0"
    rest = _jsonl(oai.files.content(cancelled.error_file_id).text)
    assert [(r["custom_id"], r["response"], r["error"]["code"]) for r in rest] == [
        ("r1", None, "batch_cancelled"),
        ("r2", None, "batch_cancelled"),
    ]
    assert oai.batches.cancel(batch.id).status == "cancelled"  # cancelling again is harmless

    fake_provider.batches.processing_polls = 0
    done = _submit(oai, [_chat_line("x", "hello")])
    oai.batches.retrieve(done.id)
    with pytest.raises(openai.ConflictError, match="status 'completed'"):
        oai.batches.cancel(done.id)


def test_openai_list_paginates_newest_first(
    fake_provider: FakeProviderServer, oai: openai.OpenAI
) -> None:
    ids = [_submit(oai, [_chat_line("x", f"hello {i}")]).id for i in range(3)]
    page = oai.batches.list(limit=2)
    assert [b.id for b in page.data] == ids[::-1][:2] and page.has_more
    assert [b.id for b in oai.batches.list(limit=2)] == ids[::-1]  # the SDK follows `after`
    assert [b.id for b in oai.batches.list(after=ids[1])] == [ids[0]]


@pytest.mark.parametrize(
    ("lines", "code", "line"),
    [
        ([_chat_line("a", "x"), _chat_line("a", "y")], "duplicate_custom_id", 2),
        ([_chat_line("a", "x"), "{not json"], "invalid_json_line", 2),
        ([_chat_line("a", "x"), _chat_line("b", "y", model="gpt-4o")], "model_mismatch", 2),
        ([{**_chat_line("a", "x"), "url": "/v1/responses"}], "url_mismatch", 1),
        ([_chat_line(f"r{i}", "x") for i in range(3)], "too_many_tasks", None),
    ],
)
def test_openai_malformed_input_fails_the_batch(
    fake_provider: FakeProviderServer,
    oai: openai.OpenAI,
    lines: list[Any],
    code: str,
    line: int | None,
) -> None:
    fake_provider.batches.openai_max_requests = 2
    batch = _submit(oai, lines)
    assert batch.status == "validating"
    failed = oai.batches.retrieve(batch.id)
    assert failed.status == "failed" and failed.failed_at and failed.output_file_id is None
    assert failed.errors is not None and failed.errors.data is not None
    assert [(e.code, e.line) for e in failed.errors.data] == [(code, line)]


def test_openai_upload_and_create_refusals(
    fake_provider: FakeProviderServer, oai: openai.OpenAI
) -> None:
    fake_provider.batches.openai_max_file_bytes = 300
    with pytest.raises(openai.BadRequestError, match="File is too large"):
        _upload(oai, [_chat_line(f"r{i}", "some words") for i in range(3)])
    with pytest.raises(openai.BadRequestError, match=r"Must be \.jsonl"):
        _upload(oai, [_chat_line("a", "x")], name="batch.json")
    file_id = _upload(oai, [_chat_line("a", "x")])
    with pytest.raises(openai.BadRequestError, match="endpoint"):
        oai.batches.create(
            input_file_id=file_id, endpoint="/v1/embeddings", completion_window="24h"
        )
    with pytest.raises(openai.BadRequestError, match="Cannot find file"):
        oai.batches.create(
            input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h"
        )
    with pytest.raises(openai.NotFoundError):
        oai.batches.retrieve("batch_nope")
    assert fake_provider.batches.submitted() == []


def test_openai_request_errors_outcomes_and_order(
    fake_provider: FakeProviderServer, oai: openai.OpenAI
) -> None:
    knobs = fake_provider.batches
    knobs.request_errors = {"b": 429}
    knobs.results_order = "reversed"
    batch = oai.batches.retrieve(_submit(oai, [_chat_line(c, "hello") for c in ("a", "b", "c")]).id)
    assert [o["custom_id"] for o in _jsonl(oai.files.content(batch.output_file_id).text)] == [
        "c",
        "a",
    ]
    (limited,) = _jsonl(oai.files.content(batch.error_file_id).text)
    assert limited["response"]["status_code"] == 429
    assert limited["response"]["body"]["error"]["code"] == "rate_limit_exceeded"

    knobs.outcome = "expired"
    expired = oai.batches.retrieve(_submit(oai, [_chat_line("a", "hello")]).id)
    assert expired.status == "expired" and expired.expired_at and expired.output_file_id is None
    (line,) = _jsonl(oai.files.content(expired.error_file_id).text)
    assert line["error"]["code"] == "batch_expired"

    knobs.outcome = "failed"
    failed = oai.batches.retrieve(_submit(oai, [_chat_line("a", "hello")]).id)
    assert failed.status == "failed" and failed.errors and failed.errors.data
    assert failed.errors.data[0].code == "token_limit_exceeded"


def test_openai_processing_time(fake_provider: FakeProviderServer, oai: openai.OpenAI) -> None:
    fake_provider.batches.processing_s = 0.3
    batch = _submit(oai, [_chat_line("a", "hello")])
    assert oai.batches.retrieve(batch.id).status == "in_progress"
    assert oai.batches.list().data[0].status == "in_progress"
    time.sleep(0.3)
    assert oai.batches.list().data[0].status == "completed"  # a list read ends it too


def test_openai_ten_thousand_requests_are_answered_quickly(
    fake_provider: FakeProviderServer, oai: openai.OpenAI
) -> None:
    """The engine's benchmark submits 10,000 requests in one batch: the fake must not be
    the bottleneck (no per-request sleeps, replies computed once when the batch ends)."""
    lines = [
        {
            "custom_id": f"run-{i}",
            "method": "POST",
            "url": "/v1/responses",
            "body": {"model": "gpt-4.1-mini", "input": f"question number {i}"},
        }
        for i in range(10_000)
    ]
    started = time.perf_counter()
    batch = oai.batches.retrieve(_submit(oai, lines, endpoint="/v1/responses").id)
    output = oai.files.content(batch.output_file_id or "").content
    elapsed = time.perf_counter() - started
    assert batch.request_counts is not None and batch.request_counts.completed == 10_000
    assert output.count(b"\n") == 10_000
    assert elapsed < 8, f"10,000-request batch took {elapsed:.1f} s"


def test_openai_batch_calls_check_credentials_and_faults(
    fake_provider: FakeProviderServer, oai: openai.OpenAI
) -> None:
    response = httpx2.get(fake_provider.openai_base_url + "/batches")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    fake_provider.fail_next("err-500")
    with pytest.raises(openai.InternalServerError):
        oai.batches.list()
    assert oai.batches.list().data == []
    assert [c.action for c in fake_provider.batches.calls] == ["list"]


# -- Anthropic -------------------------------------------------------------------------------


def _claude_request(custom_id: str, text: str, **params: Any) -> Any:
    return {
        "custom_id": custom_id,
        "params": {
            "model": "claude-haiku-4-5",
            "max_tokens": 64,
            "messages": [{"role": "user", "content": text}],
            **params,
        },
    }


def test_anthropic_life_cycle_matches_live_answers(
    fake_provider: FakeProviderServer, claude: anthropic.Anthropic
) -> None:
    fake_provider.batches.processing_polls = 1
    tool = {
        "name": "verdict",
        "description": "Record the verdict.",
        "input_schema": {
            "type": "object",
            "properties": {"ok": {"type": "boolean"}},
            "required": ["ok"],
        },
    }
    forced: dict[str, Any] = {"tools": [tool], "tool_choice": {"type": "tool", "name": "verdict"}}
    requests = [
        _claude_request("plain", "first question", system="be brief"),
        _claude_request("tool", "is it fine?", **forced),
        _claude_request("marked", "batch-err-500 please"),
        {"custom_id": "no-model", "params": {"max_tokens": 5, "messages": []}},
    ]
    created = claude.messages.batches.create(requests=requests)
    assert created.processing_status == "in_progress" and created.results_url is None
    assert created.request_counts.processing == 4
    polled = claude.messages.batches.retrieve(created.id)
    assert polled.processing_status == "in_progress"
    ended = claude.messages.batches.retrieve(created.id)
    assert ended.processing_status == "ended" and ended.ended_at and ended.results_url
    assert ended.request_counts.model_dump() == {
        "processing": 0,
        "succeeded": 2,
        "errored": 2,
        "canceled": 0,
        "expired": 0,
    }

    results = {r.custom_id: r.result for r in claude.messages.batches.results(created.id)}
    assert list(results) == ["plain", "tool", "marked", "no-model"]
    for custom_id, params in (("plain", requests[0]["params"]), ("tool", requests[1]["params"])):
        result = results[custom_id]
        assert result.type == "succeeded"
        live = claude.messages.with_raw_response.create(**params).http_response.json()
        assert _without_ids(result.message.model_dump(mode="json", exclude_unset=True)) == (
            _without_ids(live)
        )
    assert results["tool"].type == "succeeded"
    assert results["tool"].message.content[0].input == {"ok": True}  # type: ignore[union-attr]
    for custom_id, error_type in (("marked", "api_error"), ("no-model", "invalid_request_error")):
        errored = results[custom_id]
        assert errored.type == "errored" and errored.error.error.type == error_type

    actions = [c.action for c in fake_provider.batches.calls_of("anthropic")]
    assert actions == ["create", "retrieve", "retrieve", "retrieve", "results"]


def test_anthropic_cancel_and_delete(
    fake_provider: FakeProviderServer, claude: anthropic.Anthropic
) -> None:
    fake_provider.batches.processing_polls = 100
    fake_provider.batches.processed_before_stop = 1
    batch = claude.messages.batches.create(
        requests=[_claude_request(f"r{i}", f"question {i}") for i in range(3)]
    )
    with pytest.raises(anthropic.AnthropicError, match="results_url"):
        claude.messages.batches.results(batch.id)  # the SDK checks results_url first
    with pytest.raises(anthropic.BadRequestError, match="still in progress"):
        claude.messages.batches.delete(batch.id)
    canceling = claude.messages.batches.cancel(batch.id)
    assert canceling.processing_status == "canceling" and canceling.cancel_initiated_at
    ended = claude.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended"
    assert (ended.request_counts.succeeded, ended.request_counts.canceled) == (1, 2)
    kinds = [(r.custom_id, r.result.type) for r in claude.messages.batches.results(batch.id)]
    assert kinds == [("r0", "succeeded"), ("r1", "canceled"), ("r2", "canceled")]
    assert claude.messages.batches.cancel(batch.id).processing_status == "ended"

    assert claude.messages.batches.delete(batch.id).type == "message_batch_deleted"
    with pytest.raises(anthropic.NotFoundError):
        claude.messages.batches.retrieve(batch.id)


def test_anthropic_outcomes_and_order(
    fake_provider: FakeProviderServer, claude: anthropic.Anthropic
) -> None:
    knobs = fake_provider.batches
    knobs.results_order = "reversed"
    knobs.request_errors = {"b": 429}
    batch = claude.messages.batches.create(
        requests=[_claude_request(c, "hello") for c in ("a", "b", "c")]
    )
    claude.messages.batches.retrieve(batch.id)
    results = [(r.custom_id, r.result.type) for r in claude.messages.batches.results(batch.id)]
    assert results == [("c", "succeeded"), ("b", "errored"), ("a", "succeeded")]

    knobs.outcome = "expired"
    expired = claude.messages.batches.create(requests=[_claude_request("a", "hello")])
    assert claude.messages.batches.retrieve(expired.id).request_counts.expired == 1
    assert [r.result.type for r in claude.messages.batches.results(expired.id)] == ["expired"]

    knobs.outcome = "failed"
    failed = claude.messages.batches.create(requests=[_claude_request("a", "hello")])
    assert claude.messages.batches.retrieve(failed.id).request_counts.errored == 1
    (result,) = claude.messages.batches.results(failed.id)
    assert result.result.type == "errored" and result.result.error.error.type == "api_error"


def test_anthropic_batch_held_then_released_keeps_reply_knobs_of_creation(
    fake_provider: FakeProviderServer, claude: anthropic.Anthropic
) -> None:
    fake_provider.reply_text = "captured at creation"
    fake_provider.batches.processing_polls = 10**9  # held, as across a kernel restart
    batch = claude.messages.batches.create(requests=[_claude_request("a", "hello")])
    fake_provider.reply_text = "changed later"
    for _ in range(3):
        assert claude.messages.batches.retrieve(batch.id).processing_status == "in_progress"
    fake_provider.batches.processing_polls = 0  # released
    assert claude.messages.batches.retrieve(batch.id).processing_status == "ended"
    (result,) = claude.messages.batches.results(batch.id)
    assert result.result.type == "succeeded"
    assert result.result.message.content[0].text == "captured at creation"  # type: ignore[union-attr]
    assert len(fake_provider.batches.calls_of("anthropic", "create")) == 1


def test_anthropic_list_paginates_newest_first(
    fake_provider: FakeProviderServer, claude: anthropic.Anthropic
) -> None:
    ids = [
        claude.messages.batches.create(requests=[_claude_request("a", f"hello {i}")]).id
        for i in range(3)
    ]
    page = claude.messages.batches.list(limit=2)
    assert [b.id for b in page.data] == ids[::-1][:2] and page.has_more
    assert page.first_id == ids[2] and page.last_id == ids[1]
    assert [b.id for b in claude.messages.batches.list(limit=2)] == ids[::-1]
    assert [b.id for b in claude.messages.batches.list(after_id=ids[2])] == ids[1::-1]
    assert [b.id for b in claude.messages.batches.list(before_id=ids[0], limit=1).data] == [ids[1]]


def test_anthropic_create_refusals(
    fake_provider: FakeProviderServer, claude: anthropic.Anthropic
) -> None:
    knobs = fake_provider.batches
    knobs.anthropic_max_requests = 2
    with pytest.raises(anthropic.BadRequestError, match="at most 2 requests") as too_many:
        claude.messages.batches.create(requests=[_claude_request(f"r{i}", "x") for i in range(3)])
    assert too_many.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    knobs.anthropic_max_bytes = 200
    with pytest.raises(anthropic.ContentTooLargeError) as too_large:
        claude.messages.batches.create(requests=[_claude_request("a", "x" * 300)])
    assert too_large.value.body["error"]["type"] == "request_too_large"  # type: ignore[index]
    knobs.anthropic_max_bytes = 10_000
    with pytest.raises(anthropic.BadRequestError, match="duplicate custom_id"):
        claude.messages.batches.create(requests=[_claude_request("a", "x")] * 2)
    with pytest.raises(anthropic.BadRequestError, match="custom_id"):
        claude.messages.batches.create(requests=[_claude_request("no spaces allowed", "x")])
    assert knobs.submitted() == []


def test_anthropic_batch_credentials(
    fake_provider: FakeProviderServer, claude: anthropic.Anthropic
) -> None:
    url = fake_provider.anthropic_base_url + "/v1/messages/batches"
    missing = httpx2.get(url)
    assert missing.status_code == 401
    assert missing.json()["error"]["type"] == "authentication_error"
    assert httpx2.get(url, headers={"x-api-key": API_KEY}).json()["data"] == []


def test_anthropic_vertex_client_has_no_batch_route(fake_provider: FakeProviderServer) -> None:
    """The finding batch mode relies on: AnthropicVertex refuses batches before any request,
    so Claude on Vertex AI must fall back to live calls."""
    vertex = anthropic.AnthropicVertex(
        region="us-east5",
        project_id="p1",
        access_token="ya29.fake",
        base_url=fake_provider.anthropic_vertex_base_url,
        max_retries=0,
    )
    with pytest.raises(anthropic.AnthropicError, match="not supported in the Vertex client"):
        vertex.messages.batches.create(requests=[_claude_request("a", "x")])
    assert fake_provider.requests == []


# -- Gemini API ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gemini(fake_provider_server: FakeProviderServer) -> genai.Client:
    return genai.Client(
        api_key=API_KEY, http_options={"base_url": fake_provider_server.gemini_base_url}
    )


def _gemini_request(key: str, text: str, config: Any = None) -> Any:
    request: dict[str, Any] = {
        "contents": [{"role": "user", "parts": [{"text": text}]}],
        "metadata": {"key": key},
    }
    if config is not None:
        request["config"] = config
    return request


GEMINI_MODEL = "gemini-2.5-flash"


def test_gemini_life_cycle_matches_live_answers(
    fake_provider: FakeProviderServer, gemini: genai.Client
) -> None:
    fake_provider.batches.processing_polls = 1
    structured = {
        "system_instruction": "answer in JSON",
        "response_mime_type": "application/json",
        "response_json_schema": {
            "type": "object",
            "properties": {"count": {"type": "integer", "minimum": 3}},
            "required": ["count"],
        },
    }
    src = [
        _gemini_request("plain", "first question"),
        _gemini_request("json", "how many?", structured),
        _gemini_request("marked", "batch-err-400 please"),
    ]
    created = gemini.batches.create(model=GEMINI_MODEL, src=src, config={"display_name": "cmp"})
    assert created.name is not None and created.name.startswith("batches/")
    assert created.state == genai_types.JobState.JOB_STATE_PENDING and not created.done
    assert created.display_name == "cmp" and created.model == f"models/{GEMINI_MODEL}"
    running = gemini.batches.get(name=created.name)
    assert running.state == genai_types.JobState.JOB_STATE_RUNNING and running.dest is None
    ended = gemini.batches.get(name=created.name)
    assert ended.state == genai_types.JobState.JOB_STATE_SUCCEEDED and ended.done
    assert ended.end_time is not None and ended.dest is not None
    inlined = ended.dest.inlined_responses
    assert inlined is not None
    assert [r.metadata for r in inlined] == [{"key": "plain"}, {"key": "json"}, {"key": "marked"}]

    for answer, (text, config) in zip(
        inlined[:2], (("first question", None), ("how many?", structured)), strict=True
    ):
        live = gemini.models.generate_content(model=GEMINI_MODEL, contents=text, config=config)
        assert answer.response is not None and answer.error is None
        assert answer.response.text == live.text
        assert answer.response.usage_metadata == live.usage_metadata
        assert answer.response.model_version == live.model_version
    assert json.loads(inlined[1].response.text or "") == {"count": 3}  # type: ignore[union-attr]
    assert inlined[2].error is not None and inlined[2].error.code == 400

    actions = [c.action for c in fake_provider.batches.calls_of("gemini")]
    assert actions == ["create", "retrieve", "retrieve"]


def test_gemini_cancel_list_and_delete(
    fake_provider: FakeProviderServer, gemini: genai.Client
) -> None:
    knobs = fake_provider.batches
    knobs.processing_polls = 100
    knobs.processed_before_stop = 1
    names = [
        gemini.batches.create(
            model=GEMINI_MODEL, src=[_gemini_request(f"r{i}", "hi") for i in range(3)]
        ).name
        for _ in range(3)
    ]
    pager = gemini.batches.list(config={"page_size": 2})
    assert len(pager.page) == 2
    assert [job.name for job in pager] == names[::-1]  # the pager follows nextPageToken

    gemini.batches.cancel(name=names[0] or "")
    cancelled = gemini.batches.get(name=names[0] or "")
    assert cancelled.state == genai_types.JobState.JOB_STATE_CANCELLED
    assert cancelled.dest is not None and cancelled.dest.inlined_responses is not None
    assert [r.metadata for r in cancelled.dest.inlined_responses] == [{"key": "r0"}]

    gemini.batches.delete(name=names[0] or "")
    with pytest.raises(genai_errors.ClientError) as gone:
        gemini.batches.get(name=names[0] or "")
    assert gone.value.code == 404
    assert [job.name for job in gemini.batches.list()] == names[:0:-1]


def test_gemini_outcomes_and_request_errors(
    fake_provider: FakeProviderServer, gemini: genai.Client
) -> None:
    knobs = fake_provider.batches
    knobs.request_errors = {"b": 429, "1": 500}
    src = [_gemini_request("a", "hi"), _gemini_request("b", "hi"), {"contents": "no key"}]
    batch = gemini.batches.get(name=gemini.batches.create(model=GEMINI_MODEL, src=src).name or "")
    assert batch.dest is not None and batch.dest.inlined_responses is not None
    codes = [r.error.code if r.error else None for r in batch.dest.inlined_responses]
    assert codes == [None, 429, None]  # "1" is the index of a request without metadata key

    knobs.outcome = "expired"
    expired = gemini.batches.create(model=GEMINI_MODEL, src=src)
    assert gemini.batches.get(name=expired.name or "").state == "JOB_STATE_EXPIRED"
    knobs.outcome = "failed"
    failed = gemini.batches.create(model=GEMINI_MODEL, src=src)
    assert gemini.batches.get(name=failed.name or "").state == "JOB_STATE_FAILED"


def test_gemini_create_refusals(fake_provider: FakeProviderServer, gemini: genai.Client) -> None:
    knobs = fake_provider.batches
    knobs.gemini_max_bytes = 300
    with pytest.raises(genai_errors.ClientError, match="payload size exceeds") as too_big:
        gemini.batches.create(model=GEMINI_MODEL, src=[_gemini_request("a", "x" * 400)])
    assert too_big.value.code == 400 and too_big.value.status == "INVALID_ARGUMENT"
    knobs.gemini_max_bytes = 10_000
    knobs.gemini_max_requests = 1
    with pytest.raises(genai_errors.ClientError, match="at most 1"):
        gemini.batches.create(model=GEMINI_MODEL, src=[_gemini_request("a", "x")] * 2)
    assert knobs.submitted() == []


def test_gemini_batch_routes_share_v1_with_openai(
    fake_provider: FakeProviderServer, gemini: genai.Client, oai: openai.OpenAI
) -> None:
    """genai 3.x calls /v1/batches, as OpenAI does: Google's headers decide, and each SDK
    sees only its own provider's jobs."""
    gemini.batches.create(model=GEMINI_MODEL, src=[_gemini_request("a", "hi")])
    assert oai.batches.list().data == []
    _submit(oai, [_chat_line("a", "hello")])
    assert len(list(gemini.batches.list())) == 1
    assert [r.kind for r in fake_provider.requests if r.kind.endswith(".batches")] == [
        "gemini.batches",
        "openai.batches",
        "openai.batches",
        "gemini.batches",
    ]
    missing = httpx2.get(
        fake_provider.gemini_base_url + "/v1/batches",
        headers={"x-goog-api-client": "google-genai-sdk/test"},
    )
    assert missing.status_code == 401 and missing.json()["error"]["status"] == "UNAUTHENTICATED"


def test_vertex_genai_batches_need_cloud_storage(
    fake_provider: FakeProviderServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The finding batch mode relies on: on Vertex AI, google-genai's batches.create takes a
    GCS, BigQuery or Vertex dataset source only and refuses inline requests before any call."""
    key_file = write_fake_service_account(tmp_path / "sa.json", fake_provider.token_uri)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
    vertex = genai.Client(
        vertexai=True,
        project="p1",
        location="us-central1",
        http_options={"base_url": fake_provider.vertex_base_url},
    )
    with pytest.raises(ValueError, match="gcs_uri"):
        vertex.batches.create(model=GEMINI_MODEL, src=[_gemini_request("a", "hi")])
    assert fake_provider.requests == []
