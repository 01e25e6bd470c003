"""Adaptive concurrency: one limiter per provider and base URL, shared by every run in the
process (``run()``, ``%%plrun``, the form, ``run_many``, two comparisons at once).

A limiter has a *window*: how many calls to its provider may wait for an answer at once.
It starts open (no limit but each comparison's own ``concurrency``), and follows AIMD, as
TCP's congestion control does:

- a 429 halves it (:data:`DECREASE`), from the calls in flight when it came, at most once
  per wave of calls: a 429 answering a request sent before the last decrease is part of the
  same burst and does not halve it again;
- each successful answer adds ``1 / window`` (:data:`INCREASE`: one more call per window of
  answers); once the window reaches the largest ``concurrency`` of the comparisons using it,
  it is open again.

A 429's ``retry-after`` (or ``retry-after-ms``, Gemini's ``RetryInfo``), and a rate-limit
header saying that none are left (OpenAI's and Anthropic's), *pause* the provider: no call
starts and no request goes out — the SDK's own retries included — until then (at most
:data:`MAX_PAUSE_S`). The limiter learns of every answer through the hooks on the SDK's
HTTP client (:mod:`pl_magic.providers.traffic`), so a 429 that the SDK retried and hid
still counts.

A run of a comparison whose call still ends in a 429 after the SDK's retries waits its turn
again (at most :data:`MAX_REQUEUES` times) instead of failing: under a rate limit no run is
lost. A run waiting for the window holds its worker thread, but a comparison keeps one set of
``concurrency`` workers per provider, so a slow provider never takes another's. A waiting run
of a comparison watches the comparison's cancel (the kernel's interrupt) and stop
(``fail_fast``) events; a run in the kernel's main thread is stopped by the interrupt itself.

``PL_MAGIC_ADAPTIVE_CONCURRENCY=0`` turns the pacing off (a comparison then keeps its fixed
``concurrency``; 429s are still counted).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from ..core import config
from ..providers import traffic

#: A 429 multiplies the window by this (TCP's factor: at a steady limit the window swings
#: between the limit and half of it, and a burst far over the limit is undone in a few waves).
DECREASE = 0.5
#: Each successful answer adds ``INCREASE / window``: one more call per window of answers.
INCREASE = 1.0
#: The longest pause a provider's ``retry-after`` or reset header can impose (a longer one
#: is a quota, not a rate: runs then fail as the SDK decides, they do not wait for it).
MAX_PAUSE_S = 60.0
#: A pause lasts this much longer than asked (a share of it): the provider counts from when
#: the request reached it, a little after it went out.
PAUSE_MARGIN = 0.05
#: How many times a comparison's run whose call ended in a 429 waits its turn again (each
#: time after the SDK's own retries and the pause the provider asked for: eight rounds ride
#: out the burst of 429s a comparison far over the limit meets at its start).
MAX_REQUEUES = 8
#: A window is forgotten (open again) after this long with no call in flight.
FORGET_AFTER_S = 60.0
#: How often a waiting run looks at its comparison's cancel and stop events.
POLL_S = 0.05


class NotStarted(Exception):
    """The comparison stopped (interrupt or fail-fast) while this run waited for its turn:
    nothing was sent."""


@dataclass(frozen=True, slots=True)
class _Scope:
    """The comparison a worker thread's run belongs to."""

    concurrency: int
    cancel: threading.Event | None
    stop: threading.Event | None

    def stopped(self) -> bool:
        return bool(
            (self.cancel is not None and self.cancel.is_set())
            or (self.stop is not None and self.stop.is_set())
        )


_SCOPE: ContextVar[_Scope | None] = ContextVar("pl_magic_limiter_scope", default=None)


@contextlib.contextmanager
def comparison(
    concurrency: int,
    cancel: threading.Event | None = None,
    stop: threading.Event | None = None,
) -> Iterator[None]:
    """Runs inside belong to a comparison: the window's ceiling is ``concurrency``, a run
    waiting for its turn gives up (:class:`NotStarted`) once ``cancel`` or ``stop`` is set,
    and a call that ends in a 429 waits its turn again."""
    token = _SCOPE.set(_Scope(concurrency, cancel, stop))
    try:
        yield
    finally:
        _SCOPE.reset(token)


def adaptive() -> bool:
    """Whether the limiters pace calls (``PL_MAGIC_ADAPTIVE_CONCURRENCY``, default on)."""
    return config.adaptive_concurrency()


class Permit:
    """One call's place in a limiter's window; :meth:`release` gives it back (once)."""

    __slots__ = ("_cap", "_limiter", "rate_limited_at_start")

    def __init__(self, limiter: Limiter | None, cap: float, rate_limited: int) -> None:
        self._limiter = limiter
        self._cap = cap
        #: The limiter's 429 count when the call started (has the call seen one since?).
        self.rate_limited_at_start = rate_limited

    def release(self) -> None:
        """Give the place back."""
        limiter, self._limiter = self._limiter, None
        if limiter is not None:
            limiter._release(self._cap)


class Limiter:
    """The window, the pause and the counts of one provider and base URL."""

    def __init__(self, key: str) -> None:
        self.key = key
        #: How many calls may wait for an answer at once; None: open.
        self.window: float | None = None
        #: Calls waiting for an answer now.
        self.in_flight = 0
        #: The most calls in flight at once so far.
        self.peak_in_flight = 0
        #: 429s seen (every one, the SDK's retried ones included).
        self.rate_limited = 0
        #: Times the window was decreased.
        self.decreases = 0
        #: ``time.monotonic()`` before which no call starts and no request goes out.
        self.paused_until = 0.0
        #: The wait the last 429 asked for (a quota's is longer than any pause).
        self.last_retry_after_s: float | None = None
        self._last_decrease = -math.inf
        self._idle_since = time.monotonic()
        self._caps: dict[float, int] = {}  # the ceilings of the calls in or waiting: how many
        self._waiting = 0
        self._cond = threading.Condition(threading.Lock())

    # -- taking a place ----------------------------------------------------------------------

    def _ceiling(self) -> float:
        return max(self._caps) if self._caps else math.inf

    def _admissible(self, now: float) -> bool:
        if self.paused_until > now:
            return False
        return self.window is None or self.in_flight < int(self.window)

    def _take(self, cap: float) -> Permit:
        idle = self.in_flight == 0 and time.monotonic() - self._idle_since >= FORGET_AFTER_S
        if idle:
            self.window = None  # an old window says little about the limit now
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        return Permit(self, cap, self.rate_limited)

    def acquire(self) -> Permit:
        """Wait for a place in the window (and for a pause to end); the call's permit.

        Raises :class:`NotStarted` when the run's comparison stops meanwhile; in the main
        thread the interrupt (KeyboardInterrupt) ends the wait."""
        scope = _SCOPE.get()
        cap = float(scope.concurrency) if scope is not None else math.inf
        with self._cond:
            self._caps[cap] = self._caps.get(cap, 0) + 1
            if not adaptive() or self._admissible(time.monotonic()):
                return self._take(cap)
            self._waiting += 1
            try:
                while True:
                    if scope is not None and scope.stopped():
                        raise NotStarted
                    now = time.monotonic()
                    if self._admissible(now):
                        return self._take(cap)
                    pause = self.paused_until - now
                    self._cond.wait(min(POLL_S, pause) if pause > 0 else POLL_S)
            except BaseException:
                self._forget_cap(cap)
                raise
            finally:
                self._waiting -= 1

    async def aacquire(self) -> Permit:
        """Async twin of :meth:`acquire` (polls: an event loop cannot wait on the lock)."""
        scope = _SCOPE.get()
        cap = float(scope.concurrency) if scope is not None else math.inf
        with self._cond:
            self._caps[cap] = self._caps.get(cap, 0) + 1
        try:
            while True:
                with self._cond:
                    now = time.monotonic()
                    if not adaptive() or self._admissible(now):
                        return self._take(cap)
                    pause = self.paused_until - now
                if scope is not None and scope.stopped():
                    raise NotStarted
                await asyncio.sleep(min(POLL_S, pause) if pause > 0 else POLL_S / 5)
        except BaseException:
            with self._cond:
                self._forget_cap(cap)
            raise

    def _forget_cap(self, cap: float) -> None:
        left = self._caps[cap] - 1
        if left > 0:
            self._caps[cap] = left
        else:
            del self._caps[cap]

    def _release(self, cap: float) -> None:
        with self._cond:
            self.in_flight -= 1
            self._forget_cap(cap)
            if self.in_flight == 0:
                self._idle_since = time.monotonic()
            self._wake()

    def _wake(self) -> None:
        if not self._waiting:
            return
        if self.window is None:
            self._cond.notify_all()
        else:
            self._cond.notify(max(0, int(self.window) - self.in_flight))

    # -- the pause, for each request (the SDK's retries included) ----------------------------

    def wait_out_pause(self) -> None:
        """Hold a request while the provider asked to wait. A comparison's cancel stops the
        wait (KeyboardInterrupt, as a render stopped by it: the run is logged cancelled)."""
        if self.paused_until <= time.monotonic() or not adaptive():
            return
        scope = _SCOPE.get()
        while True:
            pause = self.paused_until - time.monotonic()
            if pause <= 0:
                return
            if scope is not None and scope.cancel is not None and scope.cancel.is_set():
                raise KeyboardInterrupt
            time.sleep(min(POLL_S, pause))

    async def await_pause(self) -> None:
        """Async twin of :meth:`wait_out_pause`."""
        if self.paused_until <= time.monotonic() or not adaptive():
            return
        while True:
            pause = self.paused_until - time.monotonic()
            if pause <= 0:
                return
            await asyncio.sleep(min(POLL_S, pause))

    # -- what the answers say ----------------------------------------------------------------

    def answered(self, answer: traffic.Answer) -> None:
        """Learn from one HTTP answer: a 429 decreases the window and may pause the
        provider; a success increases it; a header saying none are left pauses it."""
        now = time.monotonic()
        with self._cond:
            if answer.status == 429:
                self.rate_limited += 1
                self.last_retry_after_s = answer.retry_after_s
                # A 429 comes back at once: its wait counts from now.
                self._pause(now, answer.retry_after_s)
                sent = answer.sent_at
                if sent is None or sent >= self._last_decrease:
                    base = self.window if self.window is not None else math.inf
                    self.window = max(1.0, min(base, max(self.in_flight, 1)) * DECREASE)
                    self._last_decrease = now
                    self.decreases += 1
            elif 200 <= answer.status < 300:
                if self.window is not None:
                    self.window += INCREASE / self.window
                    if self.window >= self._ceiling():
                        self.window = None
                self._wake()
            # A provider states its limits as it admits a request, and a successful answer
            # comes a whole call later: that wait counts from when the request went out.
            since = answer.sent_at if answer.sent_at is not None else now
            self._pause(since, answer.exhausted_for_s)

    def _pause(self, since: float, wait: float | None) -> None:
        if wait is not None and wait > 0:
            until = since + min(wait, MAX_PAUSE_S) * (1 + PAUSE_MARGIN)
            self.paused_until = max(self.paused_until, until)

    def observed_rate_limit(self, permit: Permit) -> None:
        """A call ended in a rate-limit error the hooks did not see (an SDK path without
        them: genai's aiohttp client): learn of it as of a 429 with no hint."""
        if self.rate_limited == permit.rate_limited_at_start:
            self.answered(traffic.Answer(429))

    def requeue(self, attempts: int) -> bool:
        """Whether a comparison's run whose call ended in a rate-limit error (after the
        SDK's retries) waits its turn again rather than failing."""
        scope = _SCOPE.get()
        if scope is None or scope.stopped() or not adaptive() or attempts >= MAX_REQUEUES:
            return False
        hint = self.last_retry_after_s
        return hint is None or hint <= MAX_PAUSE_S

    def snapshot(self) -> dict[str, float | int | None]:
        """The limiter's state, for tests and benchmarks."""
        with self._cond:
            return {
                "window": self.window,
                "in_flight": self.in_flight,
                "peak_in_flight": self.peak_in_flight,
                "rate_limited": self.rate_limited,
                "decreases": self.decreases,
                "paused_for_s": max(0.0, self.paused_until - time.monotonic()),
            }


# -- the process-wide registry ---------------------------------------------------------------

_limiters: dict[str, Limiter] = {}
_limiters_lock = threading.Lock()


def limiter_for(key: str) -> Limiter:
    """The limiter of one traffic key (see ``Provider.traffic_key``), made once a process."""
    found = _limiters.get(key)
    if found is None:
        with _limiters_lock:
            found = _limiters.setdefault(key, Limiter(key))
    return found


def limiters() -> dict[str, Limiter]:
    """Every limiter made so far, by traffic key."""
    with _limiters_lock:
        return dict(_limiters)


def reset() -> None:
    """Forget every limiter (what was learnt of every provider's limits)."""
    with _limiters_lock:
        _limiters.clear()


class _Observer:
    """What the providers' HTTP hooks report to (see :mod:`pl_magic.providers.traffic`)."""

    def before_send(self, key: str) -> None:
        limiter_for(key).wait_out_pause()

    async def abefore_send(self, key: str) -> None:
        await limiter_for(key).await_pause()

    def answered(self, key: str, answer: traffic.Answer) -> None:
        limiter_for(key).answered(answer)


def install() -> None:
    """Have the providers' HTTP hooks report to the limiters (done when the engine loads)."""
    traffic.set_observer(_Observer())
