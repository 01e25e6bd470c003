"""The run log port: what a run leaves behind, and where it goes besides the local log.

:class:`RunRecord` is one run, as the ``runs`` table stores it
(:class:`pl_magic.runlog.sqlite.RunLog` writes and reads it). A :class:`RunSink` is
another destination: the PromptLayer backend's sink
(:class:`pl_magic.runlog.promptlayer.PromptLayerSink`) sends each run to
``/track-request``, and each stored score to ``/library-track-score``. The engine drives
a sink through this protocol alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, overload

from ..core.errors import InvalidInputError, PlMagicError
from ..core.types import RunResult

STATUSES = ("ok", "error", "cancelled")


@dataclass
class RunRecord:
    """Everything known about one run. Field names are the ``runs`` table's columns."""

    request_id: str
    run_key: str
    prompt_name: str | None
    prompt_id: int | None
    prompt_version: int | None
    release_label: str | None
    provider: str
    model: str
    api_type: str | None
    parameters: dict[str, Any]
    input_variables: dict[str, Any]
    rendered_input: dict[str, Any]
    started_at: str
    status: str = "ok"
    output: str = ""
    error_category: str | None = None
    error_message: str | None = None
    finish_reason: str | None = None
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    group_id: int | None = None
    repeat_index: int = 0
    ended_at: str | None = None
    ttft_s: float | None = None
    latency_s: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    raw_response: Any = None
    backend: str = "local"
    remote_request_id: str | None = None
    sync_state: str | None = None
    sync_payload: str | None = None  # PromptLayer backend: the /track-request body (no key)
    sync_attempted_at: float | None = None
    #: The replay cache's key of the request sent (see :mod:`pl_magic.engine.replay`).
    cache_key: str | None = None
    #: The lengths of the streamed text pieces, in order (None: not streamed).
    chunk_sizes: list[int] | None = None
    #: The reply's tool calls (None: none), so that a replay returns them too.
    reply_tool_calls: list[dict[str, Any]] | None = None
    #: A run served by the replay cache: the request_id of the logged run it came from.
    cached_from: str | None = None
    #: The batch job (``pl_magic.batches()``) the run belongs to, or None.
    batch_id: str | None = None


@dataclass(frozen=True)
class ProviderCall:
    """The provider call a run made, as a sink needs it besides the log row."""

    #: The native request sent (the SDK call's arguments).
    request: Mapping[str, Any]
    stream: bool
    #: PromptLayer's name for the SDK function called (``openai.chat.completions.create``).
    function_name: str


class RunSink(Protocol):
    """A destination for runs besides the local log; the engine drives it for every run.

    The order, for one run: :meth:`before_run` before the prompt is resolved; once the
    provider call ended (ok, error or cancelled), :meth:`record` just before the row is
    written to the local log; then :meth:`finalize` once it is written, before the run's
    result is returned or its error raised. Apart from these, the engine calls
    :meth:`score` for each score it stores (``run_many(scorers=...)``, ``score(df, ...)``).
    A sink never raises for its destination being down: the run (and its score) is in the
    local log, and the sink sends it later.
    """

    def before_run(self) -> None:
        """A run is about to start: a chance to send, in the background, what an earlier
        run left unsent. Must not wait on the destination."""
        ...

    def record(
        self,
        record: RunRecord,
        call: ProviderCall,
        error: PlMagicError | None,
        later: bool = False,
    ) -> None:
        """The run ended; ``record`` is about to be written to the local log.

        The sink may set fields of ``record`` (e.g. ``sync_state`` and ``sync_payload``)
        so that they are written with the row. ``call`` is the provider call made;
        ``error`` is the run's error (None for an OK or cancelled run). ``later``: nobody
        waits for this run (a batch job's results, thousands at once): :meth:`finalize`
        only starts sending it in the background.
        """
        ...

    @overload
    def finalize(self, record: RunRecord) -> None: ...

    @overload
    def finalize(self, record: RunRecord, result: RunResult) -> RunResult: ...

    def finalize(self, record: RunRecord, result: RunResult | None = None) -> RunResult | None:
        """``record`` is in the local log (or kept in memory until the file takes it).

        An OK run is finalized with its ``result`` and this returns the result the caller
        gets: as given, or as the destination wants it (PromptLayer's ``request_id`` and
        ``prompt_blueprint``). A failed or cancelled run is finalized without a result,
        before its error is raised, and this returns None.
        """
        ...

    def score(self, request_id: str, name: str, score: int) -> None:
        """A score of a logged run was stored: send it too (PromptLayer's ``track.score``).

        ``request_id`` is the run's local id, ``name`` the scorer's name and ``score`` a
        whole number from 0 to 100 (the engine converts and leaves out scores that have no
        value: see :func:`pl_magic.runlog.scores.percent`). Must not wait on the
        destination: the score is queued on the run's row and sent in the background, once
        the destination has the run, and again later while it is down.
        """
        ...


def unknown_request_id(request_id: Any) -> InvalidInputError:
    """The one-line error for a request id that is not a run's."""
    return InvalidInputError(
        f"Unknown request id {request_id!r}: use the request_id a run returned "
        "(pl_magic.runs() lists them)"
    )
