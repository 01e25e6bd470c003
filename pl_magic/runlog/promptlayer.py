"""Logging runs on PromptLayer (``/track-request``) without ever losing one.

Every run is first written to the local log (the DataFrames read it). With the PromptLayer
backend the row also holds the ``/track-request`` payload the official SDK would send
(never the API key: it is added when sending; its metadata carries the local request id as
``pl_magic_request_id``) and a sync state:

* ``sending``: a run being sent now. An OK run waits at most
  ``PL_MAGIC_PROMPTLAYER_TRACK_TIMEOUT`` seconds (3), so that its result carries
  PromptLayer's ``request_id`` and ``prompt_blueprint`` as the SDK's does; a failed run is
  sent within the same budget before its error is raised, as the SDK does. Past the budget
  the send carries on in its thread and its late answer is recorded: never sent twice;
* ``sent``: PromptLayer has it (``remote_request_id`` is its id);
* ``unsent``: not yet — PromptLayer was down, refused the key, or never answered; or the
  run was cancelled (sent in the background: the SDK logs nothing for it);
* ``failed``: PromptLayer refused the payload (a 4xx other than 401/403/429): kept, not
  retried.

Unsent rows are sent by :meth:`PromptLayerSink.sync` (``pl_magic.sync()``) and by a daemon thread
that retries while the kernel lives, every ``PL_MAGIC_SYNC_INTERVAL`` seconds (10) at first,
doubling up to 5 minutes while PromptLayer stays down; a run PromptLayer logs wakes it, so
the backlog goes at once. After PromptLayer failed, runs do not wait on it for an interval:
a comparison run while it is down costs no extra time. A send that went out but got no
answer (a read timeout, a dropped connection) is not retried blindly: before it is sent
again, PromptLayer's request search (``POST /api/public/v2/requests/search``) is asked for
its ``pl_magic_request_id``, and a hit is recorded as sent (after a timeout, the search
waits twice the per-call timeout, as PromptLayer may still be at work on it). A row is
claimed before it is sent, so two threads or two kernels sharing the log never send it
twice. Scores, metadata and groups given for a run PromptLayer does not have yet are queued
on its row and sent right after it. The scores of scorers (``run_many(scorers=...)``,
``pl_magic.score(df, ...)``) are always queued so (:meth:`PromptLayerSink.score`): a
comparison never waits on ``/library-track-score``, the background thread sends them, and
while PromptLayer is down they stay queued with the runs.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import sqlite3
import threading
import time
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast, overload

from ..core import notices
from ..core.config import env_float
from ..core.errors import (
    PlMagicError,
    PromptLayerAuthError,
    PromptLayerError,
    PromptLayerUnavailableError,
    redact_json,
)
from ..core.promptlayer_api import DeliveryUnknownError
from ..core.store import dumps
from ..core.types import Blueprint, RunResult
from .base import ProviderCall, RunRecord, unknown_request_id
from .promptlayer_payload import track_payload
from .sqlite import RunLog

if TYPE_CHECKING:
    from ..core.promptlayer_api import PromptLayerAPI

#: Seconds after which a ``sending`` claim is taken to be from a process that died.
STALE_CLAIM_S = 300.0
#: The ``/track-request`` metadata key that carries the run's local request id: a send
#: that got no answer is looked up by it before the run is sent again.
METADATA_KEY = "pl_magic_request_id"


def sync_interval_s() -> float:
    """Seconds between automatic retries while PromptLayer stays unreachable."""
    return env_float("PL_MAGIC_SYNC_INTERVAL", 10.0)


# -- the sinks --------------------------------------------------------------------------

_SINKS: weakref.WeakSet[PromptLayerSink] = weakref.WeakSet()
#: The longest wait between two automatic retries while PromptLayer stays down.
MAX_RETRY_INTERVAL_S = 300.0


def stop_all(wait_s: float = 2.0) -> None:
    """End every sink's background retries, waiting up to ``wait_s`` for sends under way
    (the interpreter's exit; tests, so that one test's retries never reach the next)."""
    deadline = time.monotonic() + wait_s
    for sink in list(_SINKS):
        sink.stop()
    for sink in list(_SINKS):
        sink.wait_idle(max(0.0, deadline - time.monotonic()))


atexit.register(stop_all)


class _Send:
    """One ``/track-request`` in a thread of its own, so that waiting for it can stop at the
    budget while the request itself carries on: a late answer is recorded, not resent."""

    def __init__(self, sink: PromptLayerSink, local_id: str, data: dict[str, Any]) -> None:
        self.sink = sink
        self.local_id = local_id
        self.data = data
        self.answer: dict[str, Any] | None = None
        self.error: PromptLayerError | None = None
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._abandoned = False
        sink._inflight.add(self)
        threading.Thread(target=self._work, name="pl_magic-track", daemon=True).start()

    def _work(self) -> None:
        try:
            self.answer = self.sink.api.track_request(self.data["payload"], retry_unsure=False)
        except PromptLayerError as exc:
            self.error = exc
        except Exception as exc:  # a thread must not die loudly; the run stays unsent
            self.error = PromptLayerUnavailableError(
                f"PromptLayer could not be reached logging a run ({type(exc).__name__})"
            )
        with self._lock:
            self._done.set()
            late = self._abandoned
        try:
            if late:
                self.sink._settle(self)
        finally:
            self.sink._inflight.discard(self)

    def wait(self, budget_s: float) -> bool:
        """True if the send ended within ``budget_s``; else the send settles itself later."""
        self._done.wait(budget_s)
        with self._lock:
            if self._done.is_set():
                return True
            self._abandoned = True
            return False


class PromptLayerSink:
    """Sends runs (and their scores and metadata) to one PromptLayer account."""

    def __init__(self, api: PromptLayerAPI, runlog: RunLog) -> None:
        self.api = api
        self.runlog = runlog
        self._sync_lock = threading.Lock()
        self._thread_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._running = False  # the thread has not decided to end (set under _thread_lock)
        self._wake = threading.Event()  # ends the timer's wait (PromptLayer answers again)
        self._stopping = threading.Event()
        self._idle = threading.Event()  # set while the timer thread waits or has ended
        self._idle.set()
        self._inflight: set[_Send] = set()
        # True while unsent rows may exist; starts True so that the first run of a session
        # picks up what an earlier one left.
        self._pending_hint = True
        self._quiet = False  # a notice went out; more failures stay quiet until a success
        self._down_until = 0.0  # PromptLayer just failed: runs do not wait on it until then
        _SINKS.add(self)

    # -- called by the engine ------------------------------------------------------------

    def before_run(self) -> None:
        """A run starts: runs left unsent earlier go now, in the background."""
        self.send_unsent_soon()

    def record(
        self,
        record: RunRecord,
        call: ProviderCall,
        error: PlMagicError | None,
        later: bool = False,
    ) -> None:
        """Put the run's payload on its log row before the row is written.

        The payload's metadata carries the local request id (``pl_magic_request_id``), so
        that a run whose send went unanswered can be looked up before it is sent again.
        ``later`` (a batch job's results): the row is ``unsent``, sent in the background.
        """
        payload = track_payload(record, call, error)
        payload["metadata"] = {**(payload.get("metadata") or {}), METADATA_KEY: record.request_id}
        record.sync_payload = redact_json(dumps({"account": self.api.account, "payload": payload}))
        if record.status in ("ok", "error") and not later:  # sent by finish() / send_failure()
            record.sync_state, record.sync_attempted_at = "sending", time.time()
        else:  # cancelled (the SDK logs nothing) or later: PromptLayer gets it in the background
            record.sync_state = "unsent"
            self._pending_hint = True

    @overload
    def finalize(self, record: RunRecord) -> None: ...

    @overload
    def finalize(self, record: RunRecord, result: RunResult) -> RunResult: ...

    def finalize(self, record: RunRecord, result: RunResult | None = None) -> RunResult | None:
        """The run is in the local log: an OK run is sent now (see :meth:`finish`) and its
        result returned with PromptLayer's id; a failed one is sent before its error is
        raised; a cancelled one goes in the background."""
        if record.status == "ok" and result is not None:
            return self.finish(record, result)
        if record.status == "error":
            self.send_failure(record)
        else:
            self.send_unsent_soon()
        return result

    def finish(self, record: RunRecord, result: RunResult) -> RunResult:
        """Send an OK run now (briefly); the result with PromptLayer's id and blueprint.

        Past the budget, or on any failure, the result comes back as it is (the local
        request id) and the run stays unsent, to be sent later; a send still under way at
        the budget carries on, and its late answer is recorded (no second send).
        """
        answer = self._send_now(record)
        if answer is None:
            return result
        remote_id = answer["request_id"]
        blueprint = answer.get("prompt_blueprint")
        if isinstance(blueprint, dict):
            # pl_magic's blueprints also name the prompt, version and label that ran: kept,
            # so that code reads the same keys with either backend
            for key in ("prompt_name", "prompt_version", "release_label"):
                if key in result["prompt_blueprint"]:
                    blueprint.setdefault(key, result["prompt_blueprint"][key])
        else:  # older servers answer null
            blueprint = result["prompt_blueprint"]
        # PromptLayer's blueprint is handed on as it answered it, as its SDK does
        return {**result, "request_id": remote_id, "prompt_blueprint": cast("Blueprint", blueprint)}

    def send_failure(self, record: RunRecord) -> None:
        """Send a failed run now, within the budget, before its error is raised (as the SDK
        does: code that looks at PromptLayer right after catching finds it logged)."""
        self._send_now(record)

    def _send_now(self, record: RunRecord) -> dict[str, Any] | None:
        """Send a run being finished, waiting at most the tracking budget; its answer."""
        if record.sync_state != "sending" or not record.sync_payload:
            return None
        local_id = record.request_id
        data = json.loads(record.sync_payload)
        if time.monotonic() < self._down_until:  # it just failed: no run waits on it now
            self.runlog.update(local_id, sync_state="unsent")
            self._left_unsent()
            return None
        send = _Send(self, local_id, data)
        budget = self.api.settings.track_timeout_s
        if not send.wait(budget):
            # Slow: this run's answer is recorded when it comes; the next runs do not wait.
            self._down_until = time.monotonic() + sync_interval_s()
            self._notice(
                local_id,
                f"no answer within {budget:g} s",
                "in the local log, and logged on PromptLayer when it answers",
            )
            return None
        return self._settle(send)

    def _settle(self, send: _Send) -> dict[str, Any] | None:
        """Record how a send ended: the answer (PromptLayer has the run) or None."""
        if send.error is not None:
            state = self._set_failed(send.local_id, send.error, send.data)
            if isinstance(send.error, PromptLayerUnavailableError):
                self._down_until = time.monotonic() + sync_interval_s()
            if state == "unsent":
                self._left_unsent()
            self._notice(
                send.local_id,
                _reason(send.error),
                "in the local log, refused (see its sync_error)"
                if state == "failed"
                else "in the local log and sent when PromptLayer answers again, as are the "
                "next ones (pl_magic.sync() sends them now)",
            )
            return None
        answer = send.answer or {}
        self._quiet = False
        self._set_sent(send.local_id, answer["request_id"])
        self._answered()
        return answer

    def _notice(self, local_id: str, why: str, where: str) -> None:
        if not self._quiet:  # a comparison of 100 runs while down: one line, not 100
            self._quiet = True
            notices.warn(f"PromptLayer did not log run {local_id[:8]} ({why}): it is kept {where}")

    def _answered(self) -> None:
        """PromptLayer logged a run: what was left unsent goes now, not after a back-off."""
        self._down_until = 0.0
        self.send_unsent_soon(now=True)

    def _left_unsent(self) -> None:
        self._pending_hint = True
        self.send_unsent_soon(now=False, start_waiting=True)

    # -- the background thread -----------------------------------------------------------

    def send_unsent_soon(self, now: bool = False, start_waiting: bool = False) -> None:
        """Send what is unsent in a background thread that retries, with back-off, while
        PromptLayer stays down (never waits; one thread per sink).

        ``now``: if the thread is waiting out a back-off, it tries at once.
        ``start_waiting``: a new thread waits one interval first (PromptLayer just failed).
        """
        if self._stopping.is_set():
            return
        with self._thread_lock:
            if self._running:  # (it runs because something is unsent)
                if now:
                    self._idle.clear()
                    self._wake.set()
                return
            if not self._pending_hint:
                return
            if not start_waiting and time.monotonic() < self._down_until:
                start_waiting = True  # it failed moments ago: first wait, then try
            self._pending_hint = False  # cleared first: anything attached from now re-sets it
            self._idle.clear()
            self._running = True
            self._thread = threading.Thread(
                target=self._background, args=(start_waiting,), name="pl_magic-sync", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """End the background thread (the interpreter is exiting)."""
        self._stopping.set()
        self._wake.set()

    def wait_idle(self, timeout: float | None = None) -> None:
        """Wait until no send is under way: the background thread waits out a back-off or
        has ended, and no run's send is still waiting for its answer (tests, and exit)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            busy = self._inflight or not self._idle.is_set()
            if not busy:
                return
            if deadline is not None and time.monotonic() >= deadline:
                return
            time.sleep(0.01)

    def _pause(self, seconds: float) -> None:
        self._idle.set()
        self._wake.wait(seconds)
        self._wake.clear()
        self._idle.clear()

    def _background(self, start_waiting: bool) -> None:
        delay = max(0.05, sync_interval_s())
        try:
            if start_waiting:
                self._pause(delay)
            while not self._stopping.is_set():
                try:
                    summary = self._sync_round()
                except Exception:  # a background thread must never die loudly
                    summary = {"blocked": 1, "waiting": 0}
                if summary.get("blocked"):  # PromptLayer is down: try again after a while
                    self._pending_hint = True
                    self._pause(delay)
                    delay = min(delay * 2, max(MAX_RETRY_INTERVAL_S, sync_interval_s()))
                    continue
                delay = max(0.05, sync_interval_s())
                if summary.get("waiting"):  # sends that may have landed: look again soon
                    self._pause(min(delay, 1.0))
                    continue
                with self._thread_lock:
                    if not self._pending_hint:
                        self._running = False
                        return
                    self._pending_hint = False  # runs failed meanwhile: one more round
        finally:
            with self._thread_lock:
                if self._thread is threading.current_thread():  # (not a newer thread's state)
                    self._running = False
                    self._idle.set()

    # -- syncing -------------------------------------------------------------------------

    def sync(self) -> dict[str, int]:
        """Send every unsent run of this account, then queued scores and metadata.

        Returns counts: ``sent``, ``failed`` (refused by PromptLayer), ``unsent`` (still
        waiting: PromptLayer is unreachable or refuses the key) and ``blocked`` (1 when
        the sync stopped early because of that). A run whose earlier send got no answer
        is first looked up by its ``pl_magic_request_id`` (PromptLayer's request search):
        found, it is not sent again.
        """
        summary = self._sync_round()
        summary.pop("waiting")
        return summary

    def _sync_round(self) -> dict[str, int]:
        """:meth:`sync`, also counting ``waiting``: runs whose unanswered send is looked up
        a little later (PromptLayer may still be working on it)."""
        with self._sync_lock:
            sent = failed = blocked = waiting = 0
            self.runlog.flush_kept()  # rows kept in memory (the file was busy) first
            for row in self.runlog.unsent(self.api.account, time.time() - STALE_CLAIM_S):
                data = json.loads(row["sync_payload"])
                unsure_since = data.get("unsure_since")
                if unsure_since is not None and time.time() < unsure_since + self._recheck_s():
                    waiting += 1
                    continue
                if not self.runlog.claim_unsent(row):
                    continue  # another thread or kernel took it
                local_id = row["request_id"]
                try:
                    if unsure_since is not None:
                        found = self.api.find_tracked(METADATA_KEY, local_id)
                        if found is not None:  # the unanswered send had landed
                            self._set_sent(local_id, found)
                            sent += 1
                            continue
                    answer = self.api.track_request(data["payload"], retry_unsure=False)
                except (PromptLayerUnavailableError, PromptLayerAuthError) as exc:
                    self._set_failed(local_id, exc, data)
                    blocked = 1
                    break  # the next ones would fail the same way
                except PromptLayerError as exc:
                    self._set_failed(local_id, exc, data)
                    failed += 1
                    continue
                self._set_sent(local_id, answer["request_id"])
                sent += 1
            if not blocked:
                blocked = self._flush_all_ops()
            if not blocked:
                self._down_until = 0.0  # it answers again: runs wait for their ids again
            return {
                "sent": sent,
                "failed": failed,
                "unsent": self.runlog.count_unsent(self.api.account),
                "blocked": blocked,
                "waiting": waiting,
            }

    def _recheck_s(self) -> float:
        """How long after an unanswered send PromptLayer may still log it: twice the
        per-call timeout (at least 2 s), after which a search that misses it is final."""
        return max(2.0, 2 * self.api.settings.timeout_s)

    def _set_sent(self, local_id: str, remote_id: Any) -> None:
        if self.runlog.mark_sent(local_id, remote_id):
            # (if the file is busy, the ops stay queued on the row; the next sync sends them)
            with contextlib.suppress(sqlite3.Error, PlMagicError):
                self._flush_ops(local_id, remote_id)

    def _set_failed(self, local_id: str, exc: PromptLayerError, data: dict[str, Any]) -> str:
        refused = not isinstance(exc, PromptLayerUnavailableError | PromptLayerAuthError)
        state = "failed" if refused and exc.status_code is not None else "unsent"
        values: dict[str, Any] = {"sync_state": state, "sync_error": str(exc)[:500]}
        if isinstance(exc, DeliveryUnknownError):
            # PromptLayer may have it: looked up (after a while if it may still be at work)
            # before it is sent again
            since = time.time() if exc.timed_out else 0.0
            values["sync_payload"] = dumps({**data, "unsure_since": since})
        self.runlog.update(local_id, **values)
        if state == "unsent":
            self._pending_hint = True
        return state

    # -- scores, metadata and groups -----------------------------------------------------

    def score(self, request_id: str, name: str, score: int) -> None:
        """Queue a scorer's score (0–100) of a logged run for ``/library-track-score``.

        Queued on the run's row, never sent from the caller's thread (a comparison scores
        hundreds of runs): the background thread sends it under PromptLayer's id of the
        run, once PromptLayer has the run, and retries it while PromptLayer is down, as
        the run's own send. A run logged with the local backend is not sent.
        """
        rows = self.runlog.by_ids([request_id], ("backend",))
        if not rows or rows[0]["backend"] != "promptlayer":
            return
        op = {"op": "score", "score": score, "name": name, "account": self.api.account}
        self._queue_op(str(request_id), op)
        self.send_unsent_soon(now=True)

    def apply(self, row: Mapping[str, Any] | None, request_id: Any, op: dict[str, Any]) -> bool:
        """Send ``op`` for a run: now if PromptLayer has it, else queued on its row."""
        if row is None:
            self._send_op(_remote_id(request_id), op)  # an id from elsewhere: as the SDK
            return True
        if row.get("backend") != "promptlayer":
            return True  # run with the local backend: stored locally only
        remote = row.get("remote_request_id")
        what = f"the {op['op']} of run {str(row['request_id'])[:8]}"
        if remote:
            try:
                self._send_op(int(remote), op)
                return True
            except PromptLayerUnavailableError as exc:
                notices.warn(f"PromptLayer unreachable ({_reason(exc)}); {what} is queued")
        else:
            notices.warn(f"{what} is queued: the run is not on PromptLayer yet (pl_magic.sync())")
        self._queue_op(str(row["request_id"]), {**op, "account": self.api.account})
        self.send_unsent_soon()
        return True

    def _send_op(self, remote_id: int, op: Mapping[str, Any]) -> None:
        kind = op["op"]
        if kind == "score":
            self.api.track_score(remote_id, op["score"], op.get("name"))
        elif kind == "metadata":
            self.api.track_metadata(remote_id, op["metadata"])
        elif kind == "group":
            self.api.track_group(remote_id, op["group_id"])
        elif kind == "prompt":
            self.api.track_prompt(
                remote_id, op["prompt_name"], op["input_variables"], op["version"], op["label"]
            )

    def _queue_op(self, local_id: str, op: dict[str, Any]) -> None:
        self.runlog.queue_op(local_id, op)
        self._pending_hint = True

    def _flush_ops(self, local_id: str, remote_id: Any) -> int:
        """Send a sent run's queued ops; 1 if PromptLayer became unreachable meanwhile."""
        ops = self.runlog.take_ops(local_id)
        if not ops:
            return 0
        left, blocked = [], 0
        for op in ops:
            if op.get("account") != self.api.account or blocked:
                left.append(op)
                continue
            try:
                self._send_op(int(remote_id), op)
            except PromptLayerUnavailableError:
                left.append(op)
                blocked = 1
            except PromptLayerError as exc:
                notices.warn(f"PromptLayer refused the {op['op']} of run {local_id[:8]}: {exc}")
        if left:
            for op in left:
                self._queue_op(local_id, op)
        return blocked

    def _flush_all_ops(self) -> int:
        for local_id, remote_id in self.runlog.with_queued_ops():
            if self._flush_ops(local_id, remote_id):
                return 1
        return 0


def _reason(exc: PromptLayerError) -> str:
    if exc.status_code is not None:
        return f"HTTP {exc.status_code}"
    return "timed out" if "timed out" in str(exc) else "unreachable"


def _remote_id(request_id: Any) -> int:
    if isinstance(request_id, int) and not isinstance(request_id, bool):
        return request_id
    if isinstance(request_id, str) and request_id.strip().isdigit():
        return int(request_id)
    raise unknown_request_id(request_id)
