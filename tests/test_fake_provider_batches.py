"""Self-test of the fake provider server's batch APIs, driven by the official SDKs over HTTP.

Each provider's batch life cycle (submit → poll → results → cancel, list, partial errors,
limits) goes through the SDK's own batch methods, and every result is checked against what
the live non-streamed call answers for the same request, so batch mode built on this fake
sees the same answers as live runs.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx2
import openai
import pytest

from tests.fakes.provider_server import FakeProviderServer

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
