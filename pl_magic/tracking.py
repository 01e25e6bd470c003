"""Logging runs on PromptLayer (``/track-request``) without ever losing one.

Every run is first written to the local log (the DataFrames read it). With the PromptLayer
backend the row also holds the ``/track-request`` payload the official SDK would send
(never the API key: it is added when sending) and a sync state:

* ``sending``: an OK run whose payload ``run()`` is sending now, waiting at most
  ``PL_MAGIC_PROMPTLAYER_TRACK_TIMEOUT`` seconds (3), so that its result carries
  PromptLayer's ``request_id`` and ``prompt_blueprint`` as the SDK's does;
* ``sent``: PromptLayer has it (``remote_request_id`` is its id);
* ``unsent``: not yet — PromptLayer was down or slow, or the run failed or was cancelled
  (those are sent in the background; nobody waits for them);
* ``failed``: PromptLayer refused the payload (a 4xx other than 401/403/429): kept, not
  retried.

Unsent rows are sent by :meth:`Tracker.sync` (``pl_magic.sync()``) and, in a background
thread, at the start of the next run. After PromptLayer failed, runs neither wait on it nor
retry for ``PL_MAGIC_SYNC_INTERVAL`` seconds (10): a comparison run while it is down costs
no extra time. A row is claimed before it is sent, so two threads or two kernels sharing
the log never send it twice. Scores, metadata and groups given for a
run PromptLayer does not have yet are queued on its row and sent right after it.
"""

from __future__ import annotations

import atexit
import json
import threading
import time
import weakref
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from . import notices
from .config import env_float
from .errors import (
    InvalidInputError,
    PlMagicError,
    PromptLayerAuthError,
    PromptLayerError,
    PromptLayerUnavailableError,
    redact,
)
from .runlog import RunLog, RunRecord
from .store import dumps

if TYPE_CHECKING:
    from .engine import PreparedRun
    from .promptlayer_api import PromptLayerAPI
    from .providers.base import Reply

#: Seconds after which a ``sending`` claim is taken to be from a process that died.
STALE_CLAIM_S = 300.0
#: The SDK's function_name per OpenAI API (MAP_PROVIDER_TO_FUNCTION_NAME).
_OPENAI_FUNCTIONS = {
    "chat-completions": "openai.chat.completions.create",
    "completions": "openai.completions.create",
    "responses": "openai.responses.create",
}


def sync_interval_s() -> float:
    """Seconds between automatic retries while PromptLayer stays unreachable."""
    return env_float("PL_MAGIC_SYNC_INTERVAL", 10.0)


# -- the /track-request payload ---------------------------------------------------------


def function_name(provider: str, model: str, api_type: str | None) -> str:
    """The SDK's ``function_name`` for a call (PromptLayer reads the request by it)."""
    if provider == "openai":
        return _OPENAI_FUNCTIONS.get(api_type or "chat-completions", _OPENAI_FUNCTIONS["responses"])
    if provider == "anthropic" or (provider == "vertexai" and "claude" in model):
        return "anthropic.messages.create"
    # google and Gemini on Vertex: pl_magic sends generate_content's own arguments
    return "google.model.generate_content"


def error_type(error: PlMagicError | None) -> str:
    """The SDK's ``error_type`` category (``categorize_error``) for a failed run."""
    category = getattr(error, "category", None)
    status = getattr(error, "status_code", None)
    message = str(error).lower()
    if category == "rate_limit" or status == 429:
        return "PROVIDER_RATE_LIMIT"
    if status == 402:
        return "PROVIDER_QUOTA_LIMIT"
    if category == "timeout":
        return "PROVIDER_TIMEOUT"
    if status == 401 or (category == "auth" and status is None):
        return "PROVIDER_AUTH_ERROR"
    if category in (None, "unknown"):
        return "UNKNOWN_ERROR"
    return "PROVIDER_QUOTA_LIMIT" if "quota" in message else "PROVIDER_ERROR"


def wire_kwargs(request: Mapping[str, Any]) -> dict[str, Any]:
    """The request as it went on the wire: JSON only, ``extra_body`` merged in."""
    out = json.loads(dumps(request))
    extra = out.pop("extra_body", None)
    if isinstance(extra, dict):
        out.update(extra)
    return out


def _epoch(iso: str) -> float:
    try:
        return datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return time.time()


def track_payload(
    run: PreparedRun, record: RunRecord, reply: Reply | None, error: PlMagicError | None
) -> dict[str, Any]:
    """The body the official SDK posts to ``/track-request`` for this run (minus the key)."""
    kwargs = wire_kwargs(run.request)
    kwargs.setdefault("stream", run.options.stream)  # the SDK always passes it
    payload: dict[str, Any] = {
        "function_name": function_name(run.spec.provider, run.spec.name, run.spec.api_type),
        "provider_type": run.spec.provider,
        "args": [],
        "kwargs": kwargs,
        "tags": list(run.options.tags) or None,
        "request_start_time": _epoch(run.started_at) if run.started_at else time.time(),
        "request_end_time": time.time(),
        "metadata": dict(run.options.metadata) or None,
        "prompt_id": run.record.get("id"),
        "prompt_version": run.record.get("version"),
        "prompt_input_variables": record.input_variables,
        "group_id": run.options.group_id,
        "return_prompt_blueprint": True,
        "span_id": None,
        "request_response": json.loads(dumps(reply.raw)) if reply and reply.raw else {},
    }
    if record.status == "error":
        payload.update(
            status="ERROR",
            error_type=error_type(error),
            error_message=(record.error_message or "")[:1024],
            request_response={},
        )
    elif record.status == "cancelled":
        # The SDK logs nothing for an abandoned stream; PromptLayer gets it as a warning.
        payload.update(
            status="WARNING",
            error_type="UNKNOWN_ERROR",
            error_message=f"cancelled before the end of the reply ({len(record.output)} "
            "characters received)",
            request_response={},
        )
    return payload


# -- the tracker ------------------------------------------------------------------------

_TRACKERS: weakref.WeakSet[Tracker] = weakref.WeakSet()


@atexit.register
def _drain_at_exit() -> None:
    """Give background sends a moment to finish when the interpreter exits."""
    deadline = time.monotonic() + 2.0
    for tracker in list(_TRACKERS):
        tracker.wait_idle(max(0.0, deadline - time.monotonic()))


class Tracker:
    """Sends runs (and their scores and metadata) to one PromptLayer account."""

    def __init__(self, api: PromptLayerAPI, runlog: RunLog) -> None:
        self.api = api
        self.runlog = runlog
        self._sync_lock = threading.Lock()
        self._thread_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        # True while unsent rows may exist; starts True so that the first run of a session
        # picks up what an earlier one left.
        self._pending_hint = True
        self._not_before = 0.0
        self._quiet = False  # a notice went out; more failures stay quiet until a success
        self._down_until = 0.0  # PromptLayer just failed: runs do not wait on it until then
        _TRACKERS.add(self)

    # -- called by the engine ------------------------------------------------------------

    def attach(
        self,
        run: PreparedRun,
        record: RunRecord,
        reply: Reply | None,
        error: PlMagicError | None,
    ) -> None:
        """Put the run's payload on its log row before the row is written."""
        payload = track_payload(run, record, reply, error)
        record.sync_payload = redact(dumps({"account": self.api.account, "payload": payload}))
        if record.status == "ok":
            record.sync_state, record.sync_attempted_at = "sending", time.time()
        else:
            record.sync_state = "unsent"
            self._pending_hint = True

    def finish(self, local_id: str, result: dict[str, Any]) -> dict[str, Any]:
        """Send an OK run now (briefly); the result with PromptLayer's id and blueprint.

        Past the budget, or on any failure, the result comes back as it is (the local
        request id) and the run stays unsent, to be sent later.
        """
        payload = self._payload(local_id)
        if payload is None:
            return result
        if time.monotonic() < self._down_until:  # it just failed: no run waits on it now
            self.runlog.update(local_id, sync_state="unsent")
            self._pending_hint = True
            return result
        try:
            answer = self.api.track_request(payload, budget_s=self.api.settings.track_timeout_s)
        except PromptLayerError as exc:
            state = self._set_failed(local_id, exc)
            if isinstance(exc, PromptLayerUnavailableError):
                self._down_until = time.monotonic() + sync_interval_s()
            if not self._quiet:  # a comparison of 100 runs while down: one line, not 100
                self._quiet = True
                notices.warn(
                    f"PromptLayer did not log run {local_id[:8]} ({_reason(exc)}): it is kept "
                    + (
                        "in the local log, refused (see its sync_error)"
                        if state == "failed"
                        else "in the local log and sent later, as are the next ones "
                        "(pl_magic.sync() sends them now)"
                    )
                )
            return result
        self._quiet = False
        remote_id = answer["request_id"]
        self._set_sent(local_id, remote_id)
        blueprint = answer.get("prompt_blueprint")
        if isinstance(blueprint, dict):
            # pl_magic's blueprints also name the prompt, version and label that ran: kept,
            # so that code reads the same keys with either backend
            for key in ("prompt_name", "prompt_version", "release_label"):
                if key in result["prompt_blueprint"]:
                    blueprint.setdefault(key, result["prompt_blueprint"][key])
        else:  # older servers answer null
            blueprint = result["prompt_blueprint"]
        return {**result, "request_id": remote_id, "prompt_blueprint": blueprint}

    def kick(self) -> None:
        """Send what is unsent in a background thread (never waits; one thread at a time)."""
        if not self._pending_hint or time.monotonic() < max(self._not_before, self._down_until):
            return  # nothing to send, or PromptLayer failed moments ago
        with self._thread_lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._pending_hint = False  # cleared first: anything attached from now re-sets it
            self._thread = threading.Thread(
                target=self._background, name="pl_magic-sync", daemon=True
            )
            self._thread.start()

    def wait_idle(self, timeout: float | None = None) -> None:
        """Wait for the background thread (tests, and the interpreter's exit)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _background(self) -> None:
        while True:
            try:
                summary = self.sync()
            except Exception:  # a background thread must never die loudly
                summary = {"blocked": 1}
            if summary.get("blocked"):  # PromptLayer is down: try again after a while
                self._pending_hint = True
                self._not_before = time.monotonic() + sync_interval_s()
                return
            with self._thread_lock:
                if not self._pending_hint:
                    return
                self._pending_hint = False  # runs failed meanwhile: one more round

    # -- syncing -------------------------------------------------------------------------

    def sync(self) -> dict[str, int]:
        """Send every unsent run of this account, then queued scores and metadata.

        Returns counts: ``sent``, ``failed`` (refused by PromptLayer), ``unsent`` (still
        waiting: PromptLayer is unreachable or refuses the key) and ``blocked`` (1 when
        the sync stopped early because of that).
        """
        with self._sync_lock:
            sent = failed = blocked = 0
            for row in self.runlog.db.query(
                "SELECT request_id, sync_state, sync_attempted_at, sync_payload FROM runs "
                "WHERE sync_state IN ('unsent', 'sending') "
                "AND json_extract(sync_payload, '$.account') = ? AND (sync_state = 'unsent' "
                "OR COALESCE(sync_attempted_at, 0) < ?) ORDER BY started_at",
                (self.api.account, time.time() - STALE_CLAIM_S),
            ):
                if not self._claim(row):
                    continue  # another thread or kernel took it
                local_id = row["request_id"]
                payload = json.loads(row["sync_payload"])["payload"]
                try:
                    answer = self.api.track_request(payload)
                except (PromptLayerUnavailableError, PromptLayerAuthError) as exc:
                    self._set_failed(local_id, exc)
                    blocked = 1
                    break  # the next ones would fail the same way
                except PromptLayerError as exc:
                    self._set_failed(local_id, exc)
                    failed += 1
                    continue
                self._set_sent(local_id, answer["request_id"])
                sent += 1
            if not blocked:
                blocked = self._flush_all_ops()
            if not blocked:
                self._down_until = 0.0  # it answers again: runs wait for their ids again
            (unsent,) = self.runlog.db.query(
                "SELECT COUNT(*) FROM runs WHERE sync_state = 'unsent' "
                "AND json_extract(sync_payload, '$.account') = ?",
                (self.api.account,),
            )[0]
            return {"sent": sent, "failed": failed, "unsent": int(unsent), "blocked": blocked}

    def _payload(self, local_id: str) -> dict[str, Any] | None:
        rows = self.runlog.db.query(
            "SELECT sync_payload FROM runs WHERE request_id = ?", (local_id,)
        )
        if not rows or not rows[0]["sync_payload"]:
            return None
        data = json.loads(rows[0]["sync_payload"])
        return dict(data["payload"]) if data.get("account") == self.api.account else None

    def _claim(self, row: Any) -> bool:  # a sqlite3.Row
        with self.runlog.db.write() as conn:
            cur = conn.execute(
                "UPDATE runs SET sync_state = 'sending', sync_attempted_at = ? WHERE "
                "request_id = ? AND sync_state = ? AND COALESCE(sync_attempted_at, -1) = ?",
                (
                    time.time(),
                    row["request_id"],
                    row["sync_state"],
                    row["sync_attempted_at"] if row["sync_attempted_at"] is not None else -1,
                ),
            )
            return cur.rowcount == 1

    def _set_sent(self, local_id: str, remote_id: Any) -> None:
        self.runlog.update(
            local_id,
            sync_state="sent",
            remote_request_id=str(remote_id),
            sync_payload=None,
            sync_error=None,
        )
        self._flush_ops(local_id, remote_id)

    def _set_failed(self, local_id: str, exc: PromptLayerError) -> str:
        refused = not isinstance(exc, PromptLayerUnavailableError | PromptLayerAuthError)
        state = "failed" if refused and exc.status_code is not None else "unsent"
        self.runlog.update(local_id, sync_state=state, sync_error=str(exc)[:500])
        if state == "unsent":
            self._pending_hint = True
        return state

    # -- scores, metadata and groups -----------------------------------------------------

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
        self.kick()
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
        with self.runlog.db.write() as conn:
            row = conn.execute(
                "SELECT pending_ops FROM runs WHERE request_id = ?", (local_id,)
            ).fetchone()
            ops = json.loads(row["pending_ops"]) if row and row["pending_ops"] else []
            conn.execute(
                "UPDATE runs SET pending_ops = ? WHERE request_id = ?",
                (dumps([*ops, op]), local_id),
            )
        self._pending_hint = True

    def _flush_ops(self, local_id: str, remote_id: Any) -> int:
        """Send a sent run's queued ops; 1 if PromptLayer became unreachable meanwhile."""
        with self.runlog.db.write() as conn:
            row = conn.execute(
                "SELECT pending_ops FROM runs WHERE request_id = ?", (local_id,)
            ).fetchone()
            if row is None or not row["pending_ops"]:
                return 0
            ops = json.loads(row["pending_ops"])
            conn.execute("UPDATE runs SET pending_ops = NULL WHERE request_id = ?", (local_id,))
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
        rows = self.runlog.db.query(
            "SELECT request_id, remote_request_id FROM runs WHERE pending_ops IS NOT NULL "
            "AND remote_request_id IS NOT NULL"
        )
        for row in rows:
            if self._flush_ops(row["request_id"], row["remote_request_id"]):
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
    raise _unknown_id(request_id)


def _unknown_id(request_id: Any) -> InvalidInputError:
    return InvalidInputError(
        f"Unknown request id {request_id!r}: use the request_id a run returned "
        "(pl_magic.runs() lists them)"
    )


# -- client.track -----------------------------------------------------------------------


def _check_score(score: Any, name: Any) -> None:
    if isinstance(score, bool) or not isinstance(score, int) or not 0 <= score <= 100:
        raise InvalidInputError(f"score must be a whole number from 0 to 100, not {score!r}")
    if name is not None and not isinstance(name, str):
        raise InvalidInputError(f"the score name must be a string, not {name!r}")


def _check_metadata(metadata: Any) -> dict[str, str]:
    if not isinstance(metadata, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise InvalidInputError(
            "metadata must be a dict of strings, e.g. {'user': 'u1'} (as PromptLayer's)"
        )
    return dict(metadata)


class TrackManager:
    """``client.track``: score, metadata, group and prompt of a logged run.

    Takes either id of a run: the local log's or PromptLayer's. Everything is stored in
    the local log too (scores in ``scores``, metadata merged into ``metadata``), so the
    local backend keeps them and ``pl_magic.runs()`` shows them.
    """

    def __init__(self, runlog: RunLog, tracker: Tracker | None = None) -> None:
        self.runlog = runlog
        self.tracker = tracker

    def _row(self, request_id: Any) -> dict[str, Any] | None:
        if request_id is None or isinstance(request_id, bool):
            raise InvalidInputError("a request_id is required: the one a run returned")
        row = self.runlog.get(str(request_id))
        if row is None and self.tracker is None:
            raise _unknown_id(request_id)  # the local backend knows only its own runs
        return row

    def _apply(self, request_id: Any, op: dict[str, Any], store: dict[str, Any]) -> bool:
        row = self._row(request_id)
        if row is not None:
            self._store(str(row["request_id"]), store)
        if self.tracker is None:
            return True
        return self.tracker.apply(row, request_id, op)

    def _store(self, local_id: str, store: Mapping[str, Any]) -> None:
        with self.runlog.db.write() as conn:
            row = conn.execute(
                "SELECT scores, metadata FROM runs WHERE request_id = ?", (local_id,)
            ).fetchone()
            if "score" in store:
                scores = json.loads(row["scores"]) if row["scores"] else {}
                scores[store["name"] or "default"] = store["score"]
                conn.execute(
                    "UPDATE runs SET scores = ? WHERE request_id = ?", (dumps(scores), local_id)
                )
            if "metadata" in store:
                merged = {**json.loads(row["metadata"] or "{}"), **store["metadata"]}
                conn.execute(
                    "UPDATE runs SET metadata = ? WHERE request_id = ?", (dumps(merged), local_id)
                )
            if "group_id" in store:
                conn.execute(
                    "UPDATE runs SET group_id = ? WHERE request_id = ?",
                    (store["group_id"], local_id),
                )

    def score(self, request_id: Any, score: int, score_name: str | None = None) -> bool:
        """Score a run from 0 to 100 (``/library-track-score``), optionally named."""
        _check_score(score, score_name)
        op = {"op": "score", "score": score, "name": score_name}
        return self._apply(request_id, op, {"score": score, "name": score_name})

    def metadata(self, request_id: Any, metadata: Mapping[str, str]) -> bool:
        """Add string metadata to a run (``/library-track-metadata``)."""
        values = _check_metadata(metadata)
        return self._apply(request_id, {"op": "metadata", "metadata": values}, {"metadata": values})

    def group(self, request_id: Any, group_id: int) -> bool:
        """Put a run into a group (``/track-group``)."""
        if isinstance(group_id, bool) or not isinstance(group_id, int):
            raise InvalidInputError("group_id must be an integer from pl_magic.create_group()")
        op = {"op": "group", "group_id": group_id}
        return self._apply(request_id, op, {"group_id": group_id})

    def prompt(
        self,
        request_id: Any,
        prompt_name: str,
        prompt_input_variables: Mapping[str, Any],
        version: int | None = None,
        label: str | None = None,
    ) -> bool:
        """Tie a run to a registry prompt (``/library-track-prompt``).

        Runs made by pl_magic are tied to their prompt already; this is for parity with
        the SDK, for requests logged elsewhere.
        """
        if not isinstance(prompt_input_variables, Mapping):
            raise InvalidInputError("prompt_input_variables must be a dict of input variables")
        op = {
            "op": "prompt",
            "prompt_name": prompt_name,
            "input_variables": dict(prompt_input_variables),
            "version": version,
            "label": label,
        }
        return self._apply(request_id, op, {})
