"""Input variables as plain data: what a template (and the log) may see of the user's values.

A template comes from a registry that others may edit, so it must not reach the user's
objects: ``{{ doc.write_text('x') }}`` on a ``Path``, or ``{{ df.to_csv('f') }}`` on a
DataFrame, would run their methods. Every input variable is therefore copied into plain
data (what JSON can hold) before any template sees it, by :func:`plain_variables`:

- ``str``, ``int``, ``float``, ``bool`` and ``None`` stay as they are (subclasses become the
  plain type); lists and tuples become new lists, dicts become new dicts (keys must be
  text; number and boolean keys become their ``str()``, as JSON does);
- converted, because it is what a person means: a path (``os.PathLike``) → its text;
  ``datetime``/``date``/``time`` → ``isoformat()``; ``timedelta``, ``UUID`` and
  ``Decimal`` → ``str()`` (a Decimal keeps its exact digits); an ``Enum`` → its value;
  numpy scalars → Python numbers and numpy arrays → lists (``tolist()``); other numbers
  (``Fraction``) → ``float``; a set → a list, sorted when its items can be sorted; pandas'
  missing values (``NaT``, ``NA``) → ``None`` (a DataFrame's rows can be ``inputs``);
- kept as media, at the top level only: bytes and PIL images become a
  :class:`~pl_magic.core.media.MediaValue`, which only a template's media slot takes (see
  :mod:`pl_magic.core.media`); rendered as text, it is refused;
- refused with a one-line :class:`InvalidInputError` naming the variable and the type:
  bytes inside a list or a dict (decode them first), pandas objects (say how the table should read:
  ``df.to_markdown()``, ``df.to_dict("records")``), iterators and generators (a template
  would consume them), values that contain themselves, integers too long for Python to
  write as text (``sys.get_int_max_str_digits()``), and every other object.

One function, so that new kinds of input (images, files as media) are added in one place.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import decimal
import enum
import numbers
import os
import sys
import uuid
from collections.abc import Mapping
from typing import Any

from .errors import InvalidInputError, shown
from .media import MediaValue, input_value

#: Deeper nesting than this is refused (it would only be a mistake, or a trap).
MAX_DEPTH = 100

_SCALARS = (str, bool, int, float, type(None))


def is_missing(value: Any) -> bool:
    """None, NaN (any float kind), pandas' NA and NaT: an empty cell, recognised without
    importing pandas."""
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return True
    try:
        return bool(value != value)  # NaN is the one value unequal to itself
    except (TypeError, ValueError):  # an array-like: not one missing value
        return False


def plain_variables(values: Mapping[str, Any] | None) -> dict[str, Any]:
    """A plain-data copy of ``values`` (see the module's docstring for the rules)."""
    out: dict[str, Any] = {}
    for name, value in (values or {}).items():
        key = name if type(name) is str else _plain_key(name, repr(name), "")
        media = None if type(value) in _SCALARS else input_value(value)
        out[key] = media if media is not None else plain_data(value, key)
    return out


def plain_data(value: Any, name: str = "value") -> Any:
    """``value`` as plain data, or a one-line error naming ``name`` and the type."""
    if type(value) in _SCALARS and type(value) is not int:  # the common case, first and fast
        return value
    return _convert(value, name, name, set(), 0)


def _check_digits(value: int, name: str, path: str) -> int:
    """``value``, or a one-line error when Python cannot write it as text (more digits than
    ``sys.get_int_max_str_digits()``): the template, the log and the request all need it."""
    most = sys.get_int_max_str_digits()
    if most and value.bit_length() > 3 * most and abs(value) >= 10**most:
        where = "" if path == name else f" at {shown(path, 60)[1:-1]}"
        raise InvalidInputError(
            f"Input variable {shown(name, 40)} holds an integer of more than {most:,} digits"
            f"{where}, which Python cannot write as text: pass fewer digits, or raise "
            "sys.set_int_max_str_digits() and pass str(value)"
        )
    return value


def _type_name(value: Any) -> str:
    kind = type(value)
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


def _refuse(value: Any, name: str, path: str, fix: str) -> InvalidInputError:
    where = "" if path == name else f" at {shown(path, 60)[1:-1]}"
    return InvalidInputError(
        f"Input variable {shown(name, 40)} holds a value of type {_type_name(value)}{where}, "
        f"which a template may not use: {fix}"
    )


def _plain_key(key: Any, path: str, name: str) -> str:
    if isinstance(key, str):
        return str.__str__(key)
    if isinstance(key, bool | int | float) or key is None:
        return str(key)
    raise InvalidInputError(
        f"Input variable {shown(name or path, 40)} has a dict key of type {_type_name(key)}: "
        "use text keys"
    )


def _convert(value: Any, name: str, path: str, seen: set[int], depth: int) -> Any:
    if type(value) is int:
        return _check_digits(value, name, path)
    if type(value) in _SCALARS:
        return value
    if depth > MAX_DEPTH:
        raise InvalidInputError(
            f"Input variable {shown(name, 40)} is nested more than {MAX_DEPTH} levels deep: "
            "flatten it"
        )
    if isinstance(value, enum.Enum):
        return _convert(value.value, name, path, seen, depth + 1)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, MediaValue):
        raise InvalidInputError(
            f"Input variable {shown(name, 40)} holds {value}, which only fills a media slot "
            "(an image_url or media_variable block), never text: use it in such a block, or "
            "pass text (for bytes of text: value.decode())"
        )
    if isinstance(value, bytes | bytearray | memoryview):
        raise _refuse(value, name, path, "decode it to text first, e.g. value.decode()")
    if isinstance(value, int):
        return _check_digits(int(value), name, path)
    if isinstance(value, float):
        return float(value)
    numpy_item = _numpy_item(value)
    if numpy_item is not _NOT_NUMPY:
        return _convert(numpy_item, name, path, seen, depth + 1)
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, numbers.Integral):
        return _check_digits(int(value), name, path)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, os.PathLike):
        path_text = os.fspath(value)
        if isinstance(path_text, bytes):
            raise _refuse(value, name, path, "pass it as text, e.g. os.fsdecode(value)")
        return path_text
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat()
    if isinstance(value, _dt.timedelta | uuid.UUID | complex):
        return str(value)
    if type(value).__module__.partition(".")[0] == "pandas":
        if type(value).__name__ in ("NaTType", "NAType"):
            return None  # a missing value in a DataFrame row
        raise _refuse(
            value,
            name,
            path,
            'pass the text you mean, e.g. df.to_markdown() or df.to_dict("records")',
        )
    if isinstance(value, Mapping | list | tuple | set | frozenset):
        if id(value) in seen:
            raise InvalidInputError(
                f"Input variable {shown(name, 40)} contains itself (at {shown(path, 60)[1:-1]}): "
                "pass a copy without the cycle"
            )
        seen.add(id(value))
        try:
            if isinstance(value, Mapping):
                return {
                    (k2 := _plain_key(k, path, name)): _convert(
                        v, name, f"{path}[{k2!r}]", seen, depth + 1
                    )
                    for k, v in value.items()
                }
            items = [
                _convert(v, name, f"{path}[{i}]", seen, depth + 1) for i, v in enumerate(value)
            ]
        finally:
            seen.discard(id(value))
        if isinstance(value, set | frozenset):
            with contextlib.suppress(TypeError):  # mixed types: kept in the set's order
                items.sort()
        return items
    raise _refuse(
        value, name, path, "pass text, numbers, lists or dicts (e.g. str(value) if that is meant)"
    )


_NOT_NUMPY = object()


def _numpy_item(value: Any) -> Any:
    """A numpy scalar's Python value, or an array's nested lists; ``_NOT_NUMPY`` otherwise."""
    if type(value).__module__.partition(".")[0] != "numpy":
        return _NOT_NUMPY
    tolist = getattr(value, "tolist", None)
    return tolist() if callable(tolist) else _NOT_NUMPY
