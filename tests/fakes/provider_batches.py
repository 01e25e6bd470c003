"""The providers' batch APIs on the fake provider server, on the wire, for the official SDKs.

:class:`FakeBatches` holds the jobs, the uploaded files, the knobs and a record of batch
calls; ``FakeProviderServer`` classifies a request with :func:`classify_batch`, checks faults
and credentials, and hands it to :meth:`FakeBatches.handle`. Every request of a batch is
answered by the live routes' own reply machinery (:class:`LiveAnswers`), so a batch result
equals what the live non-streamed call would have answered: same text, same usage, same
structured output.

Routes (``Recorded.kind`` in brackets):

* OpenAI [``openai.files``]: ``POST /v1/files`` (multipart; ``purpose=batch`` needs a
  ``.jsonl`` file), ``GET /v1/files``, ``GET|DELETE /v1/files/{id}``,
  ``GET /v1/files/{id}/content``.
* OpenAI [``openai.batches``]: ``POST /v1/batches`` (endpoint ``/v1/chat/completions``,
  ``/v1/responses`` or ``/v1/completions``; ``completion_window`` ``24h``), ``GET /v1/batches``
  (``after``/``limit``), ``GET /v1/batches/{id}``, ``POST /v1/batches/{id}/cancel``.
* Anthropic [``anthropic.batches``]: ``POST /v1/messages/batches``, ``GET /v1/messages/batches``
  (``after_id``/``before_id``/``limit``), ``GET|DELETE /v1/messages/batches/{id}``,
  ``POST /v1/messages/batches/{id}/cancel``, ``GET /v1/messages/batches/{id}/results``
  (JSONL). Claude on Vertex AI has no batch route here: ``anthropic.AnthropicVertex`` refuses
  ``/v1/messages/batches`` itself ("The Batch API is not supported in the Vertex client yet").
* Gemini API [``gemini.batches``], under ``/v1`` (google-genai 3.x's default), ``/v1beta``
  or ``/v1alpha``: ``POST /models/{model}:batchGenerateContent`` (inline requests only),
  ``GET /batches`` (``pageSize``/``pageToken``), ``GET|DELETE /batches/{id}``,
  ``POST /batches/{id}:cancel``. ``/v1/batches`` is OpenAI's path too: a request there is
  Gemini's when it carries ``x-goog-api-key`` or ``x-goog-api-client`` (genai sends both).
  A batch is a long-running operation whose ``metadata`` is the ``GenerateContentBatch``
  (``state``, ``batchStats``, and once ended ``output.inlinedResponses``, in input order,
  each with its request's ``metadata``). There is no Vertex AI route: google-genai's
  ``batches.create`` on Vertex takes only a GCS, BigQuery or Vertex dataset source and
  destination (inline requests are refused client-side), which a loopback fake cannot hold.

A batch moves through its provider's states on reads of it (see the knobs of
:class:`FakeBatches`); results are computed once, when it ends, and served from then on.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from starlette.responses import Response

__all__ = [
    "BATCH_KINDS",
    "BatchCall",
    "BatchHTTPError",
    "BatchJob",
    "BatchRequest",
    "FakeBatches",
    "LiveAnswers",
    "StoredFile",
    "classify_batch",
]

#: ``Recorded.kind`` of the batch API routes.
BATCH_KINDS: tuple[str, ...] = (
    "openai.files",
    "openai.batches",
    "anthropic.batches",
    "gemini.batches",
)

#: The documented limits (the knobs' defaults).
OPENAI_MAX_REQUESTS = 50_000
OPENAI_MAX_FILE_BYTES = 200 * 1024 * 1024
ANTHROPIC_MAX_REQUESTS = 100_000
ANTHROPIC_MAX_BYTES = 256 * 1024 * 1024
GEMINI_MAX_BYTES = 20 * 1024 * 1024  # inline requests; bigger batches go through a file

_DAY_S = 86_400
# OpenAI batch endpoints the fake answers, and the live kind that answers each request.
_OPENAI_ENDPOINTS = {
    "/v1/chat/completions": "openai.chat",
    "/v1/responses": "openai.responses",
    "/v1/completions": "openai.completions",
}
# A request whose message text contains ``batch-err-NNN`` errors with status NNN.
_ERROR_MARKER = re.compile(r"batch-err-(\d{3})")
# OpenAI validation errors beyond this many are not listed (a 10,000-line bad file).
_MAX_LISTED_ERRORS = 100

_OPENAI_FILES_RE = re.compile(r"/v1/files(?:/([^/]+)(?:/(content))?)?$")
_OPENAI_BATCHES_RE = re.compile(r"/v1/batches(?:/([^/]+)(?:/(cancel))?)?$")
_ANTHROPIC_RE = re.compile(r"/v1/messages/batches(?:/([^/]+)(?:/(cancel|results))?)?$")
_ANTHROPIC_CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_GEMINI_CREATE_RE = re.compile(r"^/v1(?:beta|alpha)?/models/([^/:]+):batchGenerateContent$")
_GEMINI_BATCH_RE = re.compile(r"^/v1(?:beta|alpha)?/batches(?:/([^/:]+)(?::(cancel))?)?$")
_GEMINI_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main."
_GEMINI_STATES = {
    "completed": "BATCH_STATE_SUCCEEDED",
    "cancelled": "BATCH_STATE_CANCELLED",
    "expired": "BATCH_STATE_EXPIRED",
    "failed": "BATCH_STATE_FAILED",
}


def classify_batch(method: str, path: str, headers: Mapping[str, str]) -> tuple[str, str] | None:
    """``(kind, model)`` of a batch API request, or None when ``path`` is not one."""
    if match := _GEMINI_CREATE_RE.search(path):
        return "gemini.batches", match[1]
    if match := _GEMINI_BATCH_RE.search(path):
        google = "x-goog-api-key" in headers or "x-goog-api-client" in headers
        if google or match[2] == "cancel" or not path.startswith("/v1/"):
            return "gemini.batches", ""
    if _ANTHROPIC_RE.search(path):
        return "anthropic.batches", ""
    if _OPENAI_FILES_RE.search(path):
        return "openai.files", ""
    if _OPENAI_BATCHES_RE.search(path):
        return "openai.batches", ""
    return None


class BatchHTTPError(Exception):
    """An HTTP error answer; the server renders it in the provider's native error shape."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Incoming(Protocol):
    """The parts of a recorded request a batch route reads (``Recorded`` has them)."""

    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def query(self) -> dict[str, str]: ...
    @property
    def headers(self) -> dict[str, str]: ...
    @property
    def body(self) -> Any: ...
    @property
    def raw(self) -> bytes: ...


class LiveAnswers(Protocol):
    """The live routes' reply machinery, as the batch routes use it."""

    def plan(self) -> Any:
        """The reply knobs now; a batch captures them when it is created."""

    def texts(self, kind: str, body: dict[str, Any]) -> list[str]:
        """Every message text of a request body of live ``kind``."""

    def fault_status(self, model: str) -> int | None:
        """The status an ``err-NNN`` fault in the model name answers with, else None."""

    def reply(self, kind: str, model: str, body: dict[str, Any], plan: Any) -> dict[str, Any]:
        """The body the live non-streamed call of ``kind`` answers with."""

    def error(self, kind: str, status: int, message: str) -> dict[str, Any]:
        """The native error body of live ``kind``."""


@dataclass(frozen=True)
class BatchCall:
    """One batch API call the fake answered (after its fault and credentials checks)."""

    provider: str  # "openai", "anthropic", "gemini"
    # upload, file, content, files, delete_file (OpenAI files); create, retrieve, list,
    # cancel, results (Anthropic), delete (Anthropic, Gemini)
    action: str
    target: str | None  # the batch or file id the call names, or the new one it created


@dataclass
class StoredFile:
    """An OpenAI file: an uploaded input, or a batch's output or error file."""

    id: str
    purpose: str
    filename: str
    data: bytes
    created_at: int


@dataclass
class BatchRequest:
    """One request of a batch, as submitted."""

    custom_id: str
    kind: str  # the live kind that answers it, e.g. "openai.chat"
    model: str
    body: dict[str, Any]
    error: tuple[int, str] | None  # (status, message) when this request errors
    metadata: dict[str, Any] | None = None  # Gemini: the request's metadata, echoed back


@dataclass
class BatchJob:
    """One batch and its life cycle.

    ``phase`` is ``running``, ``canceling`` or ``ended``; once ended, ``end`` is
    ``completed``, ``cancelled``, ``expired`` or ``failed`` and ``results`` holds one
    ``(request, outcome, body)`` per request in input order, where outcome is
    ``succeeded`` / ``errored`` (body: the live answer / its native error body) or
    ``canceled`` / ``expired`` (body None).
    """

    provider: str
    id: str
    requests: list[BatchRequest]
    plan: Any
    created_at: float  # time.time()
    started: float  # time.monotonic()
    endpoint: str = ""
    input_file_id: str = ""
    metadata: Any = None
    display_name: str = ""
    model: str = ""
    validation_errors: list[dict[str, Any]] = field(default_factory=list)
    reads: int = 0  # status reads of this batch while it was in progress
    stage: str = "new"  # new, in_progress, finalizing: what an in-progress batch shows
    progress: float = 0.0
    phase: str = "running"
    end: str = ""
    cancel_at: float | None = None
    ended_at: float | None = None
    results: list[tuple[BatchRequest, str, dict[str, Any] | None]] = field(default_factory=list)
    output_file_id: str | None = None
    error_file_id: str | None = None
    usage: dict[str, Any] | None = None
    rendered: Any = None  # Anthropic results JSONL / Gemini inlined responses, built once
    #: OpenAI: the input file, validated at the batch's first read (as OpenAI validates
    #: after answering the create) or when a test looks at ``submitted()``, and how many
    #: lines it has until then.
    unvalidated: bytes | None = None
    lines: int = 0

    def done_counts(self) -> tuple[int, int]:
        """(succeeded, errored) so far: in proportion to ``progress`` while running."""
        if self.phase == "ended":
            ok = sum(1 for _, outcome, _ in self.results if outcome == "succeeded")
            return ok, sum(1 for _, outcome, _ in self.results if outcome == "errored")
        done = min(int(self.progress * len(self.requests)), max(0, len(self.requests) - 1))
        errored = sum(1 for r in self.requests[:done] if r.error is not None)
        return done - errored, errored


def _first_model(line: bytes) -> str:
    """The model a batch input file's line asks for ("" if it names none)."""
    try:
        body = json.loads(line).get("body")
        return str(body.get("model") or "")
    except (ValueError, AttributeError):
        return ""


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _json_response(obj: Any, status: int = 200) -> Response:
    return Response(_json(obj), status_code=status, media_type="application/json")


def _multipart(content_type: str, raw: bytes) -> dict[str, tuple[str | None, bytes]]:
    """Fields of a ``multipart/form-data`` body: name → (filename or None, bytes)."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if match is None:
        raise BatchHTTPError(400, "Malformed multipart body: no boundary.")
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in raw.split(b"--" + match[1].encode())[1:]:
        if part.startswith(b"--"):
            break
        head, _, data = part.partition(b"\r\n\r\n")
        name = re.search(rb'name="([^"]*)"', head)
        if name is None:
            continue
        filename = re.search(rb'filename="([^"]*)"', head)
        fields[name[1].decode()] = (
            filename[1].decode() if filename else None,
            data.removesuffix(b"\r\n"),
        )
    return fields


def _page(items: list[Any], after: str | None, limit: int, ident: Any) -> tuple[list[Any], bool]:
    """The ``limit`` items after the one whose id is ``after`` (all from the start when None)."""
    start = 0
    if after:
        start = next((i + 1 for i, item in enumerate(items) if ident(item) == after), len(items))
    page = items[start : start + limit]
    return page, start + limit < len(items)


def _limit(query: dict[str, str], default: int, most: int) -> int:
    try:
        value = int(query.get("limit", default))
    except ValueError:
        raise BatchHTTPError(400, "limit must be an integer.") from None
    if not 1 <= value <= most:
        raise BatchHTTPError(400, f"limit must be between 1 and {most}.")
    return value


class FakeBatches:
    """Batch jobs, uploaded files, knobs and a record of calls for ``FakeProviderServer``.

    Knobs (plain attributes; ``reset()`` restores them). The batch knobs are read on every
    read of a batch, so a test can hold a batch in progress (``processing_polls = 10**9``,
    say, across a kernel restart) and then release it (back to 0). The reply knobs of the
    server (``reply_text``, ``chunk_size``, ``stream_chunks``) are captured when the batch is
    created; ``structured_replies`` entries are consumed in input order when it ends.

    * ``processing_polls``: a batch answers its first N status reads (OpenAI ``retrieve``,
      Anthropic ``retrieve``, Gemini ``get`` of that batch) as in progress, with progress
      counts growing; the read after them ends it. 0 (default): the first read ends it, so
      a test polls once. The create answer itself always shows the first state (OpenAI
      ``validating``, Anthropic ``in_progress``, Gemini ``BATCH_STATE_PENDING``). Lists show
      the state but do not count as polls (a list read can end a batch whose polls are done).
    * ``processing_s``: and it stays in progress until this many seconds after creation.
    * ``outcome``: how a batch ends when processing is over: ``"completed"`` (default),
      ``"expired"`` or ``"failed"`` (OpenAI: status ``failed``, ``errors`` code
      ``token_limit_exceeded``, no output; Anthropic, which has no failed batch: every
      request ``errored`` with a 500 ``api_error``).
    * ``processed_before_stop``: when a batch is cancelled or expires, its first N requests
      (input order) still have their results; the rest are cancelled / expired (default 0).
    * ``request_errors``: ``{custom_id: HTTP status}``; those requests error with that status
      and the provider's native error body (400 401 403 404 409 413 429 500 503 529).
      Also a request whose message text contains ``batch-err-NNN``, or whose model names an
      ``err-NNN`` fault, errors with NNN. The others succeed.
    * ``results_order``: ``"input"`` (default) or ``"reversed"``: the order of the lines of
      OpenAI output/error files and Anthropic results (the APIs do not promise input order).
    * Limits: ``openai_max_requests`` (50,000 lines per batch: more fails the batch with
      ``too_many_tasks``), ``openai_max_file_bytes`` (200 MB per ``purpose=batch`` upload:
      more is a 400 ``File is too large.``), ``anthropic_max_requests`` (100,000: more is a
      400 ``invalid_request_error``) and ``anthropic_max_bytes`` (256 MB of create body: more
      is a 413 ``request_too_large``), ``gemini_max_bytes`` (20 MB of inline requests: more
      is a 400 ``INVALID_ARGUMENT``) and ``gemini_max_requests`` (None: no count limit).
    * Gemini requests have no custom_id: ``request_errors`` matches the request's
      ``metadata["key"]``, or its index as a string when it has none.

    Cancelling: the cancel answer shows the cancelling state (Gemini's cancel answers
    ``{}``); the next read of the batch shows it cancelled, with the results of the first
    ``processed_before_stop`` requests. Gemini lists carry no ``output`` (get the batch).

    Record: ``calls`` lists every batch API call (:class:`BatchCall`); ``jobs`` maps id to
    :class:`BatchJob` (creation order); ``files`` maps id to :class:`StoredFile`. Ids keep
    counting across ``reset()``, so an id from an earlier test is never reused.
    """

    def __init__(self, live: LiveAnswers) -> None:
        self._live = live
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self.jobs: dict[str, BatchJob] = {}
        self.files: dict[str, StoredFile] = {}
        self.calls: list[BatchCall] = []
        self._set_default_knobs()

    def _set_default_knobs(self) -> None:
        self.processing_polls: int = 0
        self.processing_s: float = 0.0
        self.outcome: str = "completed"
        self.processed_before_stop: int = 0
        self.request_errors: dict[str, int] = {}
        self.results_order: str = "input"
        self.openai_max_requests: int = OPENAI_MAX_REQUESTS
        self.openai_max_file_bytes: int = OPENAI_MAX_FILE_BYTES
        self.anthropic_max_requests: int = ANTHROPIC_MAX_REQUESTS
        self.anthropic_max_bytes: int = ANTHROPIC_MAX_BYTES
        self.gemini_max_bytes: int = GEMINI_MAX_BYTES
        self.gemini_max_requests: int | None = None

    def reset(self) -> None:
        """Forget jobs, files and calls; restore the knobs."""
        with self._lock:
            self.jobs.clear()
            self.files.clear()
            self.calls.clear()
            self._set_default_knobs()

    def submitted(self, provider: str | None = None) -> list[BatchJob]:
        """Jobs created since ``reset()`` (of one provider: ``"openai"``), oldest first, with
        their requests (an OpenAI batch's input file is validated now if no read has yet:
        looking at them is not a read of the batch)."""
        with self._lock:
            jobs = [j for j in self.jobs.values() if provider in (None, j.provider)]
            for job in jobs:
                self._validate(job)
            return jobs

    def calls_of(self, provider: str, action: str | None = None) -> list[BatchCall]:
        """Recorded calls of one provider (and one action), oldest first."""
        with self._lock:
            return [c for c in self.calls if c.provider == provider and action in (None, c.action)]

    def handle(self, kind: str, req: Incoming, base_url: str) -> Response:
        """Answer one batch API request of ``kind`` (see :func:`classify_batch`)."""
        with self._lock:
            if kind == "openai.files":
                return self._openai_files(req)
            if kind == "openai.batches":
                return self._openai_batches(req)
            if kind == "anthropic.batches":
                return self._anthropic(req, base_url)
            if kind == "gemini.batches":
                return self._gemini(req)
        raise BatchHTTPError(404, f"fake provider: no batch route for {req.method} {req.path}")

    # -- shared life cycle -----------------------------------------------------------------

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids)}"

    def _record(self, provider: str, action: str, target: str | None) -> None:
        self.calls.append(BatchCall(provider, action, target))

    def _request_error(
        self, kind: str, custom_id: str, model: str, body: dict[str, Any]
    ) -> tuple[int, str] | None:
        """The error a request will get (see the ``request_errors`` knob), or None."""
        status = self.request_errors.get(custom_id)
        if status is None:
            status = self._live.fault_status(model)
        if status is None:
            marker = _ERROR_MARKER.search("\n".join(self._live.texts(kind, body)))
            status = int(marker[1]) if marker else None
        if status is None:
            return None
        return status, f"Fake provider batch error {status} for request {custom_id!r}."

    def _job(self, job_id: str, provider: str) -> BatchJob:
        job = self.jobs.get(job_id)
        if job is None or job.provider != provider:
            raise BatchHTTPError(404, f"No batch found with id '{job_id}'.")
        return job

    def _observe(self, job: BatchJob, poll: bool) -> None:
        """Move ``job`` along on a read of it (``poll``: a status read of that batch)."""
        self._validate(job)
        if job.phase == "ended":
            return
        if job.phase == "canceling":
            self._end(job, "cancelled")
            return
        if job.validation_errors:
            self._end(job, "failed")
            return
        elapsed = time.monotonic() - job.started
        if job.reads >= self.processing_polls and elapsed >= self.processing_s:
            self._end(job, self.outcome)
            return
        if poll:
            job.reads += 1
        by_polls = job.reads / (self.processing_polls + 1) if self.processing_polls else 1.0
        by_time = elapsed / self.processing_s if self.processing_s else 1.0
        job.progress = min(by_polls, by_time, 1.0)
        last = poll and self.processing_polls >= 2 and job.reads == self.processing_polls
        job.stage = "finalizing" if last else "in_progress"

    def _validate(self, job: BatchJob) -> None:
        """Parse and check an OpenAI batch's input file, once: its requests, or the
        validation errors that fail it."""
        if job.unvalidated is None:
            return
        requests, errors, model = self._openai_parse(job.unvalidated, job.endpoint)
        # (a test may have set errors on the batch already: they stay)
        job.requests, job.unvalidated = requests, None
        job.validation_errors = errors + job.validation_errors
        job.model = model or job.model

    def _cancel(self, job: BatchJob) -> None:
        self._validate(job)
        if job.phase == "running":
            job.phase = "canceling"
            job.cancel_at = time.time()

    def _end(self, job: BatchJob, end: str) -> None:
        """End ``job``: compute every request's result once, with the live reply machinery."""
        if end not in ("completed", "cancelled", "expired", "failed"):
            raise ValueError(f"unknown batch outcome {end!r}")
        job.phase, job.end, job.ended_at, job.progress = "ended", end, time.time(), 1.0
        stopped = end in ("cancelled", "expired")
        kept = min(self.processed_before_stop, len(job.requests)) if stopped else None
        results: list[tuple[BatchRequest, str, dict[str, Any] | None]] = []
        for i, r in enumerate(job.requests):
            if kept is not None and i >= kept:
                results.append((r, "canceled" if end == "cancelled" else "expired", None))
            elif end == "failed" and job.provider == "anthropic":
                message = "Internal server error while processing the batch."
                results.append((r, "errored", self._live.error(r.kind, 500, message)))
            elif end == "failed":
                results.append((r, "failed", None))
            elif r.error is not None:
                results.append((r, "errored", self._live.error(r.kind, *r.error)))
            else:
                results.append(
                    (r, "succeeded", self._live.reply(r.kind, r.model, r.body, job.plan))
                )
        job.results = results
        if job.provider == "openai":
            self._openai_finish(job)

    def _ordered(self, job: BatchJob) -> list[tuple[BatchRequest, str, dict[str, Any] | None]]:
        return job.results[::-1] if self.results_order == "reversed" else job.results

    # -- OpenAI: files ---------------------------------------------------------------------

    def _openai_file_object(self, f: StoredFile) -> dict[str, Any]:
        return {
            "id": f.id,
            "object": "file",
            "bytes": len(f.data),
            "created_at": f.created_at,
            "filename": f.filename,
            "purpose": f.purpose,
            "status": "processed",
            "expires_at": f.created_at + 30 * _DAY_S if f.purpose.startswith("batch") else None,
            "status_details": None,
        }

    def _store(self, purpose: str, filename: str, data: bytes) -> StoredFile:
        f = StoredFile(self._new_id("file-fake"), purpose, filename, data, int(time.time()))
        self.files[f.id] = f
        return f

    def _openai_files(self, req: Incoming) -> Response:
        match = _OPENAI_FILES_RE.search(req.path)
        assert match is not None
        file_id, sub = match[1], match[2]
        if req.method == "POST" and file_id is None:
            f = self._openai_upload(req)
            self._record("openai", "upload", f.id)
            return _json_response(self._openai_file_object(f))
        if req.method == "GET" and file_id is None:
            self._record("openai", "files", None)
            purpose = req.query.get("purpose")
            files = [f for f in self.files.values() if purpose in (None, f.purpose)][::-1]
            page, more = _page(
                files, req.query.get("after"), _limit(req.query, 10_000, 10_000), lambda f: f.id
            )
            return _json_response(
                {
                    "object": "list",
                    "data": [self._openai_file_object(f) for f in page],
                    "first_id": page[0].id if page else None,
                    "last_id": page[-1].id if page else None,
                    "has_more": more,
                }
            )
        stored = self.files.get(file_id or "")
        if stored is None:
            raise BatchHTTPError(404, f"No such File object: {file_id}")
        if req.method == "GET" and sub == "content":
            self._record("openai", "content", stored.id)
            return Response(stored.data, media_type="application/octet-stream")
        if req.method == "GET" and sub is None:
            self._record("openai", "file", stored.id)
            return _json_response(self._openai_file_object(stored))
        if req.method == "DELETE" and sub is None:
            self._record("openai", "delete_file", stored.id)
            del self.files[stored.id]
            return _json_response({"id": stored.id, "object": "file", "deleted": True})
        raise BatchHTTPError(404, f"fake provider: no route for {req.method} {req.path}")

    def _openai_upload(self, req: Incoming) -> StoredFile:
        content_type = req.headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            raise BatchHTTPError(400, "Expected a multipart/form-data body.")
        fields = _multipart(content_type, req.raw)
        purpose = fields.get("purpose", (None, b""))[1].decode()
        if "file" not in fields:
            raise BatchHTTPError(400, "Missing required parameter: 'file'.")
        filename, data = fields["file"]
        filename = filename or "upload"
        if purpose == "batch":
            if not filename.endswith(".jsonl"):
                raise BatchHTTPError(400, "Invalid file format for Batch API. Must be .jsonl")
            if len(data) > self.openai_max_file_bytes:
                raise BatchHTTPError(400, "File is too large.")
        return self._store(purpose, filename, data)

    # -- OpenAI: batches -------------------------------------------------------------------

    def _openai_batches(self, req: Incoming) -> Response:
        match = _OPENAI_BATCHES_RE.search(req.path)
        assert match is not None
        batch_id, sub = match[1], match[2]
        if req.method == "POST" and batch_id is None:
            job = self._openai_create(req.body)
            self._record("openai", "create", job.id)
            return _json_response(self._openai_batch(job))
        if req.method == "GET" and batch_id is None:
            self._record("openai", "list", None)
            jobs = [j for j in self.jobs.values() if j.provider == "openai"][::-1]
            limit = _limit(req.query, 20, 100)
            page, more = _page(jobs, req.query.get("after"), limit, lambda j: j.id)
            for job in page:
                self._observe(job, poll=False)
            return _json_response(
                {
                    "object": "list",
                    "data": [self._openai_batch(j) for j in page],
                    "first_id": page[0].id if page else None,
                    "last_id": page[-1].id if page else None,
                    "has_more": more,
                }
            )
        job = self._job(batch_id or "", "openai")
        if req.method == "GET" and sub is None:
            self._record("openai", "retrieve", job.id)
            self._observe(job, poll=True)
            return _json_response(self._openai_batch(job))
        if req.method == "POST" and sub == "cancel":
            self._record("openai", "cancel", job.id)
            if job.phase == "ended" and job.end != "cancelled":
                status = self._openai_status(job)
                raise BatchHTTPError(409, f"Cannot cancel a batch with status '{status}'.")
            self._cancel(job)
            return _json_response(self._openai_batch(job))
        raise BatchHTTPError(404, f"fake provider: no route for {req.method} {req.path}")

    def _openai_create(self, body: Any) -> BatchJob:
        if not isinstance(body, dict):
            raise BatchHTTPError(400, "Request body must be a JSON object.")
        endpoint = body.get("endpoint")
        if endpoint not in _OPENAI_ENDPOINTS:
            raise BatchHTTPError(
                400,
                f"Invalid value for 'endpoint': {endpoint!r}; the fake provider batches "
                + ", ".join(_OPENAI_ENDPOINTS)
                + ".",
            )
        if body.get("completion_window") != "24h":
            raise BatchHTTPError(400, "Invalid value for 'completion_window': must be '24h'.")
        file_id = body.get("input_file_id")
        f = self.files.get(file_id) if isinstance(file_id, str) else None
        if f is None:
            raise BatchHTTPError(
                400, f"Cannot find file {file_id}, or project does not have access to it."
            )
        if f.purpose != "batch":
            raise BatchHTTPError(400, f"File {file_id} was not uploaded with purpose 'batch'.")
        # (the file is validated at the batch's first read; the create answers at once,
        # with the line count and the first line's model)
        lines = [line for line in f.data.splitlines() if line.strip()]
        return self._add(
            BatchJob(
                provider="openai",
                id=self._new_id("batch_fake_"),
                requests=[],
                plan=self._live.plan(),
                created_at=time.time(),
                started=time.monotonic(),
                endpoint=endpoint,
                input_file_id=f.id,
                metadata=body.get("metadata"),
                model=_first_model(lines[0]) if lines else "",
                unvalidated=f.data,
                lines=len(lines),
            )
        )

    def _add(self, job: BatchJob) -> BatchJob:
        self.jobs[job.id] = job
        return job

    def _openai_parse(
        self, data: bytes, endpoint: str
    ) -> tuple[list[BatchRequest], list[dict[str, Any]], str]:
        """The requests of an input file, and the validation errors that fail the batch."""
        lines = [(n, line) for n, line in enumerate(data.splitlines(), 1) if line.strip()]
        if not lines:
            return [], [_batch_error("empty_file", "The batch input file is empty.")], ""
        if len(lines) > self.openai_max_requests:
            message = (
                f"The batch input file has {len(lines)} requests; "
                f"a batch may contain at most {self.openai_max_requests}."
            )
            return [], [_batch_error("too_many_tasks", message)], ""
        requests: list[BatchRequest] = []
        errors: list[dict[str, Any]] = []
        seen: set[str] = set()
        model: str | None = None
        kind = _OPENAI_ENDPOINTS[endpoint]
        for n, line in lines:
            problem: tuple[str, str, str | None] | None = None
            try:
                obj = json.loads(line)
            except ValueError:
                obj = None
            if not isinstance(obj, dict):
                problem = ("invalid_json_line", "This line is not parseable as valid JSON.", None)
            elif not isinstance(obj.get("custom_id"), str) or not obj["custom_id"]:
                problem = (
                    "missing_required_parameter",
                    "Missing required parameter: 'custom_id'.",
                    "custom_id",
                )
            elif obj["custom_id"] in seen:
                problem = (
                    "duplicate_custom_id",
                    "The custom_id for this request is a duplicate of another request. "
                    "The custom_id parameter must be unique for each request in a batch.",
                    "custom_id",
                )
            elif obj.get("method") != "POST":
                problem = ("invalid_method", "The method must be 'POST'.", "method")
            elif obj.get("url") != endpoint:
                problem = (
                    "url_mismatch",
                    f"The provided URL {obj.get('url')!r} does not match the batch "
                    f"endpoint {endpoint!r}.",
                    "url",
                )
            elif not isinstance(obj.get("body"), dict):
                problem = (
                    "missing_required_parameter",
                    "Missing required parameter: 'body'.",
                    "body",
                )
            elif model is not None and obj["body"].get("model") != model:
                problem = (
                    "model_mismatch",
                    "The provided model does not match the model of the other requests; "
                    "a batch input file can only include requests to a single model.",
                    "body.model",
                )
            if problem is not None:
                if len(errors) < _MAX_LISTED_ERRORS:
                    errors.append(_batch_error(problem[0], problem[1], problem[2], n))
                continue
            custom_id, body = obj["custom_id"], obj["body"]
            seen.add(custom_id)
            model = str(body.get("model", "")) if model is None else model
            error = self._request_error(kind, custom_id, model, body)
            requests.append(BatchRequest(custom_id, kind, model, body, error))
        return requests, errors, model or ""

    def _openai_status(self, job: BatchJob) -> str:
        if job.phase == "ended":
            return job.end
        if job.phase == "canceling":
            return "cancelling"
        return "validating" if job.stage == "new" else job.stage

    def _openai_batch(self, job: BatchJob) -> dict[str, Any]:
        created = int(job.created_at)
        ended = int(job.ended_at) if job.ended_at is not None else None
        status = self._openai_status(job)
        ok, errored = job.done_counts()
        started = (job.phase == "ended" and not job.validation_errors) or job.stage != "new"
        return {
            "id": job.id,
            "object": "batch",
            "endpoint": job.endpoint,
            "model": job.model or None,
            "errors": {"object": "list", "data": job.validation_errors}
            if job.validation_errors
            else None,
            "input_file_id": job.input_file_id,
            "completion_window": "24h",
            "status": status,
            "output_file_id": job.output_file_id,
            "error_file_id": job.error_file_id,
            "created_at": created,
            "in_progress_at": created if started else None,
            "expires_at": created + _DAY_S,
            "finalizing_at": ended if job.end == "completed" else None,
            "completed_at": ended if job.end == "completed" else None,
            "failed_at": ended if job.end == "failed" else None,
            "expired_at": ended if job.end == "expired" else None,
            "cancelling_at": int(job.cancel_at) if job.cancel_at is not None else None,
            "cancelled_at": ended if job.end == "cancelled" else None,
            "request_counts": {
                "total": job.lines if job.unvalidated is not None else len(job.requests),
                "completed": ok,
                "failed": errored,
            },
            "metadata": job.metadata,
            "usage": job.usage,
        }

    def _openai_finish(self, job: BatchJob) -> None:
        """Write the output and error files and sum the usage of an ended OpenAI batch."""
        if job.end == "failed":
            if not job.validation_errors:
                message = f"Enqueued token limit reached for {job.model} in organization org-fake."
                job.validation_errors = [_batch_error("token_limit_exceeded", message)]
            return
        out: list[bytes] = []
        err: list[bytes] = []
        tokens_in = tokens_out = 0
        for r, outcome, body in self._ordered(job):
            line: dict[str, Any] = {"id": self._new_id("batch_req_fake_"), "custom_id": r.custom_id}
            if body is not None:
                status = 200 if outcome == "succeeded" else (r.error or (500, ""))[0]
                request_id = self._new_id("req_fake_")
                line["response"] = {"status_code": status, "request_id": request_id, "body": body}
                line["error"] = None
                usage = body.get("usage") if outcome == "succeeded" else None
                if isinstance(usage, dict):
                    tokens_in += int(usage.get("prompt_tokens") or usage.get("input_tokens") or 0)
                    tokens_out += int(
                        usage.get("completion_tokens") or usage.get("output_tokens") or 0
                    )
                (out if outcome == "succeeded" else err).append(_json(line))
            else:
                code = "batch_cancelled" if outcome == "canceled" else "batch_expired"
                why = "cancelled" if outcome == "canceled" else "expired"
                line["response"] = None
                line["error"] = {
                    "code": code,
                    "message": f"This request was not executed because the batch {why}.",
                }
                err.append(_json(line))
        if out:
            name = f"{job.id}_output.jsonl"
            job.output_file_id = self._store("batch_output", name, b"\n".join(out) + b"\n").id
        if err:
            name = f"{job.id}_error.jsonl"
            job.error_file_id = self._store("batch_output", name, b"\n".join(err) + b"\n").id
        job.usage = {
            "input_tokens": tokens_in,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": tokens_out,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": tokens_in + tokens_out,
        }

    # -- Anthropic -------------------------------------------------------------------------

    def _anthropic(self, req: Incoming, base_url: str) -> Response:
        match = _ANTHROPIC_RE.search(req.path)
        assert match is not None
        batch_id, sub = match[1], match[2]
        if req.method == "POST" and batch_id is None:
            job = self._anthropic_create(req)
            self._record("anthropic", "create", job.id)
            return _json_response(self._anthropic_batch(job, base_url))
        if req.method == "GET" and batch_id is None:
            self._record("anthropic", "list", None)
            jobs = [j for j in self.jobs.values() if j.provider == "anthropic"][::-1]
            limit = _limit(req.query, 20, 1000)
            before = req.query.get("before_id")
            if before:
                stop = next((i for i, j in enumerate(jobs) if j.id == before), 0)
                page, more = jobs[max(0, stop - limit) : stop], stop > limit
            else:
                page, more = _page(jobs, req.query.get("after_id"), limit, lambda j: j.id)
            for job in page:
                self._observe(job, poll=False)
            return _json_response(
                {
                    "data": [self._anthropic_batch(j, base_url) for j in page],
                    "has_more": more,
                    "first_id": page[0].id if page else None,
                    "last_id": page[-1].id if page else None,
                }
            )
        job = self._job(batch_id or "", "anthropic")
        if req.method == "GET" and sub is None:
            self._record("anthropic", "retrieve", job.id)
            self._observe(job, poll=True)
            return _json_response(self._anthropic_batch(job, base_url))
        if req.method == "POST" and sub == "cancel":
            self._record("anthropic", "cancel", job.id)
            self._cancel(job)
            return _json_response(self._anthropic_batch(job, base_url))
        if req.method == "GET" and sub == "results":
            self._record("anthropic", "results", job.id)
            if job.phase != "ended":
                raise BatchHTTPError(
                    400, f"Message Batch {job.id} has not ended yet; its results are not ready."
                )
            if job.rendered is None:
                lines = (_json(_anthropic_line(*res)) + b"\n" for res in self._ordered(job))
                job.rendered = b"".join(lines)
            return Response(job.rendered, media_type="application/binary")
        if req.method == "DELETE" and sub is None:
            if job.phase != "ended":
                raise BatchHTTPError(
                    400, f"Message Batch {job.id} is still in progress; cancel it before deleting."
                )
            self._record("anthropic", "delete", job.id)
            del self.jobs[job.id]
            return _json_response({"id": job.id, "type": "message_batch_deleted"})
        raise BatchHTTPError(404, f"fake provider: no route for {req.method} {req.path}")

    def _anthropic_create(self, req: Incoming) -> BatchJob:
        # The documented limits: 413 past the size (checked before parsing, as Cloudflare
        # does), 400 past the count. Each request's params are checked when it is processed.
        if len(req.raw) > self.anthropic_max_bytes:
            raise BatchHTTPError(
                413, "Request exceeds the maximum allowed number of bytes for a Message Batch."
            )
        items = req.body.get("requests") if isinstance(req.body, dict) else None
        if not isinstance(items, list) or not items:
            raise BatchHTTPError(400, "requests: List should have at least 1 item.")
        if len(items) > self.anthropic_max_requests:
            raise BatchHTTPError(
                400,
                f"requests: a Message Batch may contain at most {self.anthropic_max_requests} "
                f"requests; got {len(items)}.",
            )
        requests: list[BatchRequest] = []
        seen: set[str] = set()
        for i, item in enumerate(items):
            custom_id = item.get("custom_id") if isinstance(item, dict) else None
            if not isinstance(custom_id, str) or not _ANTHROPIC_CUSTOM_ID.match(custom_id):
                raise BatchHTTPError(
                    400,
                    f"requests.{i}.custom_id: String should match pattern "
                    f"'{_ANTHROPIC_CUSTOM_ID.pattern}'.",
                )
            if custom_id in seen:
                raise BatchHTTPError(
                    400,
                    f"requests.{i}.custom_id: duplicate custom_id {custom_id!r}; each request "
                    "in a Message Batch must have a unique custom_id.",
                )
            params = item.get("params")
            if not isinstance(params, dict):
                raise BatchHTTPError(400, f"requests.{i}.params: Field required.")
            seen.add(custom_id)
            model = str(params.get("model") or "")
            error: tuple[int, str] | None
            if not model or not isinstance(params.get("messages"), list):
                error = (400, "params: 'model' and 'messages' are required.")
            else:
                error = self._request_error("anthropic.messages", custom_id, model, params)
            requests.append(BatchRequest(custom_id, "anthropic.messages", model, params, error))
        return self._add(
            BatchJob(
                provider="anthropic",
                id=self._new_id("msgbatch_fake_"),
                requests=requests,
                plan=self._live.plan(),
                created_at=time.time(),
                started=time.monotonic(),
            )
        )

    def _anthropic_batch(self, job: BatchJob, base_url: str) -> dict[str, Any]:
        counts = dict.fromkeys(("processing", "succeeded", "errored", "canceled", "expired"), 0)
        if job.phase == "ended":
            for _, outcome, _ in job.results:
                counts[outcome] += 1
        else:
            counts["processing"] = len(job.requests)
        ended = job.phase == "ended"
        return {
            "id": job.id,
            "type": "message_batch",
            "processing_status": {"running": "in_progress", "canceling": "canceling"}.get(
                job.phase, "ended"
            ),
            "request_counts": counts,
            "ended_at": _rfc3339(job.ended_at),
            "created_at": _rfc3339(job.created_at),
            "expires_at": _rfc3339(job.created_at + _DAY_S),
            "archived_at": None,
            "cancel_initiated_at": _rfc3339(job.cancel_at),
            "results_url": f"{base_url}/v1/messages/batches/{job.id}/results" if ended else None,
        }

    # -- Gemini API ------------------------------------------------------------------------

    def _gemini(self, req: Incoming) -> Response:
        if create := _GEMINI_CREATE_RE.search(req.path):
            if req.method != "POST":
                raise BatchHTTPError(404, f"fake provider: no route for {req.method} {req.path}")
            job = self._gemini_create(req, create[1])
            self._record("gemini", "create", job.id)
            return _json_response(self._gemini_operation(job))
        match = _GEMINI_BATCH_RE.search(req.path)
        assert match is not None
        batch_id, sub = match[1], match[2]
        if req.method == "GET" and batch_id is None:
            self._record("gemini", "list", None)
            jobs = [j for j in self.jobs.values() if j.provider == "gemini"][::-1]
            try:
                size = int(req.query.get("pageSize", 50))
                start = int(req.query.get("pageToken") or 0)
            except ValueError:
                raise BatchHTTPError(400, "Invalid pageSize or pageToken.") from None
            page = jobs[start : start + max(1, min(size, 1000))]
            for job in page:
                self._observe(job, poll=False)
            listed: dict[str, Any] = {
                "operations": [self._gemini_operation(j, output=False) for j in page]
            }
            if start + len(page) < len(jobs):
                listed["nextPageToken"] = str(start + len(page))
            return _json_response(listed)
        job = self._job(f"batches/{batch_id}", "gemini")
        if req.method == "GET" and sub is None:
            self._record("gemini", "retrieve", job.id)
            self._observe(job, poll=True)
            return _json_response(self._gemini_operation(job))
        if req.method == "POST" and sub == "cancel":
            self._record("gemini", "cancel", job.id)
            self._cancel(job)
            return _json_response({})
        if req.method == "DELETE" and sub is None:
            self._record("gemini", "delete", job.id)
            del self.jobs[job.id]
            return _json_response({})
        raise BatchHTTPError(404, f"fake provider: no route for {req.method} {req.path}")

    def _gemini_create(self, req: Incoming, model: str) -> BatchJob:
        if len(req.raw) > self.gemini_max_bytes:
            raise BatchHTTPError(
                400, f"Request payload size exceeds the limit: {self.gemini_max_bytes} bytes."
            )
        batch = req.body.get("batch") if isinstance(req.body, dict) else None
        config = batch.get("inputConfig") if isinstance(batch, dict) else None
        if not isinstance(batch, dict) or not isinstance(config, dict):
            raise BatchHTTPError(400, "batch.inputConfig is required.")
        if "fileName" in config:
            raise BatchHTTPError(
                400, "fake provider: only inline requests are supported (inputConfig.requests)."
            )
        inline = config.get("requests")
        items = inline.get("requests") if isinstance(inline, dict) else None
        if not isinstance(items, list) or not items:
            raise BatchHTTPError(400, "batch.inputConfig.requests.requests must not be empty.")
        if self.gemini_max_requests is not None and len(items) > self.gemini_max_requests:
            raise BatchHTTPError(
                400,
                f"A batch may contain at most {self.gemini_max_requests} inline requests; "
                f"got {len(items)}.",
            )
        requests: list[BatchRequest] = []
        for i, item in enumerate(items):
            body = item.get("request") if isinstance(item, dict) else None
            if not isinstance(body, dict):
                raise BatchHTTPError(
                    400, f"batch.inputConfig.requests.requests[{i}].request is required."
                )
            metadata = item.get("metadata")
            metadata = metadata if isinstance(metadata, dict) else None
            key = metadata.get("key") if metadata else None
            key = key if isinstance(key, str) else str(i)
            error = self._request_error("gemini", key, model, body)
            requests.append(BatchRequest(key, "gemini", model, body, error, metadata))
        name = batch.get("displayName")
        return self._add(
            BatchJob(
                provider="gemini",
                id=self._new_id("batches/fake-batch-"),
                requests=requests,
                plan=self._live.plan(),
                created_at=time.time(),
                started=time.monotonic(),
                display_name=name if isinstance(name, str) else "",
                model=model,
            )
        )

    def _gemini_operation(self, job: BatchJob, output: bool = True) -> dict[str, Any]:
        """The long-running operation google-genai reads a batch from (``metadata``)."""
        ended = job.phase == "ended"
        ok, errored = job.done_counts()
        total = len(job.requests)
        if ended:
            state = _GEMINI_STATES[job.end]
        else:
            state = "BATCH_STATE_PENDING" if job.stage == "new" else "BATCH_STATE_RUNNING"
        metadata: dict[str, Any] = {
            "@type": _GEMINI_TYPE + "GenerateContentBatch",
            "model": f"models/{job.model}",
            "displayName": job.display_name,
            "name": job.id,
            "createTime": _rfc3339(job.created_at),
            "updateTime": _rfc3339(job.ended_at or job.cancel_at or job.created_at),
            "batchStats": {
                "requestCount": str(total),
                "successfulRequestCount": str(ok),
                "failedRequestCount": str(errored),
                "pendingRequestCount": str(0 if ended else total - ok - errored),
            },
            "state": state,
        }
        operation: dict[str, Any] = {"name": job.id, "metadata": metadata}
        if not ended:
            return operation
        metadata["endTime"] = _rfc3339(job.ended_at)
        operation["done"] = True
        if job.end == "failed":
            operation["error"] = {"code": 13, "message": "Batch failed: internal error."}
        elif output:
            if job.rendered is None:
                job.rendered = [
                    line for res in job.results if (line := _gemini_line(*res)) is not None
                ]
            responses = {"inlinedResponses": {"inlinedResponses": job.rendered}}
            metadata["output"] = responses
            operation["response"] = {"@type": _GEMINI_TYPE + "GenerateContentBatchOutput"}
            operation["response"].update(responses)
        return operation


def _gemini_line(
    r: BatchRequest, outcome: str, body: dict[str, Any] | None
) -> dict[str, Any] | None:
    """One entry of a Gemini batch's inlined responses (None: the request did not run)."""
    if outcome == "succeeded":
        line: dict[str, Any] = {"response": body}
    elif outcome == "errored" and body is not None:
        line = {"error": body["error"]}
    else:
        return None
    if r.metadata is not None:
        line["metadata"] = r.metadata
    return line


def _anthropic_line(r: BatchRequest, outcome: str, body: dict[str, Any] | None) -> dict[str, Any]:
    """One line of an Anthropic results file."""
    if outcome == "succeeded":
        result: dict[str, Any] = {"type": "succeeded", "message": body}
    elif outcome == "errored":
        result = {"type": "errored", "error": body}
    else:
        result = {"type": outcome}  # canceled / expired
    return {"custom_id": r.custom_id, "result": result}


def _batch_error(
    code: str, message: str, param: str | None = None, line: int | None = None
) -> dict[str, Any]:
    """One entry of an OpenAI batch's ``errors.data``."""
    return {"code": code, "message": message, "param": param, "line": line}


def _rfc3339(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
