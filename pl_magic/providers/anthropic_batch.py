"""Anthropic's Message Batches through the ``anthropic`` SDK (``client.messages.batches``):
``create`` with the requests (each ``{"custom_id", "params"}``, ``params`` being the body a
live ``messages.create`` sends), ``retrieve`` to follow it, ``results`` to read its JSONL
results as a stream, ``cancel``. The results URL the provider answers with must be on the
origin the key already goes to; any other is refused before the SDK would follow it.
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
    RUNNING,
    BatchAPI,
    BatchLimits,
    BatchOutcome,
    BatchState,
    Encoded,
    batch_request,
    same_origin,
)

if TYPE_CHECKING:
    from .base import Provider


class AnthropicBatches(BatchAPI):
    """One model's Message Batches."""

    # 100,000 requests or 256 MB a batch (the documented limits)
    documented = BatchLimits(100_000, 256 * 1024 * 1024)

    def __init__(
        self,
        provider: Provider,
        spec: ModelSpec,
        base_url: str | None,
        client: Any,
        error_statuses: Mapping[str, int],
    ) -> None:
        super().__init__(provider, spec, base_url)
        self.client = client
        #: Anthropic's error types -> the HTTP status each has outside a batch.
        self.error_statuses = error_statuses

    def encode(
        self, custom_id: str, request: Mapping[str, Any], body: str | None = None
    ) -> Encoded:
        params = batch_request(request)
        if body is None:
            body = json.dumps(params, ensure_ascii=False, separators=(",", ":"))
        size = len(body.encode()) + len(custom_id) + len('{"custom_id":"","params":},')
        return Encoded({"custom_id": custom_id, "params": params}, size)

    def submit(self, encoded: Sequence[Encoded], label: str) -> BatchState:
        requests = [item.payload for item in encoded]
        batches = self.client.messages.batches
        return _state(self.call(lambda: batches.create(requests=requests)))

    def retrieve(self, job_id: str) -> BatchState:
        return _state(self.call(lambda: self.client.messages.batches.retrieve(job_id)))

    def cancel(self, job_id: str) -> BatchState:
        return _state(self.call(lambda: self.client.messages.batches.cancel(job_id)))

    def results(
        self, job_id: str, spec_of: Callable[[str], ModelSpec | None], order: Sequence[str]
    ) -> Iterator[BatchOutcome]:
        batches = self.client.messages.batches
        job = self.call(lambda: batches.retrieve(job_id))
        url = job.results_url
        base = str(self.client.base_url)
        if url and not url.startswith("/") and not same_origin(url, base):
            raise ProviderError(
                "anthropic",
                "server",
                f"the batch's results URL is not on {base}: not followed (the key goes only "
                "to the provider's own host)",
            )
        try:
            # Stream the URL checked above: the SDK's results() would read the batch again and
            # follow whatever URL that second answer names, with the key.
            lines = (
                self.call(lambda: self._results_at(url))
                if url
                else self.call(lambda: batches.results(job_id))  # (none yet: the SDK says so)
            )
            for item in lines:
                outcome = self._outcome(item, spec_of)
                if outcome is not None:
                    yield outcome
        except ProviderError:
            raise
        except Exception as exc:
            raise self.error(exc) from exc

    def _results_at(self, url: str) -> Any:
        """The results file at ``url``, streamed line by line as the SDK's results() does."""
        from anthropic._decoders.jsonl import JSONLDecoder
        from anthropic.types.messages import MessageBatchIndividualResponse

        return self.client.get(
            url, cast_to=JSONLDecoder[MessageBatchIndividualResponse], stream=True
        )

    def _outcome(
        self, item: Any, spec_of: Callable[[str], ModelSpec | None]
    ) -> BatchOutcome | None:
        custom_id = getattr(item, "custom_id", None)
        spec = spec_of(custom_id) if isinstance(custom_id, str) else None
        if spec is None:
            return None
        assert isinstance(custom_id, str)
        result: Any = getattr(item, "result", None)
        kind = getattr(result, "type", None)
        if kind == "succeeded":
            try:
                return BatchOutcome(custom_id, reply=self.provider.parse(result.message, spec))
            except Exception as exc:
                return BatchOutcome(custom_id, error=self.error(exc))
        if kind == "canceled":
            return BatchOutcome(custom_id, cancelled=True)
        if kind == "expired":
            error = ProviderError(
                "anthropic", "timeout", "the batch expired before this request ran"
            )
            return BatchOutcome(custom_id, error=error)
        detail = getattr(getattr(result, "error", None), "error", None)
        error_type = str(getattr(detail, "type", "") or "")
        status = self.error_statuses.get(error_type)
        message = getattr(detail, "message", None) or error_type or "the request failed"
        return BatchOutcome(
            custom_id,
            error=ProviderError(
                "anthropic", category_for_status(status or 500), str(message), status
            ),
        )


def _state(job: Any) -> BatchState:
    counts = job.request_counts
    if job.processing_status == "ended":
        status = CANCELLED if job.cancel_initiated_at is not None else ENDED
    elif job.processing_status == "canceling":
        status = CANCELLING
    else:
        status = RUNNING
    return BatchState(
        job_id=job.id,
        status=status,
        succeeded=counts.succeeded if counts is not None else None,
        errored=(counts.errored + counts.expired) if counts is not None else None,
    )
