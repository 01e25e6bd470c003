"""Provider batch APIs: many requests submitted as one job the provider runs within 24 hours,
at about half the price (OpenAI's Batch API, Anthropic's Message Batches, the Gemini API's
batch mode).

A provider route that can batch answers :meth:`Provider.batch_api` with a :class:`BatchAPI`
bound to a model spec; one that cannot (the local model, a template's own server, Vertex AI,
whose batch prediction reads and writes Cloud Storage or BigQuery) answers with the reason,
one line. A :class:`BatchAPI` submits native requests — exactly those a live call sends, minus
streaming — and turns the provider's per-request results back into the :class:`Reply` a live
call gives (the provider's own ``parse``), or a :class:`ProviderError` in pl_magic's
categories. Everything a provider sends back is data: a result whose id is not one of the
job's is skipped, and the messages it carries go into one-line errors.

The SDKs' own clients are used (the same ones, keys and base URLs as live calls), and their
errors become pl_magic's through the provider's :meth:`Provider.error_for`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..core.blueprint import ModelSpec
from ..core.config import env_int
from ..core.errors import ProviderError
from .base import Reply

if TYPE_CHECKING:
    from .base import Provider

#: A provider job's statuses, as pl_magic names them.
RUNNING, CANCELLING = "running", "cancelling"
ENDED, CANCELLED, FAILED, EXPIRED = "ended", "cancelled", "failed", "expired"
#: The statuses after which a provider job changes no more (its results can be read).
FINAL = frozenset({ENDED, CANCELLED, FAILED, EXPIRED})
#: The request keys a batch request leaves out: a batch is never streamed.
_STREAM_KEYS = ("stream", "stream_options")


@dataclass(frozen=True)
class BatchLimits:
    """How much one provider job may hold: requests, and bytes of the payload."""

    max_requests: int
    max_bytes: int


def limits_from_env(documented: BatchLimits) -> BatchLimits:
    """The documented limits, lowered by ``PL_MAGIC_BATCH_MAX_REQUESTS`` and
    ``PL_MAGIC_BATCH_MAX_BYTES`` when set (they never raise them)."""
    requests = env_int("PL_MAGIC_BATCH_MAX_REQUESTS", documented.max_requests)
    size = env_int("PL_MAGIC_BATCH_MAX_BYTES", documented.max_bytes)
    return BatchLimits(
        max(1, min(requests, documented.max_requests)), max(1, min(size, documented.max_bytes))
    )


@dataclass
class BatchState:
    """A provider job as its provider reports it."""

    job_id: str
    status: str  # one of RUNNING, CANCELLING, ENDED, CANCELLED, FAILED, EXPIRED
    succeeded: int | None = None
    errored: int | None = None
    #: Why the job failed as a whole (the provider's words, one line), or None.
    message: str | None = None

    @property
    def final(self) -> bool:
        """True once the job changes no more."""
        return self.status in FINAL


@dataclass(frozen=True)
class Encoded:
    """One request as a job's payload carries it, and its size there in bytes."""

    payload: Any
    size: int


@dataclass
class BatchOutcome:
    """One request's result: a reply, an error, or cancelled before it ran."""

    custom_id: str
    reply: Reply | None = None
    error: ProviderError | None = None
    cancelled: bool = False


def batch_request(request: Mapping[str, Any]) -> dict[str, Any]:
    """A live call's native request as a batch sends it: no streaming, and the SDK's
    ``extra_body`` (parameters it has no argument for) merged into the body, as the SDK puts
    it on the wire."""
    body = {k: v for k, v in request.items() if k not in _STREAM_KEYS and k != "extra_body"}
    extra = request.get("extra_body")
    if isinstance(extra, Mapping):
        for key, value in extra.items():
            body.setdefault(key, value)
    return body


def same_origin(url: str | None, base_url: str | None) -> bool:
    """True when ``url`` is on the origin (scheme, host, port) of ``base_url``: where a
    provider's answer points the SDK (a results URL) must be where its key already goes."""
    if not url or not base_url:
        return False
    a, b = urlsplit(url), urlsplit(base_url)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)


class BatchAPI(ABC):
    """One provider route's batch API, bound to a model (made by ``Provider.batch_api``)."""

    #: The limits the provider documents for one job.
    documented: BatchLimits

    def __init__(self, provider: Provider, spec: ModelSpec, base_url: str | None) -> None:
        self.provider = provider
        self.spec = spec
        #: Where the jobs go (the SDK's base URL; None: the provider's own host).
        self.base_url = base_url

    @property
    def limits(self) -> BatchLimits:
        """The limits one job keeps to (see :func:`limits_from_env`)."""
        return limits_from_env(self.documented)

    @abstractmethod
    def encode(
        self, custom_id: str, request: Mapping[str, Any], body: str | None = None
    ) -> Encoded:
        """One request as the payload carries it (its size counts against the limit);
        ``body``: :func:`batch_request` of it as JSON already, when the caller has it."""

    @abstractmethod
    def submit(self, encoded: Sequence[Encoded], label: str) -> BatchState:
        """Create a provider job from :meth:`encode`'s items; ``label`` names it there."""

    @abstractmethod
    def retrieve(self, job_id: str) -> BatchState:
        """The job's state now."""

    @abstractmethod
    def cancel(self, job_id: str) -> BatchState:
        """Ask the provider to cancel the job; its state after the request."""

    @abstractmethod
    def results(
        self, job_id: str, spec_of: Callable[[str], ModelSpec | None], order: Sequence[str]
    ) -> Iterator[BatchOutcome]:
        """The results of a finished job. ``spec_of(custom_id)`` is the spec a request ran
        with (None: not one of the job's: skipped); ``order`` the custom ids as submitted."""

    def error(self, exc: BaseException) -> ProviderError:
        """A typed, redacted error for an SDK exception (as a live call's)."""
        return self.provider.error_for(exc)

    def call(self, fn: Callable[[], Any]) -> Any:
        """``fn()``, its SDK exception raised as a pl_magic error."""
        try:
            return fn()
        except ProviderError:
            raise
        except Exception as exc:
            raise self.error(exc) from exc
