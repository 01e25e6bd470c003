"""Comparisons: versions × models × repeats × input rows, run concurrently.

Worker threads run the engine (streaming, so they can stop between chunks) and hand
their progress to the calling thread through a queue; only the calling thread (the
kernel's main thread in a notebook) touches the display. The calling thread hands each
provider at most ``concurrency`` runs at a time (one lane per provider, each with its own
workers), so one slow or rate-limited provider never starves the others. Within that, every
call waits its turn in its provider's limiter (:mod:`pl_magic.engine.limiter`), shared with
every other run of the process, which backs off on 429s and grows again as calls succeed.
The kernel's interrupt stops every run at its next chunk: those runs are logged as
cancelled, runs not yet started (or still waiting for their turn) are skipped, and a run
still rendering its template stops there (the render checks the batch's cancel event at
every step). With ``fail_fast`` the first run that ends in an error a retry would not cure
stops the comparison: the runs not yet started are skipped (status ``skipped``, error
``fail_fast``) and one line names the run and its error.

A batch nobody watches (``run_many``) does not stream unless asked to (``stream=True``):
parsing a stream's chunks costs the SDK more CPU than the whole non-streamed answer,
and with many runs in flight that CPU, not the provider, set the pace. Without streaming
an interrupt lets the runs in flight finish (they are logged as they end) and skips the
rest.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..core import notices, render_budget
from ..core.blueprint import reply_text
from ..core.errors import (
    InvalidInputError,
    PlMagicError,
    UnknownProviderError,
    retryable,
    shown,
)
from ..core.types import RunChunk, RunResult
from ..providers import provider_for_model, supported
from ..runlog.scores import ScoreRow
from . import limiter, replay
from .engine import Engine, PreparedRun, RunOptions
from .scoring import Scorer, score_runs


def provider_and_model(value: str) -> tuple[str, str]:
    """``provider/model`` or a bare model name whose provider follows from its prefix."""
    value = value.strip()
    head, sep, tail = value.partition("/")
    if sep and head in supported():
        return head, tail
    if sep and head not in supported():
        raise UnknownProviderError(head, supported())
    provider = provider_for_model(value)
    if provider is not None:
        return provider, value
    raise InvalidInputError(
        f"Cannot tell the provider of model {value!r}: write it as provider/model, "
        f"e.g. openai/{value}"
    )


def split_list(value: str | Sequence[Any] | None) -> list[Any]:
    """``"a,b"`` or a list → a list of items (stripped strings stay strings); one other
    value → a list of it."""
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def _check_list(name: str, value: Any, kinds: tuple[type, ...], example: str) -> None:
    """``value`` is None, a string, one of ``kinds`` or a list/tuple of strings and ``kinds``."""
    items = value if isinstance(value, list | tuple) else [value]
    for item in items if value is not None else ():
        if isinstance(item, bool) or not isinstance(item, (str, *kinds)):
            what = "an item" if item is not value else "it"
            raise InvalidInputError(
                f"{name} must be a list or a comma-separated string, e.g. {example}; "
                f"{what} is {shown(item, 40)}, a {type(item).__name__}"
            )


def parse_version(value: Any) -> tuple[int | None, str | None]:
    """A version number or a release label."""
    if isinstance(value, bool):
        raise InvalidInputError(f"Invalid version {value!r}: give a number or a label")
    if isinstance(value, int):
        return value, None
    text = str(value).strip()
    if text.isdigit():
        return int(text), None
    if not text:
        raise InvalidInputError("An empty version was given: write e.g. 2,3,prod")
    return None, text


def input_rows(inputs: Any) -> list[dict[str, Any]]:
    """A DataFrame or a list of dicts → one dict of input variables per row."""
    if inputs is None:
        return []
    to_dict = getattr(inputs, "to_dict", None)
    if callable(to_dict) and hasattr(inputs, "columns"):
        rows = to_dict(orient="records")
    elif isinstance(inputs, Mapping):
        rows = [inputs]
    elif isinstance(inputs, Iterable) and not isinstance(inputs, str | bytes):
        rows = list(inputs)
    else:
        rows = None
    if rows is None or not all(isinstance(r, Mapping) for r in rows):
        raise InvalidInputError(
            "inputs must be a DataFrame or a list of dicts of input variables (one per run)"
        )
    return [dict(r) for r in rows]


@dataclass
class PlannedRun:
    """One cell of the comparison."""

    index: int
    version: int | None
    label: str | None
    provider: str | None
    model: str | None
    repeat: int
    input_index: int | None
    input_variables: dict[str, Any]

    @property
    def version_name(self) -> str:
        """How the version was asked for (``3`` or ``prod``), or ``latest``."""
        if self.label:
            return self.label
        return str(self.version) if self.version is not None else "latest"

    @property
    def model_name(self) -> str:
        """``provider/model`` or ``template`` (the template's own)."""
        return f"{self.provider}/{self.model}" if self.provider else "template"


#: The most runs one comparison may plan.
MAX_RUNS = 100_000


def plan(
    versions: Any = None,
    models: Any = None,
    repeat: int = 1,
    inputs: Any = None,
    input_variables: Mapping[str, Any] | None = None,
) -> list[PlannedRun]:
    """Every combination, in a stable order (input row, version, model, repeat).

    Arguments of the wrong type are one-line errors naming the argument and the type.
    """
    if not isinstance(repeat, int) or isinstance(repeat, bool) or repeat < 1:
        raise InvalidInputError(f"repeat must be a whole number ≥ 1, not {shown(repeat, 40)}")
    _check_list("versions", versions, (int,), "[2, 3, 'prod'] or '2,3,prod'")
    _check_list("models", models, (), "['gpt-4o-mini', 'anthropic/claude-sonnet-4-5']")
    if input_variables is not None and not isinstance(input_variables, Mapping):
        raise InvalidInputError(
            f"input_variables must be a dict, not {type(input_variables).__name__}: pass e.g. "
            "{'name': 'Ada'}"
        )
    version_list = [parse_version(v) for v in split_list(versions)] or [(None, None)]
    model_list: list[tuple[str | None, str | None]] = [
        provider_and_model(m) for m in split_list(models)
    ] or [(None, None)]
    shared = dict(input_variables or {})
    rows: list[tuple[int | None, dict[str, Any]]] = [
        (i, {**shared, **row}) for i, row in enumerate(input_rows(inputs))
    ] or [(None, shared)]
    total = len(rows) * len(version_list) * len(model_list) * repeat
    if total > MAX_RUNS:  # a typo (--repeat 1000000) must not fill the memory with plans
        raise InvalidInputError(
            f"That comparison is {total:,} runs, more than {MAX_RUNS:,}: lower --repeat or "
            "split it into smaller comparisons"
        )
    out = []
    combos = itertools.product(rows, version_list, model_list, range(repeat))
    for n, ((row_index, values), (version, label), (provider, model), rep) in enumerate(combos):
        out.append(PlannedRun(n, version, label, provider, model, rep, row_index, values))
    return out


#: A run waiting in its provider's lane, prepared already when the replay cache looked at it.
_Queued = tuple[PlannedRun, PreparedRun | None]


def _lane(planned: PlannedRun) -> str:
    """The provider a run waits in line for (``template``: the template's own)."""
    return planned.provider or "template"


def _check_concurrency(concurrency: Any) -> None:
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise InvalidInputError(
            f"concurrency must be a whole number ≥ 1 (runs at once per provider), not "
            f"{shown(concurrency, 40)}"
        )


def check_runs(batch: Batch) -> None:
    """Check every planned run's arguments as ``run()`` does, before any starts (one check
    per input row: the versions and models were checked by :func:`plan`)."""
    _check_concurrency(batch.concurrency)
    checked: set[int | None] = set()
    for planned in batch.runs:
        if planned.input_index in checked:
            continue
        checked.add(planned.input_index)
        RunOptions.build(
            batch.prompt_name, input_variables=planned.input_variables, **batch.run_kwargs
        )


#: How often the calling thread refreshes a live view while it serves replayed runs itself.
_SHOW_EVERY_S = 0.05


class BudgetSkipped(PlMagicError):
    """Why a run of a comparison was not started: the budget was spent."""

    category = "budget"


class FailFastSkipped(PlMagicError):
    """Why a run of a comparison was not started: ``fail_fast`` stopped the comparison at
    an earlier run's error."""

    category = "fail_fast"


@dataclass
class Progress:
    """What the calling thread knows of one planned run."""

    run: PlannedRun
    text: str = ""
    status: str = "pending"
    #: The run's id: pl_magic's local one, or PromptLayer's once the run is logged there.
    request_id: str | int | None = None
    error: PlMagicError | None = None
    result: RunResult | None = None


@dataclass
class Batch:
    """A comparison in progress."""

    engine: Engine
    prompt_name: str
    runs: list[PlannedRun]
    run_kwargs: dict[str, Any] = field(default_factory=dict)
    concurrency: int = 8
    cancel: threading.Event = field(default_factory=threading.Event)
    #: Stream each run (a live view shows the text; an interrupt stops runs mid-reply).
    stream: bool = True
    #: Scorers applied to each run that ends ok (see :mod:`pl_magic.engine.scoring`).
    scorers: Sequence[Scorer] = ()
    #: The input column holding a row's expected answer.
    expected: str = "expected"
    #: USD: once the logged cost of finished runs reaches it, runs not yet started are
    #: skipped (status ``skipped``, error ``budget``). None: no limit.
    budget: float | None = None
    #: Add up the logged cost of finished runs in :attr:`spent` (always on with a budget).
    track_spend: bool = False
    #: USD spent so far by this batch's finished runs (their logged ``cost_usd``).
    spent: float = 0.0
    #: Stop at the first run that ends in an error a retry would not cure (see
    #: :func:`pl_magic.core.errors.retryable`): the runs not yet started are skipped.
    fail_fast: bool = False
    #: The run whose error stopped the comparison (``fail_fast``), once one did.
    failed: Progress | None = None
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _spend_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _over_budget(self) -> bool:
        with self._spend_lock:
            # budget=0 runs only what is free (the local model): nothing spent, nothing reached
            return self.budget is not None and self.spent > 0 and self.spent >= self.budget

    def _add_cost(self, request_id: Any) -> None:
        """Add a finished run's logged cost to :attr:`spent` (in the worker, before its slot
        is released, so that the next run sees it)."""
        if request_id is None or not (self.track_spend or self.budget is not None):
            return
        try:
            rows = self.engine.runlog.by_ids([request_id], ("cost_usd",))
        except Exception:  # a log that cannot be read must not turn the run into an error
            return
        cost = rows[0]["cost_usd"] if rows else None
        if cost:
            with self._spend_lock:
                self.spent += float(cost)

    def options_of(self, planned: PlannedRun, **extra: Any) -> RunOptions:
        """The checked options of a planned run: its version, label, provider, model and
        inputs with the comparison's keywords (``extra``: more of ``run()``'s, over them)."""
        return RunOptions.build(
            self.prompt_name,
            prompt_version=planned.version,
            prompt_release_label=planned.label,
            input_variables=planned.input_variables,
            provider=planned.provider,
            model=planned.model,
            **{**self.run_kwargs, **extra},
        )

    def _options(self, planned: PlannedRun) -> RunOptions:
        return self.options_of(planned, repeat_index=planned.repeat, stream=self.stream)

    def _work(
        self,
        planned: PlannedRun,
        events: queue.Queue[tuple[Any, ...]],
        prepared: PreparedRun | None = None,
    ) -> None:
        scope = limiter.comparison(self.concurrency, self.cancel, self._stop)
        with scope, render_budget.cancel_on(self.cancel):
            if self.cancel.is_set():
                events.put(("skipped", planned.index))
                return
            if self._stop.is_set():
                events.put(("stopped", planned.index))
                return
            if self._over_budget():
                events.put(("budget", planned.index))
                return
            events.put(("started", planned.index))
            try:
                if prepared is None:
                    prepared = self.engine.prepare(self._options(planned))
                if not self.stream:
                    result = self.engine.run_prepared(prepared)
                    self._add_cost(result["request_id"])
                    events.put(("ok", planned.index, result))
                    return
                stream = self.engine.stream_prepared(prepared)
                final: RunChunk | None = None
                for chunk in stream:
                    if self.cancel.is_set():
                        stream.close()  # logs it as cancelled
                        events.put(("cancelled", planned.index, None))
                        return
                    text = reply_text(chunk["prompt_blueprint"])
                    events.put(("text", planned.index, text))
                    final = chunk
                assert final is not None and final["request_id"]  # (the last one: the result)
                self._add_cost(final["request_id"])
                events.put(("ok", planned.index, final))
            except KeyboardInterrupt:  # the batch's interrupt stopped this run's render
                events.put(("cancelled", planned.index, None))
            except limiter.NotStarted:  # stopped while waiting for its turn: nothing sent
                events.put(("skipped" if self.cancel.is_set() else "stopped", planned.index))
            except PlMagicError as exc:
                self._add_cost(getattr(exc, "request_id", None))  # a failed stream may bill
                events.put(("error", planned.index, exc))
            except Exception as exc:  # never lose the other runs to one surprise
                events.put(("error", planned.index, PlMagicError(f"{type(exc).__name__}: {exc}")))

    def execute(
        self, on_change: Callable[[list[Progress], bool], None] | None = None
    ) -> list[Progress]:
        """Run everything; call ``on_change(progress, final)`` from this thread."""
        with self.engine.runlog.grouping():  # replayed runs are logged a group at a time
            progress = self._run_all(on_change)
        if self.scorers:
            self.score(progress)
        if on_change:
            on_change(progress, True)
        return progress

    def _run_all(self, on_change: Callable[[list[Progress], bool], None] | None) -> list[Progress]:
        """Start every run and follow them to their end (or the kernel's interrupt)."""
        _check_concurrency(self.concurrency)
        progress = [Progress(r) for r in self.runs]
        lanes: dict[str, deque[_Queued]] = {_lane(planned): deque() for planned in self.runs}
        busy = dict.fromkeys(lanes, 0)
        events: queue.Queue[tuple[Any, ...]] = queue.Queue()
        pool = ThreadPoolExecutor(
            max_workers=min(len(self.runs), self.concurrency * len(lanes)) or 1,
            thread_name_prefix="pl_magic-run",
        )
        outstanding = 0  # handed to a worker, not ended yet

        def dispatch() -> None:
            # Each lane (provider) gets at most `concurrency` workers' runs at once: a run
            # waiting for its provider's turn never holds a worker another provider needs.
            nonlocal outstanding
            for lane, waiting in lanes.items():
                while waiting and busy[lane] < self.concurrency and not self.cancel.is_set():
                    busy[lane] += 1
                    outstanding += 1
                    planned, prepared = waiting.popleft()
                    pool.submit(self._work, planned, events, prepared)

        interrupted = False
        try:
            self._queue_all(progress, lanes, dispatch, on_change)
            while outstanding or (any(lanes.values()) and not self.cancel.is_set()):
                try:
                    event = events.get(timeout=0.05)
                except queue.Empty:
                    if on_change:
                        on_change(progress, False)
                    continue
                if self._apply(progress, event):
                    outstanding -= 1
                    busy[_lane(progress[event[1]].run)] -= 1
                    self._check_fail_fast(progress[event[1]], lanes, progress)
                    dispatch()
                if on_change:
                    on_change(progress, False)
        except KeyboardInterrupt:
            interrupted = True
            self.cancel.set()
            outstanding = self._drain(progress, events, outstanding)
        finally:
            pool.shutdown(wait=not interrupted, cancel_futures=True)
        if interrupted:
            skipped = sum(p.status == "pending" for p in progress)
            notices.warn(
                "interrupted: runs in flight were cancelled"
                + (f", {skipped} not started" if skipped else "")
            )
        if self.failed is not None:
            notices.warn(self._fail_fast_line(progress))
        return progress

    def _queue_all(
        self,
        progress: list[Progress],
        lanes: dict[str, deque[_Queued]],
        dispatch: Callable[[], None],
        on_change: Callable[[list[Progress], bool], None] | None,
    ) -> None:
        """Put every run in its provider's lane, handing the workers what they can take.

        When the runs may be served from the replay cache, each is prepared here first:
        a hit is served on this thread (it waits on nothing, and a thread hand-off per
        run cost more than serving it), a miss goes to its lane already prepared.
        """
        if replay.mode(self.run_kwargs.get("cache")) not in replay.REPLAYING:
            for planned in self.runs:
                lanes[_lane(planned)].append((planned, None))
            dispatch()
            return
        shown_at = time.monotonic()
        for planned in self.runs:
            if self.cancel.is_set():
                break
            if self._stop.is_set():  # fail_fast stopped the comparison
                item = progress[planned.index]
                item.status, item.error = "skipped", FailFastSkipped("fail-fast")
                continue
            try:
                run = self.engine.prepare(self._options(planned))
                if run.served is None:
                    lanes[_lane(planned)].append((planned, run))
                    dispatch()
                    continue
                result = self.engine.run_prepared(run)
                event: tuple[Any, ...] = ("ok", planned.index, result)
            except PlMagicError as exc:
                event = ("error", planned.index, exc)
            except Exception as exc:  # never lose the other runs to one surprise
                event = ("error", planned.index, PlMagicError(f"{type(exc).__name__}: {exc}"))
            self._apply(progress, event)
            self._check_fail_fast(progress[planned.index], lanes, progress)
            if on_change and time.monotonic() - shown_at > _SHOW_EVERY_S:
                on_change(progress, False)
                shown_at = time.monotonic()

    def _check_fail_fast(
        self, item: Progress, lanes: dict[str, deque[_Queued]], progress: list[Progress]
    ) -> None:
        """With ``fail_fast``, a run that ended in an error a retry would not cure stops the
        comparison: the runs not handed to a worker yet are skipped at once, those waiting
        for their turn give up (``_stop``), those in flight finish."""
        if not self.fail_fast or self.failed is not None or item.status != "error":
            return
        if retryable(item.error):
            return
        self.failed = item
        self._stop.set()
        for waiting in lanes.values():
            while waiting:
                skipped = progress[waiting.popleft()[0].index]
                skipped.status, skipped.error = "skipped", FailFastSkipped("fail-fast")

    def _fail_fast_line(self, progress: Sequence[Progress]) -> str:
        """The one line that says which run stopped the comparison, and why."""
        assert self.failed is not None
        run = self.failed.run
        where = " · ".join(
            part
            for part in (
                f"row {run.input_index}" if run.input_index is not None else "",
                f"version {run.version_name}",
                run.model_name,
                f"repeat {run.repeat + 1}",
            )
            if part
        )
        skipped = sum(isinstance(p.error, FailFastSkipped) for p in progress)
        return (
            f"fail-fast: stopped at run {run.index + 1} of {len(progress)} ({where}), which "
            f"failed: {self.failed.error}; {skipped} run{'s' if skipped != 1 else ''} not started"
        )

    def score(self, progress: Sequence[Progress]) -> int:
        """Score every run that ended ok and was logged; store the scores under the runs'
        local ids (with the PromptLayer backend a run's result carries PromptLayer's id:
        mapped back to the run's row) through :meth:`Engine.record_scores`, which also
        sends them to PromptLayer. A scorer that fails gives that run an error score,
        never an exception."""
        done = [p for p in progress if p.status == "ok" and p.request_id is not None]
        if not done:
            return 0
        found = self.engine.runlog.by_either_id([p.request_id for p in done], ("request_id",))
        local = {key: row["request_id"] for key, row in found.items()}  # either id -> local
        logged = [p for p in done if str(p.request_id) in local]
        verdicts = score_runs(
            self.scorers,
            [(p.text, p.run.input_variables) for p in logged],
            self.expected,
            request_ids=[local[str(p.request_id)] for p in logged],
        )
        rows = [
            ScoreRow(
                local[str(p.request_id)], s.name, s.value, s.passed, s.reason, s.source, s.version
            )
            for p, scores in zip(logged, verdicts, strict=True)
            for s in scores
        ]
        return self.engine.record_scores(rows)

    def _drain(
        self, progress: list[Progress], events: queue.Queue[tuple[Any, ...]], pending: int
    ) -> int:
        """After an interrupt: collect what the workers report as they stop (``pending``:
        the runs handed to them and not ended yet)."""
        deadline = 30.0
        waited = 0.0
        while pending and waited < deadline:
            try:
                event = events.get(timeout=0.1)
            except queue.Empty:
                waited += 0.1
                continue
            except KeyboardInterrupt:  # a second interrupt: stop waiting
                break
            pending -= self._apply(progress, event)
        return pending

    @staticmethod
    def _apply(progress: list[Progress], event: tuple[Any, ...]) -> int:
        """Record one worker event; return 1 when it ends a run."""
        kind, index = event[0], event[1]
        item = progress[index]
        if kind == "started":
            item.status = "running"
            return 0
        if kind == "text":
            item.text = event[2]
            return 0
        if kind == "ok":
            item.status, item.result = "ok", event[2]
            item.request_id = event[2]["request_id"]
            item.text = reply_text(event[2]["prompt_blueprint"])
        elif kind == "error":
            item.status, item.error = "error", event[2]
            item.request_id = getattr(event[2], "request_id", None)
            item.text = getattr(event[2], "partial_text", "") or item.text
        elif kind == "cancelled":
            item.status = "cancelled"
        elif kind == "budget":
            item.status, item.error = "skipped", BudgetSkipped("budget")
        elif kind == "stopped":
            item.status, item.error = "skipped", FailFastSkipped("fail-fast")
        else:  # "skipped": never started (or never got its turn): pending, not a run
            item.status = "pending"
        return 1
