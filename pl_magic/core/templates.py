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

- it sees input variables only as plain data (:mod:`pl_magic.core.plain_data`), never the
  user's own objects;
- what it renders is bounded, inside the render: at most
  ``PL_MAGIC_TEMPLATE_MAX_CHARS`` characters (default 1,000,000) for a run's whole
  template, at most ``PL_MAGIC_TEMPLATE_TIMEOUT`` seconds (default 5), and at most twice
  as many jinja2 steps (loop iterations, calls, lookups, operators, outputs) as it may
  render characters. Widths and repeat counts are checked before the text is made
  (``'x'|center(10**9)``, ``'%*s' % (10**9, 'x')``, ``'{:>999999999}'.format(x)``, ``'x' *
  10**9``, ``lipsum(10**6)``), and so are the sizes of values turned into text. Going past
  a limit is a one-line :class:`TemplateLimitError` naming the limit and the setting.

A run renders all its messages under one budget (see :mod:`pl_magic.core.render_budget`;
the batch's worker threads use its ``cancel_on`` so that an interrupt stops their rendering
too).
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from .errors import SandboxViolationError, TemplateError, TemplateLimitError, TemplateSyntaxError
from .plain_data import plain_data
from .render_budget import (
    SIZE_SETTING,
    Budget,
    render_budget,
    spec_width,
    text_size,
)

if TYPE_CHECKING:
    import jinja2

FORMATS = ("f-string", "jinja2")
_formatter = string.Formatter()


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
                f"use a smaller width or precision, or raise {SIZE_SETTING}"
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
