"""The size, time and step budget of one render (a run's whole template shares one).

:mod:`pl_magic.core.templates` and the jinja2 sandbox (:mod:`pl_magic.core.jinja_sandbox`)
count against the current :class:`Budget`; :func:`render_budget` opens one for a run, and
inside a :func:`cancel_on` block setting the event stops a render at its next step.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from . import config
from .errors import TemplateLimitError

SIZE_SETTING = "PL_MAGIC_TEMPLATE_MAX_CHARS"
TIME_SETTING = "PL_MAGIC_TEMPLATE_TIMEOUT"
_SPEC_NUMBER = re.compile(r"\d+")


@dataclass
class Budget:
    """What one run's rendering may still use: characters, steps and time."""

    max_chars: int
    timeout_s: float
    cancel: threading.Event | None = None
    deadline: float = 0.0
    steps: int = 0
    rendered: int = 0  # characters of the run's template rendered so far
    _next_check: int = field(default=0, repr=False)

    @classmethod
    def from_settings(cls, cancel: threading.Event | None = None) -> Budget:
        """A budget with the configured limits, starting now."""
        timeout = config.template_timeout_s()
        return cls(config.template_max_chars(), timeout, cancel, time.monotonic() + timeout)

    @property
    def max_steps(self) -> int:
        """Steps a render may take: twice the characters it may render."""
        return 2 * self.max_chars

    def step(self, n: int = 1) -> None:
        """Count ``n`` steps; past the step limit, the deadline or a cancel, stop."""
        self.steps += n
        if self.steps < self._next_check:
            return
        self._next_check = self.steps + 64
        if self.steps > self.max_steps:
            raise TemplateLimitError(
                f"The jinja2 template took more than {self.max_steps:,} steps (loop iterations, "
                f"calls, lookups; twice the {self.max_chars:,}-character limit): simplify its "
                f"loops, or raise {SIZE_SETTING}"
            )
        self.check_time()

    def check_time(self) -> None:
        """Stop when the run was cancelled or the render ran out of time."""
        if self.cancel is not None and self.cancel.is_set():
            raise KeyboardInterrupt  # the batch's interrupt, reaching its worker thread
        if time.monotonic() > self.deadline:
            raise TemplateLimitError(
                f"Rendering the template took longer than {self.timeout_s:g} s (the limit): "
                f"simplify its loops, or raise {TIME_SETTING}"
            )

    def size_error(self, size: int, what: str = "The rendered template") -> TemplateLimitError:
        """The error for text of ``size`` characters past the limit."""
        return TemplateLimitError(
            f"{what} would be {_about(size)} characters, more than the {self.max_chars:,}-"
            f"character limit: make it shorter (a smaller width, count or input), or raise "
            f"{SIZE_SETTING}"
        )

    def check_size(self, size: int, what: str = "The rendered template") -> None:
        """Refuse text of ``size`` characters when it is past the limit."""
        if size > self.max_chars:
            raise self.size_error(size, what)


def _about(size: int | float) -> str:
    return f"{size:,.0f}" if size < 1e15 else f"about {size:.1e}"


_BUDGET: ContextVar[Budget | None] = ContextVar("pl_magic_render_budget", default=None)
_CANCEL: ContextVar[threading.Event | None] = ContextVar("pl_magic_render_cancel", default=None)


def current_budget() -> Budget:
    """The current render's budget (a fresh one outside :func:`render_budget`)."""
    return _BUDGET.get() or Budget.from_settings(_CANCEL.get())


@contextmanager
def render_budget(timeout_s: float | None = None) -> Iterator[Budget]:
    """One budget for everything rendered inside (a run's whole template); nested: the outer.

    ``timeout_s``: a shorter time limit than the configured one (a cost estimate's renders
    must not hold up the runs they estimate)."""
    current = _BUDGET.get()
    if current is not None:
        yield current
        return
    budget = Budget.from_settings(_CANCEL.get())
    if timeout_s is not None and timeout_s < budget.timeout_s:
        budget.timeout_s = timeout_s
        budget.deadline = time.monotonic() + timeout_s
    token = _BUDGET.set(budget)
    try:
        yield budget
    finally:
        _BUDGET.reset(token)


@contextmanager
def cancel_on(event: threading.Event) -> Iterator[None]:
    """Renders inside stop (KeyboardInterrupt) at their next step once ``event`` is set."""
    token = _CANCEL.set(event)
    try:
        yield
    finally:
        _CANCEL.reset(token)


# -- sizes of values and of formatting ---------------------------------------------------


def text_size(value: Any, limit: int) -> int:
    """About how many characters ``str(value)`` has; counting stops past ``limit``.

    Containers are walked (a list of 100,000 references to one long string is short as a
    list but not as text), and a container met again is counted again, because ``str()``
    and ``tojson`` write every reference in full; only a real cycle (a container inside
    itself) counts as short, as its text is. The count is at least the real size for text
    and close to it for numbers, so that it can be checked before the text is made; the
    walk stays short because it stops past ``limit``.
    """
    if type(value) is str:  # (most values a template writes: no walk to set up)
        return len(value) + 2
    total = 0
    stack: list[Any] = [value]
    ancestors: set[int] = set()  # the containers being walked, to tell a cycle from a repeat
    while stack and total <= limit:
        item = stack.pop()
        if type(item) is _Leave:
            ancestors.discard(item.key)
        elif isinstance(item, str | bytes | bytearray):
            total += len(item) + 2
        elif isinstance(item, bool) or item is None:
            total += 5
        elif isinstance(item, int):
            total += int(item.bit_length() * 0.30103) + 2
        elif isinstance(item, float):
            total += 8
        elif isinstance(item, Mapping | list | tuple | set | frozenset) or _is_view(item):
            if id(item) in ancestors:
                total += 5
                continue
            ancestors.add(id(item))
            stack.append(_Leave(id(item)))
            total += 2
            if isinstance(item, Mapping):
                for key, val in item.items():
                    total += 4
                    stack.extend((key, val))
                    if len(stack) > limit:
                        return limit + 1
            else:
                for val in item:
                    total += 2
                    stack.append(val)
                    if len(stack) > limit:
                        return limit + 1
        else:
            attrs = _namespace_attrs(item)
            total += 16
            if attrs is not None:
                stack.append(attrs)
    return total


def item_count(value: Any, limit: int) -> int:
    """How many values ``value`` holds, nested ones included and shared ones counted each
    time (as a comparison or ``str()`` visits them); counting stops past ``limit`` (a
    container inside itself therefore counts as past it)."""
    total = 1
    stack: list[Any] = [value]
    while stack and total <= limit:
        item = stack.pop()
        if not isinstance(item, Mapping | list | tuple | set | frozenset):
            item = _namespace_attrs(item)
            if item is None:
                continue
        if isinstance(item, Mapping):
            total += 2 * len(item)
            values: Iterable[Any] = itertools.chain(item.keys(), item.values())
        else:
            total += len(item)
            values = item
        if total <= limit:  # (checked before the walk, so that the stack stays short)
            stack.extend(v for v in values if not isinstance(v, _LEAVES))
    return total


_LEAVES = (str, bytes, bytearray, int, float, type(None))


class _Leave:
    """A mark on :func:`text_size`'s stack: the walk has left the container ``key``."""

    __slots__ = ("key",)

    def __init__(self, key: int) -> None:
        self.key = key


def _is_view(item: Any) -> bool:
    from collections.abc import MappingView

    return isinstance(item, MappingView)


def _namespace_attrs(item: Any) -> dict[str, Any] | None:
    """A jinja2 ``namespace()``'s attributes (its text shows them all)."""
    attrs = getattr(type(item), "__name__", "") == "Namespace" and getattr(
        item, "_Namespace__attrs", None
    )
    return attrs if isinstance(attrs, dict) else None


def spec_width(spec: str) -> int:
    """The largest number in a format spec (its width or precision)."""
    return max((int(n) for n in _SPEC_NUMBER.findall(spec)), default=0) if spec else 0


_PERCENT = re.compile(
    r"%(?:\((?P<key>[^)]*)\))?[#0\- +]*(?P<width>\*|\d+)?(?:\.(?P<prec>\*|\d*))?[hlL]?"
    r"(?P<kind>[diouxXeEfFgGcrsab%])"
)


def check_percent(fmt: Any, args: Any, budget: Budget) -> None:
    """Refuse ``fmt % args`` when its widths, precisions or values make too much text."""
    if isinstance(fmt, bytes | bytearray):
        fmt = fmt.decode("latin-1")
    if not isinstance(fmt, str):
        return
    positional = list(args) if isinstance(args, tuple) else [args]
    mapping = args if isinstance(args, Mapping) else None
    total = len(fmt)
    index = 0

    def take() -> Any:
        nonlocal index
        value = positional[index] if index < len(positional) else None
        index += 1
        return value

    for match in _PERCENT.finditer(fmt):
        if match["kind"] == "%":
            continue
        sizes = []
        for part in (match["width"], match["prec"]):
            if part == "*":
                star = take()
                sizes.append(abs(star) if isinstance(star, int) else 0)
            elif part:
                sizes.append(int(part))
        if match["key"] is not None and mapping is not None:
            value = mapping.get(match["key"])
        else:
            value = take()
        sizes.append(text_size(value, budget.max_chars))
        total += max(sizes)
        budget.check_size(total, "The %-formatted text")
