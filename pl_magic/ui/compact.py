"""Compact display of a DataFrame for a notebook cell, the data left as it is.

``%plprompts`` and ``%plruns`` return DataFrames a person reads first and computes with
second. Shown as pandas shows them, a ``provider/model`` name wraps one fragment per line
and a dict of labels prints raw (``{'prod': 2, 'staging': 3}``). :func:`compact` returns
a frame of the same values and dtypes (``df["labels"]`` is still dicts) whose notebook
and text display writes values the way the CLI and the footer do: labels as
``prod→v2, staging→v3``, lists comma-separated, seconds as ``0.36s``, dollars as the
footer writes them, unknown values as ``—``; cells do not wrap, long text is cut.

Values are escaped in the HTML (``to_html(escape=True)``): a model's output or a
registry's record is text, never markup.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd  # this module is imported only by what already shows a DataFrame

from ..core.plain_data import is_missing
from .footer import DASH, format_cost

#: Characters of a text cell shown (the frame keeps the whole text).
TEXT_LIMIT = 60


def cell_text(value: Any, column: str = "") -> str:
    """One value as a compact, one-line text."""
    if isinstance(value, Mapping):
        if not value:
            return DASH
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value.values()):
            return ", ".join(f"{k}→v{v}" for k, v in value.items())
        return ", ".join(f"{k}={cell_text(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(cell_text(v) for v in value) if value else DASH
    if is_missing(value):
        return DASH
    if column == "cost_usd":
        return format_cost(value)
    if column.endswith("_s") and isinstance(value, int | float):
        return f"{float(value):.2f}s"
    if hasattr(value, "strftime"):
        return str(value.strftime("%Y-%m-%d %H:%M:%S"))
    text = " ".join(str(value).split())
    return text if len(text) <= TEXT_LIMIT else text[: TEXT_LIMIT - 1] + "…"


class CompactFrame(pd.DataFrame):
    """A DataFrame whose display is compact; what it computes (a slice, a sum) is a plain
    DataFrame again, since pandas builds results with ``DataFrame``."""

    def _shown(self) -> pd.DataFrame:
        plain = pd.DataFrame(self)
        out = plain.astype(object).copy()
        for column in out.columns:
            out[column] = [cell_text(v, str(column)) for v in plain[column]]
        return out

    def _repr_html_(self) -> str:
        table = self._shown().to_html(escape=True)
        return f'<div class="pl-magic-compact" style="white-space:nowrap">{table}</div>'

    def __repr__(self) -> str:
        return repr(self._shown())


def compact(df: pd.DataFrame) -> CompactFrame:
    """``df``'s data as a :class:`CompactFrame` (no copy of the values)."""
    return CompactFrame(df)


def _compare_cell(value: Any, row: str) -> str:
    """One value of ``compare()``'s table, formatted by what its row holds."""
    if is_missing(value):
        return DASH
    if isinstance(value, str):  # an output (or an error) is shown whole, as pandas shows it
        return value
    if not isinstance(value, int | float) or isinstance(value, bool):
        return cell_text(value)
    if row.endswith("_s"):
        return f"{float(value):.2f}s"
    if row.endswith("cost_usd"):
        return format_cost(value)
    if row.endswith("tokens"):
        return f"{float(value):,.0f}" if float(value).is_integer() else f"{float(value):,.1f}"
    if row == "error rate":
        return f"{100 * float(value):.0f}%"
    return f"{float(value):.3g}"


class CompareFrame(CompactFrame):
    """``compare()``'s table: seconds, tokens, dollars and rates written for reading, ``—``
    for unknown; :attr:`data` is the same table as a plain DataFrame of numbers."""

    @property
    def data(self) -> pd.DataFrame:
        """The table's values, unformatted (a plain DataFrame)."""
        return pd.DataFrame(self)

    def _shown(self) -> pd.DataFrame:
        plain = pd.DataFrame(self)
        out = plain.astype(object).copy()
        for row in out.index:
            out.loc[row] = [_compare_cell(v, str(row)) for v in plain.loc[row]]
        return out
