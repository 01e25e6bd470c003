"""The replay cache: serve a run recorded in the log instead of calling the model again.

Modes (:data:`pl_magic.core.config.CACHE_MODES`; ``PL_MAGIC_CACHE``, ``%config PlMagic.cache``,
``cache=`` on ``run_many`` and the drop-in's ``run()``, ``%%plrun --cache``):

- ``off`` (default) and ``record``: every run calls the model. Both log what a replay needs:
  every logged run stores its key, so a log recorded in ``off`` mode replays too.
- ``replay``: a hit, the newest ``ok`` run logged with the same key, is served from the log
  with no network call and no key needed; a miss calls the model (and is logged, so the next
  replay hits).
- ``replay-only``: a miss is a one-line :class:`~pl_magic.core.errors.ReplayMissError`
  naming the prompt, version, model and repeat; no model is ever called.

The key (:func:`cache_key`) is the sha256 of canonical JSON of the provider, the model, the
template's base URL (``provider_base_url``; the SDKs' base-URL environment variables are not
part of it, so a run recorded through a gateway replays without one; the embedded local
model's key holds its placeholder URL, not the port its server got), the native request as it
would be sent, and the repeat index (repeats are distinct runs). The request is keyed without
``stream`` and ``stream_options``: a streamed and a plain run of the same request share a key,
so a notebook recorded with ``--no-stream`` replays streamed, and the reverse.

A served run is logged as a new row whose ``cached_from`` names the recorded run, with cost 0
(its tokens are the recorded ones) and no raw response (the recording's row has it); it is
never sent to PromptLayer. Its result has the shape
of a live one: ``raw_response`` is the recorded JSON dump of the provider's response (a dict,
redacted as stored; None when none was stored), not the SDK's object, and a streamed replay
yields the recorded text in the recorded chunk sizes (not with the recorded delays), each
chunk's ``raw_response`` None.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from pathlib import Path
from typing import Any, cast

from ..core import config
from ..core.errors import ConfigurationError, InvalidInputError, ReplayMissError
from ..core.types import RunChunk, RunResult
from ..providers.base import Reply
from ..runlog.sqlite import RunLog

#: The request's keys left out of the cache key: how the reply is delivered, not what it is.
_DELIVERY_KEYS = frozenset({"stream", "stream_options"})
#: The modes that look in the log before calling.
REPLAYING = frozenset({"replay", "replay-only"})


def mode(override: str | None) -> str:
    """The mode of a run: its own (``cache=``) when given, else the process-wide one."""
    return override if override is not None else config.cache_mode()


def cache_key(
    provider: str,
    model: str,
    base_url: str | None,
    request: Mapping[str, Any],
    repeat_index: int,
) -> str:
    """The replay-cache key of a request (see the module's docstring)."""
    return RequestKey(provider, model, base_url, request)(repeat_index)


class RequestKey:
    """The replay-cache keys of one request, by repeat index: the request is encoded once
    (a batch job keys every repeat of each request). The text hashed is the canonical JSON
    of ``{"base_url", "model", "provider", "repeat", "request"}`` (keys sorted, no spaces,
    non-ASCII as it is), the repeat spliced in where sorting puts it."""

    __slots__ = ("_head", "request_json")

    def __init__(
        self, provider: str, model: str, base_url: str | None, request: Mapping[str, Any]
    ) -> None:
        kept = {k: v for k, v in request.items() if k not in _DELIVERY_KEYS}
        if provider == "google":
            from ..providers.google import vertex_mode_from_env

            # Gemini on Vertex and on the Gemini API take the same request and model name:
            # a recording of one is not the other's answer.
            provider = "google-vertex" if vertex_mode_from_env() else provider
        try:
            self._head = _key_head(provider, model, base_url)
        except (
            TypeError
        ):  # (a base URL that is not text cannot be a cache's key; keyed all the same)
            self._head = _key_head.__wrapped__(provider, model, base_url)
        #: The request without its delivery keys, as canonical JSON.
        self.request_json = _canonical(kept)

    def __call__(self, repeat_index: int) -> str:
        """The key of the request's repeat ``repeat_index``."""
        repeat = str(repeat_index) if type(repeat_index) is int else _canonical(repeat_index)
        text = f'{self._head}{repeat},"request":{self.request_json}}}'
        return hashlib.sha256(text.encode()).hexdigest()


_CANONICAL = json.JSONEncoder(
    sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str
)


def _canonical(value: Any) -> str:
    return _CANONICAL.encode(value)


@functools.lru_cache(maxsize=256, typed=True)  # (typed: True and 1 are different JSON)
def _key_head(provider: str, model: str, base_url: str | None) -> str:
    """The key's text up to the repeat index (one per model route)."""
    return (
        f'{{"base_url":{_canonical(base_url)},"model":{_canonical(model)},'
        f'"provider":{_canonical(provider)},"repeat":'
    )


def lookup(runlog: RunLog, key: str) -> dict[str, Any] | None:
    """The recorded run to serve for ``key``, or None (a log that cannot be read is a miss)."""
    try:
        return runlog.latest_ok(key)
    except ConfigurationError:
        return None


def miss_error(
    prompt_name: str,
    version: Any,
    label: str | None,
    provider: str,
    model: str,
    repeat_index: int,
) -> ReplayMissError:
    """``replay-only``'s one-line error for a run the log does not hold."""
    which = f"v{version}" if version is not None else "latest version"
    if label:
        which += f" ({label})"
    return ReplayMissError(
        f"replay-only: no recorded run of {prompt_name} {which} on {provider}/{model}, repeat "
        f"{repeat_index + 1}: record it first (PL_MAGIC_CACHE=record, or replay to call the "
        "model on a miss), or import a recording with pl-magic replay import FILE"
    )


def reply_of(row: Mapping[str, Any]) -> Reply:
    """The recorded run's reply."""
    return Reply(
        text=str(row.get("output") or ""),
        finish_reason=row.get("finish_reason"),
        input_tokens=row.get("input_tokens"),
        output_tokens=row.get("output_tokens"),
        tool_calls=row.get("reply_tool_calls"),
        raw=row.get("raw_response"),
    )


def pieces(text: str, sizes: Any) -> list[str]:
    """``text`` cut in the recorded chunk sizes; one piece when they do not add up to it
    (or none were recorded: a run recorded without streaming)."""
    if (
        isinstance(sizes, list)
        and sizes
        and all(isinstance(n, int) and n > 0 for n in sizes)
        and sum(sizes) == len(text)
    ):
        out, start = [], 0
        for n in sizes:
            out.append(text[start : start + n])
            start += n
        return out
    return [text] if text else []


def serve(run: Any, log: Callable[[Reply], None]) -> Generator[RunChunk, None, None]:
    """Serve ``run`` (a hit: ``run.served`` is the recorded row) as a stream would: a chunk per
    recorded piece, then the result; ``log`` logs the served run (before the result is
    yielded, as a live run is logged). Closing it early logs nothing: nothing was called."""
    reply = reply_of(run.served)
    run.begin()
    so_far = ""
    for piece in pieces(reply.text, run.served.get("chunk_sizes")):
        so_far += piece
        if run.ttft_s is None:
            run.ttft_s = _elapsed(run)
        yield {
            "request_id": None,
            "raw_response": None,
            "prompt_blueprint": run.blueprint(so_far, chunk=True),
        }
    yield cast("RunChunk", _served(run, reply, log))  # (the last chunk is the result)


def result(run: Any, log: Callable[[Reply], None]) -> RunResult:
    """A hit served as ``run()``'s result (no chunks)."""
    reply = reply_of(run.served)
    run.begin()
    return _served(run, reply, log)


def _served(run: Any, reply: Reply, log: Callable[[Reply], None]) -> RunResult:
    """Log the served run; its result."""
    if run.ttft_s is None:
        run.ttft_s = _elapsed(run)
    run.chunk_sizes = run.served.get("chunk_sizes")
    run.reply = reply
    log(reply)
    return {
        "request_id": run.request_id,
        "raw_response": reply.raw,
        "prompt_blueprint": run.blueprint(reply.text, reply.tool_calls),
    }


async def aserve(chunks: Generator[RunChunk, None, None]) -> AsyncGenerator[RunChunk, None]:
    """:func:`serve`'s chunks as an async iterator (nothing in them waits)."""
    for chunk in chunks:
        yield chunk


def _elapsed(run: Any) -> float:
    return time.perf_counter() - run.t0


# -- shipping recordings next to a notebook (pl-magic replay export / import) ------------------

#: What each line of an import must hold, and its type.
_REQUIRED = {"request_id": str, "cache_key": str, "output": str, "started_at": str}


def export_recordings(path: str | Path, runlog: RunLog, prompt: str | None = None) -> int:
    """Write the recorded runs a replay serves (the newest ok run of each key; only
    ``prompt``'s when given) to ``path`` as JSON Lines; how many were written."""
    rows = runlog.recordings(prompt)
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
    return len(rows)


def import_recordings(path: str | Path, runlog: RunLog) -> tuple[int, int]:
    """Add the recorded runs of a JSON Lines file (as :func:`export_recordings` writes it)
    to the log: ``(added, already there)``. Every line is checked before any is stored; a
    bad one is a one-line InvalidInputError naming its line."""
    rows: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise InvalidInputError(
                    f"{str(path)!r} line {number} is not JSON ({exc}): give a file "
                    "`pl-magic replay export` wrote"
                ) from None
            rows.append(_checked_recording(row, path, number))
    added = runlog.add_recordings(rows)
    return added, len(rows) - added


def _checked_recording(row: Any, path: str | Path, number: int) -> dict[str, Any]:
    where = f"{str(path)!r} line {number}"
    if not isinstance(row, dict):
        raise InvalidInputError(f"{where} is not a recorded run (a JSON object)")
    for key, kind in _REQUIRED.items():
        if not isinstance(row.get(key), kind):
            raise InvalidInputError(
                f"{where} has no {key}: give a file `pl-magic replay export` wrote"
            )
    if row.get("status", "ok") != "ok":
        raise InvalidInputError(f"{where} is not an ok run: only those are replayed")
    sizes = row.get("chunk_sizes")
    if sizes is not None and not (
        isinstance(sizes, list)
        and all(isinstance(n, int) and not isinstance(n, bool) for n in sizes)
    ):
        raise InvalidInputError(f"{where}: chunk_sizes must be a list of integers")
    return {**row, "status": "ok"}
