"""What people type, understood: prompt targets, ``k=v`` options and YAML cell bodies.

Shared by the surfaces (the magics, the widget, the CLI) so they read input the same way.
Every YAML they read goes through :func:`load_yaml`: YAML's anchors and aliases let a few
hundred bytes expand into gigabytes (an "alias bomb"), so they are refused, as is nesting
too deep for the parser.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

from .errors import InvalidInputError


class YAMLAliasError(yaml.composer.ComposerError):
    """The YAML uses an anchor (``&name``) or an alias (``*name``)."""


class YAMLTooDeepError(yaml.YAMLError):
    """The YAML is nested deeper than the parser can follow."""

    problem = "it is nested too deeply, flatten it"
    problem_mark = None


class YAMLNumberTooLongError(yaml.YAMLError):
    """The YAML has an integer longer than Python will read (``sys.get_int_max_str_digits``)."""

    problem = "a number has too many digits for Python, quote it to keep it as text"
    problem_mark = None


class _NoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader without anchors and aliases."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise YAMLAliasError(
                None,
                None,
                "anchors (&name) and aliases (*name) are not allowed, write each value out in full",
                event.start_mark,
            )
        return super().compose_node(parent, index)


def load_yaml(text: str) -> Any:
    """YAML text → data, as ``yaml.safe_load`` but refusing anchors and aliases
    (:class:`YAMLAliasError`), too deep nesting (:class:`YAMLTooDeepError`) and integers
    too long for Python (:class:`YAMLNumberTooLongError`); all are ``yaml.YAMLError`` with a
    ``problem`` and a ``problem_mark``, like PyYAML's own."""
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # (a SafeLoader subclass)
    except RecursionError:
        raise YAMLTooDeepError() from None
    except ValueError:  # int("1" * 5000) refuses: PyYAML does not turn it into its own error
        raise YAMLNumberTooLongError() from None


# NAME, NAME@label, NAME:3, and MLflow's prompts:/NAME@label form.
_TARGET = re.compile(r"^(?:prompts:/)?(?P<name>[^@:]+?)(?:@(?P<label>[^@:]+)|:(?P<version>\d+))?$")


def parse_target(target: str | None) -> tuple[str, int | None, str | None]:
    """``NAME``, ``NAME@label``, ``NAME:3`` → (name, version, label)."""
    if not target:
        raise InvalidInputError("Name the prompt to run: %%plrun NAME (or NAME@label, NAME:3)")
    match = _TARGET.match(target.strip())
    if not match:
        raise InvalidInputError(
            f"Cannot read the prompt {target!r}: write NAME, NAME@label or NAME:3"
        )
    version = int(match["version"]) if match["version"] else None
    return match["name"], version, match["label"]


def parse_pairs(items: list[str] | None, what: str) -> dict[str, Any]:
    """``k=v`` options → a dict; values are parsed as YAML scalars (``0.2`` → 0.2)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise InvalidInputError(f"{what} {item!r} must look like key=value")
        try:
            value = load_yaml(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        out[key.strip()] = value
    return out


def parse_body(cell: str | None) -> dict[str, Any]:
    """The cell body: input variables as a YAML (or JSON) mapping; empty → {}."""
    if not cell or not cell.strip():
        return {}
    try:
        data = load_yaml(cell)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        if isinstance(exc, YAMLAliasError):
            raise InvalidInputError(
                f"The cell body uses a YAML anchor or alias{where}, which pl_magic refuses (a few "
                "bytes of them can expand to gigabytes): write each value out in full"
            ) from None
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise InvalidInputError(
            f"The cell body is not valid YAML{where}: {problem}; write input variables as "
            "`name: value` lines"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise InvalidInputError(
            f"The cell body must be a mapping of input variables, not a {type(data).__name__}: "
            "write `name: value` lines"
        )
    return {str(k): v for k, v in data.items()}


def positive_int(text: str) -> int:
    """A count option (``--concurrency``, ``--limit``): a whole number, 1 or more; else an
    ``argparse.ArgumentTypeError`` that argparse shows as a one-line usage error."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be 1 or more")
    return value
