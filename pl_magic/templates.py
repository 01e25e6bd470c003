"""Rendering template text: PromptLayer's ``f-string`` and ``jinja2`` formats, bounded.

Rendering is strict (a missing variable is an error naming every missing one), unlike
PromptLayer's server which renders missing variables as "". Variables a template does not
use are ignored, so one set of inputs can be shared across prompt versions.

f-string: ``{name}`` is replaced by the variable's value; ``{{`` and ``}}`` are literal
braces. Only whole names are looked up: ``{user.__class__}`` is treated as a variable
called ``user.__class__``, never as attribute access, so a template cannot reach into
Python objects. jinja2 always runs in its sandbox (an immutable one: a template cannot
change a list or a dict it is given).

A template comes from a registry others may edit, so it is treated as untrusted code:

- it sees input variables only as plain data (:mod:`pl_magic.plain_data`), never the
  user's own objects;
- what it renders is bounded, inside the render: at most
  ``PL_MAGIC_TEMPLATE_MAX_CHARS`` characters (default 1,000,000) for a run's whole
  template, at most ``PL_MAGIC_TEMPLATE_TIMEOUT`` seconds (default 5), and at most twice
  as many jinja2 steps (loop iterations, calls, lookups, operators, outputs) as it may
  render characters. Widths and repeat counts are checked before the text is made
  (``'x'|center(10**9)``, ``'%*s' % (10**9, 'x')``, ``'{:>999999999}'.format(x)``, ``'x' *
  10**9``, ``lipsum(10**6)``), and so are the sizes of values turned into text. Going past
  a limit is a one-line :class:`TemplateLimitError` naming the limit and the setting.

A run renders all its messages under one budget (:func:`render_budget`); inside a
:func:`cancel_on` block, setting the event stops a render at its next step (the batch's
worker threads use it so that an interrupt stops their rendering too).
"""

from __future__ import annotations

import itertools
import re
import string
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from . import config
from .errors import SandboxViolationError, TemplateError, TemplateLimitError, TemplateSyntaxError
from .plain_data import plain_data

if TYPE_CHECKING:
    import jinja2

FORMATS = ("f-string", "jinja2")
_formatter = string.Formatter()
_SPEC_NUMBER = re.compile(r"\d+")
_SIZE_SETTING = "PL_MAGIC_TEMPLATE_MAX_CHARS"
_TIME_SETTING = "PL_MAGIC_TEMPLATE_TIMEOUT"


# -- the budget ------------------------------------------------------------------------


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
                f"loops, or raise {_SIZE_SETTING}"
            )
        self.check_time()

    def check_time(self) -> None:
        """Stop when the run was cancelled or the render ran out of time."""
        if self.cancel is not None and self.cancel.is_set():
            raise KeyboardInterrupt  # the batch's interrupt, reaching its worker thread
        if time.monotonic() > self.deadline:
            raise TemplateLimitError(
                f"Rendering the template took longer than {self.timeout_s:g} s (the limit): "
                f"simplify its loops, or raise {_TIME_SETTING}"
            )

    def size_error(self, size: int, what: str = "The rendered template") -> TemplateLimitError:
        """The error for text of ``size`` characters past the limit."""
        return TemplateLimitError(
            f"{what} would be {_about(size)} characters, more than the {self.max_chars:,}-"
            f"character limit: make it shorter (a smaller width, count or input), or raise "
            f"{_SIZE_SETTING}"
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
def render_budget() -> Iterator[Budget]:
    """One budget for everything rendered inside (a run's whole template); nested: the outer."""
    current = _BUDGET.get()
    if current is not None:
        yield current
        return
    budget = Budget.from_settings(_CANCEL.get())
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


# -- f-string --------------------------------------------------------------------------


def _check_format(template_format: str) -> str:
    fmt = template_format or "f-string"
    if fmt not in FORMATS:
        raise TemplateSyntaxError(
            f"Unknown template_format {template_format!r}: use 'f-string' or 'jinja2'"
        )
    return fmt


@lru_cache(maxsize=1024)  # every run parses its template's texts twice (variables, render)
def _fstring_parts(text: str) -> tuple[tuple[str, str | None, str | None, str | None], ...]:
    try:
        return tuple(_formatter.parse(text))
    except ValueError as exc:
        raise TemplateSyntaxError(
            f"Invalid f-string template ({exc}): write literal braces as {{{{ and }}}}"
        ) from None


def variables(text: str, template_format: str = "f-string") -> set[str]:
    """The input variables ``text`` uses, in the given format."""
    fmt = _check_format(template_format)
    if fmt == "jinja2":
        return set(_jinja_variables(text))
    return {field for _, field, _, _ in _fstring_parts(text) if field is not None and field}


def render(text: str, values: Mapping[str, Any], template_format: str = "f-string") -> str:
    """Render ``text`` with ``values`` (as plain data), within the current run's budget.

    Callers check for missing variables first. Past a limit: :class:`TemplateLimitError`.
    """
    fmt = _check_format(template_format)
    with render_budget() as budget:
        budget.check_time()
        if fmt == "jinja2":
            out = _render_jinja(text, values, budget)
        else:
            out = _render_fstring(text, values, budget)
        budget.rendered += len(out)
        budget.check_size(budget.rendered)
        return out


def _render_fstring(text: str, values: Mapping[str, Any], budget: Budget) -> str:
    out: list[str] = []
    total = budget.rendered
    plain: dict[str, Any] = {}
    for literal, field_name, spec, conversion in _fstring_parts(text):
        budget.step()
        out.append(literal)
        total += len(literal)
        if field_name is None:
            budget.check_size(total)
            continue
        if not field_name:
            raise TemplateSyntaxError(
                "Empty {} in an f-string template: name the variable, or write {{}} for braces"
            )
        if field_name not in plain:
            plain[field_name] = plain_data(values[field_name], field_name)
        value = plain[field_name]
        width = spec_width(spec or "")
        if width > budget.max_chars:
            raise TemplateLimitError(
                f"The format spec ':{spec[:40] if spec else ''}' of variable {field_name!r} asks "
                f"for {width:,} characters, more than the {budget.max_chars:,}-character limit: "
                f"use a smaller width or precision, or raise {_SIZE_SETTING}"
            )
        total += max(width, text_size(value, budget.max_chars))
        budget.check_size(total)
        try:
            if conversion == "r":
                value = repr(value)
            elif conversion == "a":
                value = ascii(value)
            elif conversion == "s":
                value = str(value)
            out.append(format(value, spec or ""))
        except (ValueError, TypeError) as exc:
            raise TemplateSyntaxError(
                f"Cannot format variable {field_name!r} with ':{spec}' ({exc}): fix the format spec"
            ) from None
    return "".join(out)


# -- jinja2 ----------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _jinja_env() -> jinja2.sandbox.SandboxedEnvironment:
    from .jinja_sandbox import bounded_environment

    return bounded_environment()


@lru_cache(maxsize=256)
def _jinja_template(text: str) -> jinja2.Template:
    return _jinja_env().from_string(text)


def _syntax_error(exc: jinja2.TemplateSyntaxError) -> TemplateSyntaxError:
    return TemplateSyntaxError(
        f"Invalid jinja2 template (line {exc.lineno}: {exc.message}): fix the template text"
    )


@lru_cache(maxsize=512)
def _jinja_variables(text: str) -> frozenset[str]:
    import jinja2
    from jinja2 import meta

    try:
        ast = _jinja_env().parse(text)
    except jinja2.TemplateSyntaxError as exc:
        raise _syntax_error(exc) from None
    return frozenset(meta.find_undeclared_variables(ast))


def _render_jinja(text: str, values: Mapping[str, Any], budget: Budget) -> str:
    import jinja2
    from jinja2.sandbox import SecurityError

    used = {
        name: plain_data(values[name], name) for name in _jinja_variables(text) if name in values
    }
    try:
        return _jinja_template(text).render(used)
    except TemplateError:
        raise
    except SecurityError as exc:
        raise SandboxViolationError(
            f"The jinja2 template did something the sandbox forbids ({exc}): "
            "use only variables, filters and loops"
        ) from None
    except jinja2.TemplateSyntaxError as exc:
        raise _syntax_error(exc) from None
    except jinja2.UndefinedError as exc:
        raise TemplateSyntaxError(
            f"jinja2 template error ({exc.message}): give the variable or fix the template"
        ) from None
    except jinja2.TemplateError as exc:
        raise TemplateSyntaxError(f"jinja2 template error ({exc}): fix the template") from None
    except MemoryError:
        raise budget.size_error(budget.max_chars + 1) from None
    except (ArithmeticError, LookupError, TypeError, ValueError, RecursionError) as exc:
        # what the template's own expressions raise: 1/0, 'a' + 1, range(10**9), x[99]...
        raise TemplateError(
            f"The jinja2 template failed ({type(exc).__name__}: {exc}): fix the template"
        ) from None
