"""OpenAI's Batch API through the ``openai`` SDK: a JSONL file uploaded with
``client.files.create(purpose="batch")``, a job made with ``client.batches.create`` and
followed with ``client.batches.retrieve``; the output and error files are read line by line
with ``client.files.with_streaming_response.content`` (a large job's results are never held
whole in memory). One job serves one endpoint: chat completions, completions or responses.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..core.blueprint import ModelSpec
from ..core.errors import ProviderError
from ._sdk_errors import category_for_status
from .batches import (
    CANCELLED,
    CANCELLING,
    ENDED,
    EXPIRED,
    FAILED,
    RUNNING,
    BatchAPI,
    BatchLimits,
    BatchOutcome,
    BatchState,
    Encoded,
    batch_request,
)

if TYPE_CHECKING:
    from .base import Provider

#: The Batch API's endpoint for each OpenAI API type.
ENDPOINTS = {
    "chat-completions": "/v1/chat/completions",
    "completions": "/v1/completions",
    "responses": "/v1/responses",
}
_STATUSES = {
    "validating": RUNNING,
    "in_progress": RUNNING,
    "finalizing": RUNNING,
    "completed": ENDED,
    "failed": FAILED,
    "expired": EXPIRED,
    "cancelling": CANCELLING,
    "cancelled": CANCELLED,
}
#: Error codes of a request the batch did not run (no HTTP status).
_CODES = {"batch_expired": "timeout", "batch_cancelled": "cancelled"}


class OpenAIBatches(BatchAPI):
    """One model's jobs on one OpenAI endpoint."""

    # 50,000 requests and 200 MB a file (the Batch API's documented limits)
    documented = BatchLimits(50_000, 200 * 1024 * 1024)

    def __init__(
        self, provider: Provider, spec: ModelSpec, base_url: str | None, client: Any, api: str
    ) -> None:
        super().__init__(provider, spec, base_url)
        self.client = client
        self.endpoint = ENDPOINTS[api]

    def encode(
        self, custom_id: str, request: Mapping[str, Any], body: str | None = None
    ) -> Encoded:
        if body is None:
            body = json.dumps(batch_request(request), ensure_ascii=False, separators=(",", ":"))
        line = (
            f'{{"custom_id":{json.dumps(custom_id)},"method":"POST",'
            f'"url":{json.dumps(self.endpoint)},"body":{body}}}\n'
        ).encode()
        return Encoded(line, len(line))

    def submit(self, encoded: Sequence[Encoded], label: str) -> BatchState:
        data = b"".join(item.payload for item in encoded)
        uploaded = self.call(
            lambda: self.client.files.create(
                file=("pl_magic-batch.jsonl", data, "application/jsonl"), purpose="batch"
            )
        )
        job = self.call(
            lambda: self.client.batches.create(
                input_file_id=uploaded.id,
                endpoint=self.endpoint,
                completion_window="24h",
                metadata={"pl_magic_job": label[:512]},
            )
        )
        return _state(job)

    def retrieve(self, job_id: str) -> BatchState:
        return _state(self.call(lambda: self.client.batches.retrieve(job_id)))

    def cancel(self, job_id: str) -> BatchState:
        return _state(self.call(lambda: self.client.batches.cancel(job_id)))

    def results(
        self, job_id: str, spec_of: Callable[[str], ModelSpec | None], order: Sequence[str]
    ) -> Iterator[BatchOutcome]:
        job = self.call(lambda: self.client.batches.retrieve(job_id))
        for file_id in (job.output_file_id, job.error_file_id):
            if file_id:
                yield from self._file(file_id, spec_of)

    def _file(
        self, file_id: str, spec_of: Callable[[str], ModelSpec | None]
    ) -> Iterator[BatchOutcome]:
        streaming = self.client.files.with_streaming_response.content
        try:
            with streaming(file_id) as response:
                for line in response.iter_lines():
                    outcome = self._outcome(line, spec_of)
                    if outcome is not None:
                        yield outcome
        except ProviderError:
            raise
        except Exception as exc:
            raise self.error(exc) from exc

    def _outcome(
        self, line: str, spec_of: Callable[[str], ModelSpec | None]
    ) -> BatchOutcome | None:
        """One line of an output or error file (None: blank, not JSON, or not ours)."""
        if not line.strip():
            return None
        try:
            record = json.loads(line)
        except ValueError:
            return None
        if not isinstance(record, dict):
            return None
        custom_id = record.get("custom_id")
        spec = spec_of(custom_id) if isinstance(custom_id, str) else None
        if spec is None:
            return None
        assert isinstance(custom_id, str)
        error = record.get("error")
        response = record.get("response")
        if isinstance(error, dict) and error:
            code = str(error.get("code") or "")
            if _CODES.get(code) == "cancelled":
                return BatchOutcome(custom_id, cancelled=True)
            return BatchOutcome(custom_id, error=self._request_error(None, error, code))
        if not isinstance(response, dict):
            return BatchOutcome(
                custom_id, error=ProviderError("openai", "server", "the batch gave no response")
            )
        status = response.get("status_code")
        body = response.get("body")
        if status != 200 or not isinstance(body, dict):
            status = status if isinstance(status, int) else None
            detail = body.get("error") if isinstance(body, dict) else None
            return BatchOutcome(custom_id, error=self._request_error(status, detail, ""))
        try:
            reply = self.provider.parse(_native(body), spec)
        except Exception as exc:
            return BatchOutcome(custom_id, error=self.error(exc))
        return BatchOutcome(custom_id, reply=reply)

    def _request_error(self, status: int | None, detail: Any, code: str) -> ProviderError:
        message = detail.get("message") if isinstance(detail, dict) else None
        category = _CODES.get(code) or category_for_status(status)
        if category == "unknown" and status is None:
            category = "server"
        return ProviderError(
            "openai", category, str(message or code or "the request failed"), status
        )


def _native(body: dict[str, Any]) -> Any:
    """The SDK's object for a response body, as a live call returns it: validated, or (a
    body the installed SDK's model does not accept, e.g. a field it requires is missing)
    built as the SDK builds a live response, leniently."""
    kind = body.get("object")
    model: Any
    if kind == "response":
        from openai.types.responses import Response as model
    elif kind == "text_completion":
        from openai.types import Completion as model
    else:
        from openai.types.chat import ChatCompletion as model
    try:
        return model.model_validate(body)
    except ValueError:  # (pydantic's ValidationError)
        return model.construct(**body)


def _state(job: Any) -> BatchState:
    counts = job.request_counts
    message = None
    errors = getattr(getattr(job, "errors", None), "data", None) or []
    if errors:
        message = "; ".join(str(e.message or e.code) for e in errors[:3])
    return BatchState(
        job_id=job.id,
        status=_STATUSES.get(job.status, RUNNING),
        succeeded=counts.completed if counts is not None else None,
        errored=counts.failed if counts is not None else None,
        message=message,
    )
