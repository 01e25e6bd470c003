"""The jinja2 sandbox templates render in: immutable, and bounded in size, steps and time.

jinja2's sandbox guards attributes, not sizes: ``'x'|center(900000000)`` or two nested
``range(99999)`` loops are allowed and take the kernel's memory or time. This environment
counts every step against the render's :class:`~pl_magic.core.render_budget.Budget` (checking its
deadline and its cancel event as it goes) and checks sizes before text is made:

- ``call`` (methods, globals, macros), ``getattr``, ``getitem`` and every operator
  (``call_binop``) count a step; ``*``, ``**``, ``+`` and ``%`` check the size of their
  result first (a list's size counts the items of the lists it holds, each time it holds
  them, so that no deep structure is built for ``str()`` or ``==`` to walk), and so do
  the string methods that pad or expand (``center``, ``ljust``, ``rjust``, ``zfill``,
  ``expandtabs``, ``replace``, ``join``, ``translate``,
  ``int.to_bytes``);
- ``str.format`` runs through a formatter that checks each field's width and the text so
  far before formatting it;
- every filter counts a step and checks its arguments (``center``, ``indent``, ``format``,
  ``replace``, ``join``, ``batch``, ``slice``, ``wordwrap``, ``round``, ``sum``) and the
  size of what it turns into text;
- every ``{% for %}`` loop counts its iterations (its iterable goes through a counting
  filter added to the parsed template), ``~`` checks the size of what it joins, and
  ``concat`` (the whole output, and each ``{% set %}`` block, macro and filter block) checks
  the size as it joins;
- ``lipsum()`` checks how much it would write.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from jinja2 import StrictUndefined, nodes
from jinja2.compiler import CodeGenerator, Frame, operators
from jinja2.sandbox import (
    ImmutableSandboxedEnvironment,
    SandboxedEscapeFormatter,
    SandboxedFormatter,
)
from jinja2.utils import generate_lorem_ipsum
from markupsafe import Markup

from .render_budget import (
    Budget,
    check_percent,
    current_budget,
    item_count,
    spec_width,
    text_size,
)

#: The filter every ``{% for %}`` loop's iterable goes through (see ``_parse``).
LOOP_FILTER = "pl_magic_counted_loop"

#: Filters that turn their value into text: its size is checked first.
_STRINGIFYING = frozenset(
    {
        *("capitalize", "center", "e", "escape", "filesizeformat", "forceescape", "format"),
        *("indent", "lower", "pprint", "replace", "safe", "string", "striptags", "title"),
        *("tojson", "trim", "truncate", "upper", "urlencode", "urlize", "wordcount"),
        *("wordwrap", "xmlattr"),
    }
)

#: Characters a lorem ipsum word may take at most (with its comma, stop and space).
_LIPSUM_WORD = 16


class _Generator(CodeGenerator):
    """Compiles ``a ~ b`` to a size-checked join, and comparisons to ones whose operands'
    sizes are checked first (``==`` and ``in`` do not go through ``call_binop``, and one
    comparison of two large structures is one C call the deadline cannot stop)."""

    def visit_Compare(self, node: nodes.Compare, frame: Frame) -> None:
        self.write("(environment.compared(")
        self.visit(node.expr, frame)
        self.write(")")
        for operand in node.ops:
            self.write(f" {operators[operand.op]} environment.compared(")
            self.visit(operand.expr, frame)
            self.write(")")
        self.write(")")

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.bounded_join((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """An immutable sandbox whose every step counts against the current render's budget."""

    code_generator_class = _Generator
    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "**", "%"})

    def __init__(self) -> None:
        super().__init__(undefined=StrictUndefined, autoescape=False, finalize=_finalize)
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}
        self.filters[LOOP_FILTER] = _counted
        self.globals["lipsum"] = _lipsum

    # -- parsing: every loop counts ------------------------------------------------------

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        for loop in list(tree.find_all(nodes.For)):
            loop.iter = nodes.Filter(loop.iter, LOOP_FILTER, [], [], None, None, lineno=loop.lineno)
        tree.set_environment(self)
        return tree

    # -- output -----------------------------------------------------------------------

    def concat(self, parts: Iterable[str]) -> str:
        """``"".join(parts)``, stopping as soon as the text is past the size limit."""
        budget = current_budget()
        out: list[str] = []
        total = 0
        for part in parts:
            total += len(part)
            if total > budget.max_chars:
                raise budget.size_error(total)
            out.append(part)
        return "".join(out)

    def bounded_join(self, parts: tuple[Any, ...]) -> str:
        """``a ~ b ~ c``: checked before the text is made."""
        budget = current_budget()
        budget.step()
        budget.check_size(sum(text_size(p, budget.max_chars) for p in parts), "The joined text")
        return "".join(map(str, parts))

    def compared(self, value: Any) -> Any:
        """An operand of ``==``, ``<``, ``in``…: containers are refused when they hold more
        values (nested ones counted each time) than the size limit."""
        if isinstance(value, Mapping | list | tuple | set | frozenset):
            budget = current_budget()
            budget.step()
            size = item_count(value, budget.max_chars)
            budget.check_size(size, "A compared value's items")
        return value

    # -- the sandbox's hooks ----------------------------------------------------------

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Call ``obj`` from the template: one step, sizes checked before and after."""
        budget = current_budget()
        budget.step()
        args = _check_method(obj, args, kwargs, budget)
        result = super().call(context, obj, *args, **kwargs)
        if isinstance(result, str | bytes):
            budget.check_size(len(result), "A call's result")
        return result

    def getattr(self, obj: Any, attribute: str) -> Any:
        """``obj.attribute``: one step."""
        current_budget().step()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        """``obj[argument]``: one step."""
        current_budget().step()
        return super().getitem(obj, argument)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        """An operator: one step; ``*``, ``**``, ``+`` and ``%`` check their result's size."""
        budget = current_budget()
        budget.step()
        if operator == "*":
            _check_repeat(left, right, budget)
        elif operator == "**":
            _check_power(left, right, budget)
        elif operator == "+":
            if isinstance(left, str | bytes) and isinstance(right, str | bytes):
                budget.check_size(len(left) + len(right), "The added sequences")
            elif isinstance(left, list | tuple) and isinstance(right, list | tuple):
                # counted in depth: lists of shared lists make huge text and comparisons
                limit = budget.max_chars
                size = item_count(left, limit) + item_count(right, limit)
                budget.check_size(size, "The added lists' items")
        elif operator == "%" and isinstance(left, str | bytes):
            check_percent(left, right, budget)
        return super().call_binop(context, operator, left, right)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """``str.format`` / ``format_map`` through a formatter that checks every field."""
        if super().wrap_str_format(value) is None:
            return None
        text = value.__self__
        is_format_map = value.__name__ == "format_map"
        env = self

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                kwargs, args = args[0], ()
            formatter: SandboxedFormatter
            if isinstance(text, Markup):
                formatter = _BoundedEscapeFormatter(env, escape=text.escape)
            else:
                formatter = _BoundedFormatter(env)
            return type(text)(formatter.vformat(text, args, kwargs))

        return functools.update_wrapper(wrapper, value)


class _BoundedFields:
    """Formatter methods that check each field's width and the text so far first."""

    _total = 0

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if conversion:
            budget = current_budget()
            budget.check_size(text_size(value, budget.max_chars), "A formatted field")
        return super().convert_field(value, conversion)  # type: ignore[misc]

    def format_field(self, value: Any, format_spec: str) -> Any:
        budget = current_budget()
        budget.step()
        self._total += max(spec_width(format_spec), text_size(value, budget.max_chars))
        budget.check_size(self._total, "The formatted text")
        return super().format_field(value, format_spec)  # type: ignore[misc]


class _BoundedFormatter(_BoundedFields, SandboxedFormatter):
    pass


class _BoundedEscapeFormatter(_BoundedFields, SandboxedEscapeFormatter):
    pass


def _finalize(value: Any) -> Any:
    """Every ``{{ value }}`` written: one step, and its text's size checked first."""
    budget = current_budget()
    budget.step()
    if not isinstance(value, str):
        budget.check_size(text_size(value, budget.max_chars), "A value the template writes")
    return value


def _counted(value: Any) -> Any:
    """A loop's iterable: its length counts as steps (or each item, for an iterator)."""
    budget = current_budget()
    try:
        size = len(value)
    except TypeError:
        return _count_each(value, budget)
    budget.step(max(size, 1))
    return value


def _count_each(items: Iterable[Any], budget: Budget) -> Iterator[Any]:
    for item in items:
        budget.step()
        yield item


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    """jinja2's ``lipsum()``, refused when it would write too much."""
    budget = current_budget()
    budget.step()
    if isinstance(n, int) and isinstance(max, int):
        budget.check_size(n * max * _LIPSUM_WORD, "The lorem ipsum text")
    return str(generate_lorem_ipsum(n, html, min, max))


# -- checks before a call -------------------------------------------------------------


def _arg(args: tuple[Any, ...], kwargs: Mapping[str, Any], i: int, name: str, default: Any) -> Any:
    return args[i] if len(args) > i else kwargs.get(name, default)


def _check_repeat(left: Any, right: Any, budget: Budget) -> None:
    for seq, n in ((left, right), (right, left)):
        if isinstance(seq, str | bytes) and isinstance(n, int):
            budget.check_size(len(seq) * n, "The repeated sequence")
        elif isinstance(seq, list | tuple) and isinstance(n, int):
            # counted in depth: ``[a] * 1000`` holds 1000 times all of ``a``
            size = item_count(seq, budget.max_chars) * n
            budget.check_size(size, "The repeated list's items")
    ints = isinstance(left, int) and isinstance(right, int)
    if ints and not isinstance(left, bool) and not isinstance(right, bool):
        digits = (left.bit_length() + right.bit_length()) * 0.30103
        budget.check_size(int(digits), "The number's digits")


def _check_power(left: Any, right: Any, budget: Budget) -> None:
    if isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right > 0:
        digits = right * left.bit_length() * 0.30103
        budget.check_size(int(digits), "The number's digits")


def _replaced_size(text: Any, old: Any, new: Any, count: Any) -> int | None:
    if not (isinstance(text, str | bytes) and type(old) is type(text) and type(new) is type(text)):
        return None
    whole: Any = text
    times = whole.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        times = min(times, count)
    return len(text) + times * (len(new) - len(old))


def _joined(items: Any, separator: Any, budget: Budget) -> list[Any]:
    """The items to join, as a list (an iterator is read once, here), after a size check."""
    listed = list(items)
    sep = len(separator) if isinstance(separator, str | bytes) else 0
    total = sep * len(listed)
    for item in listed:
        total += text_size(item, budget.max_chars)
        if total > budget.max_chars:
            break
    budget.check_size(total, "The joined text")
    return listed


def _check_method(
    obj: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any], budget: Budget
) -> tuple[Any, ...]:
    """Refuse a string method call that would make too much text; ``args`` to call with."""
    owner = getattr(obj, "__self__", None)
    name = getattr(obj, "__name__", "")
    if isinstance(owner, str | bytes | bytearray):
        size = len(owner)
        if name in ("center", "ljust", "rjust", "zfill"):
            width = _arg(args, kwargs, 0, "width", 0)
            if isinstance(width, int):
                budget.check_size(max(width, size), f"The {name}() result")
        elif name == "expandtabs":
            tabsize = _arg(args, kwargs, 0, "tabsize", 8)
            text: Any = owner
            tabs = text.count("\t" if isinstance(owner, str) else b"\t")
            if isinstance(tabsize, int):
                budget.check_size(size + tabs * max(tabsize, 0), "The expandtabs() result")
        elif name == "replace":
            new_size = _replaced_size(
                owner,
                _arg(args, kwargs, 0, "old", None),
                _arg(args, kwargs, 1, "new", None),
                _arg(args, kwargs, 2, "count", -1),
            )
            if new_size is not None:
                budget.check_size(new_size, "The replace() result")
        elif name == "join" and args:
            return (_joined(args[0], owner, budget), *args[1:])
        elif name == "translate" and args and isinstance(args[0], Mapping):
            longest = max(
                (len(v) for v in args[0].values() if isinstance(v, str | bytes)), default=1
            )
            budget.check_size(size * max(longest, 1), "The translate() result")
    elif isinstance(owner, int) and name == "to_bytes":
        length = _arg(args, kwargs, 0, "length", 1)
        if isinstance(length, int):
            budget.check_size(length, "The to_bytes() result")
    return args


# -- filters --------------------------------------------------------------------------


def _check_filter(
    name: str, value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any], budget: Budget
) -> Any:
    """Refuse a filter call that would make too much; the value to call it with."""
    limit = budget.max_chars
    if name in _STRINGIFYING:
        budget.check_size(text_size(value, limit), f"The text of the value given to |{name}")
    if name == "center":
        width = _arg(args, kwargs, 0, "width", 80)
        if isinstance(width, int):
            budget.check_size(width, "The centered text")
    elif name == "indent":
        width = _arg(args, kwargs, 0, "width", 4)
        per_line = len(width) if isinstance(width, str) else width
        lines = str(value).count("\n") + 1 if isinstance(value, str) else 1
        if isinstance(per_line, int):
            budget.check_size(text_size(value, limit) + lines * per_line, "The indented text")
    elif name == "format":
        check_percent(value, dict(kwargs) or tuple(args), budget)
    elif name == "replace":
        new_size = _replaced_size(
            value,
            _arg(args, kwargs, 0, "old", None),
            _arg(args, kwargs, 1, "new", None),
            _arg(args, kwargs, 2, "count", None),
        )
        if new_size is not None:
            budget.check_size(new_size, "The replaced text")
    elif name == "join":
        return _joined(value, _arg(args, kwargs, 0, "d", ""), budget)
    elif name in ("batch", "slice"):
        count = _arg(args, kwargs, 0, "linecount" if name == "batch" else "slices", 1)
        if isinstance(count, int):
            budget.check_size(count, f"The |{name} result")
    elif name == "wordwrap":
        width = _arg(args, kwargs, 0, "width", 79)
        wrap = _arg(args, kwargs, 2, "wrapstring", None)
        if isinstance(width, int) and isinstance(wrap, str) and isinstance(value, str):
            lines = len(value) // max(width, 1) + value.count("\n") + 1
            budget.check_size(len(value) + lines * len(wrap), "The wrapped text")
    elif name == "round":
        precision = _arg(args, kwargs, 0, "precision", 0)
        if isinstance(precision, int):
            budget.check_size(abs(precision), "The rounded number's digits")
    elif name == "sum":
        start = _arg(args, kwargs, 1, "start", 0)
        if not isinstance(start, int | float):
            listed = list(value)
            total = text_size(listed, limit)
            budget.check_size(total * max(len(listed), 1) // 50, "Summing these sequences")
            return listed
    return value


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` counting a step and checking sizes before and after."""
    # A filter marked pass_context/pass_environment gets that object first.
    first = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0

    @functools.wraps(func)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        budget = current_budget()
        budget.step()
        if len(args) > first:
            value = _check_filter(name, args[first], args[first + 1 :], kwargs, budget)
            args = (*args[:first], value, *args[first + 1 :])
        result = func(*args, **kwargs)
        if isinstance(result, str):
            budget.check_size(len(result), f"The |{name} result")
        return result

    return bounded


def bounded_environment() -> BoundedSandbox:
    """A new bounded sandbox (templates.py keeps one)."""
    return BoundedSandbox()
