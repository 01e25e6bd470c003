"""The Gemini API's batch mode through ``google-genai`` (``client.batches``), with inline
requests: ``create(model=..., src=[...])`` where each request is the ``contents`` and
``config`` a live ``generate_content`` sends, ``get`` to follow the job, whose inline responses
come back in the order submitted, ``cancel``. (On Vertex AI a batch reads and writes Cloud
Storage or BigQuery: that route has no batch API here.)
"""

from __future__ import annotations

import base64
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
)

if TYPE_CHECKING:
    from .base import Provider

#: The metadata key that carries a request's id through the job.
ID_KEY = "pl_magic_id"
_STATES = {
    "JOB_STATE_SUCCEEDED": ENDED,
    "JOB_STATE_PARTIALLY_SUCCEEDED": ENDED,
    "JOB_STATE_FAILED": FAILED,
    "JOB_STATE_CANCELLING": CANCELLING,
    "JOB_STATE_CANCELLED": CANCELLED,
    "JOB_STATE_EXPIRED": EXPIRED,
}
#: google.rpc codes an inline response's error may carry -> pl_magic's category.
_RPC_CATEGORIES = {
    1: "cancelled",
    3: "bad_request",
    4: "timeout",
    5: "not_found",
    7: "auth",
    8: "rate_limit",
    9: "bad_request",
    13: "server",
    14: "server",
    16: "auth",
}


def _bytes_as_base64(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    return str(value)


class GeminiBatches(BatchAPI):
    """One model's batch jobs on the Gemini API."""

    # An inline batch's request may be up to 20 MB; the count has no lower documented limit.
    documented = BatchLimits(100_000, 20 * 1000 * 1000)

    def __init__(
        self, provider: Provider, spec: ModelSpec, base_url: str | None, client: Any
    ) -> None:
        super().__init__(provider, spec, base_url)
        self.client = client

    def encode(
        self, custom_id: str, request: Mapping[str, Any], body: str | None = None
    ) -> Encoded:
        # (``body`` is not used: inline data is bytes, which the wire carries as base64)
        item: dict[str, Any] = {"contents": request.get("contents")}
        if request.get("config"):
            item["config"] = request["config"]
        item["metadata"] = {ID_KEY: custom_id}
        text = json.dumps(item, ensure_ascii=False, default=_bytes_as_base64)
        return Encoded(item, len(text.encode()) + 1)

    def submit(self, encoded: Sequence[Encoded], label: str) -> BatchState:
        src = [item.payload for item in encoded]
        job = self.call(
            lambda: self.client.batches.create(
                model=self.spec.name, src=src, config={"display_name": label[:128]}
            )
        )
        return _state(job)

    def retrieve(self, job_id: str) -> BatchState:
        return _state(self.call(lambda: self.client.batches.get(name=job_id)))

    def cancel(self, job_id: str) -> BatchState:
        self.call(lambda: self.client.batches.cancel(name=job_id))
        return self.retrieve(job_id)

    def results(
        self, job_id: str, spec_of: Callable[[str], ModelSpec | None], order: Sequence[str]
    ) -> Iterator[BatchOutcome]:
        job = self.call(lambda: self.client.batches.get(name=job_id))
        responses = getattr(getattr(job, "dest", None), "inlined_responses", None) or []
        for position, item in enumerate(responses):
            metadata = getattr(item, "metadata", None) or {}
            custom_id = metadata.get(ID_KEY) if isinstance(metadata, dict) else None
            if not isinstance(custom_id, str) and position < len(order):
                custom_id = order[position]  # the responses come in the order submitted
            spec = spec_of(custom_id) if isinstance(custom_id, str) else None
            if spec is None:
                continue
            assert isinstance(custom_id, str)
            yield self._outcome(custom_id, item, spec)

    def _outcome(self, custom_id: str, item: Any, spec: ModelSpec) -> BatchOutcome:
        error = getattr(item, "error", None)
        response = getattr(item, "response", None)
        if error is not None or response is None:
            code = getattr(error, "code", None)
            code = code if isinstance(code, int) else None
            if code is not None and code >= 100:
                category = category_for_status(code)
            else:
                category = _RPC_CATEGORIES.get(code or 13, "server")
            if category == "cancelled":
                return BatchOutcome(custom_id, cancelled=True)
            message = getattr(error, "message", None) or "the request failed"
            status = code if code is not None and code >= 100 else None
            return BatchOutcome(
                custom_id, error=ProviderError(self.provider.name, category, str(message), status)
            )
        try:
            return BatchOutcome(custom_id, reply=self.provider.parse(response, spec))
        except Exception as exc:
            return BatchOutcome(custom_id, error=self.error(exc))


def _state(job: Any) -> BatchState:
    state = getattr(job, "state", None)
    name = str(getattr(state, "value", state) or "")
    error = getattr(job, "error", None)
    message = getattr(error, "message", None) if error is not None else None
    return BatchState(
        job_id=str(job.name),
        status=_STATES.get(name, RUNNING),
        message=str(message) if message else None,
    )
