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

from ..core.cell_names import cell_name
from ..core.plain_data import is_missing
from .display import NO_MATH
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


def _head_and_tail(frame: pd.DataFrame) -> pd.DataFrame | None:
    """The rows pandas would show of a ``frame`` longer than ``display.max_rows`` (its first
    and last ``display.min_rows``), with a ``…`` row between them; None when it is shown
    whole. Only these rows are formatted: a 100,000-run frame shows at once."""
    max_rows = pd.get_option("display.max_rows")
    if max_rows is None or len(frame) <= max_rows:
        return None
    keep = min(pd.get_option("display.min_rows") or max_rows, max_rows)
    head, tail = frame.iloc[: (keep + 1) // 2], frame.iloc[len(frame) - keep // 2 :]
    return pd.concat([head, tail])


class CompactFrame(pd.DataFrame):
    """A DataFrame whose display is compact; what it computes (a slice, a sum) is a plain
    DataFrame again, since pandas builds results with ``DataFrame``."""

    #: Cells stay on one line (their text is cut at :data:`TEXT_LIMIT`).
    NOWRAP = True
    #: A long frame shows its first and last rows, as pandas shows one.
    TRUNCATE = True

    def _format(self, plain: pd.DataFrame) -> pd.DataFrame:
        """``plain``'s values as the text shown."""
        out = plain.astype(object).copy()
        for column in out.columns:
            out[column] = [cell_text(v, str(column)) for v in plain[column]]
        return out

    def _shown(self) -> pd.DataFrame:
        """The whole table as shown."""
        return self._format(pd.DataFrame(self))

    def _visible(self) -> tuple[pd.DataFrame, bool]:
        """What the display shows: the table, or its first and last rows with a ``…`` row
        between them; and whether it was cut."""
        plain = pd.DataFrame(self)
        cut = _head_and_tail(plain) if self.TRUNCATE else None
        if cut is None:
            return self._format(plain), False
        shown = self._format(cut)
        half = (len(shown) + 1) // 2
        dots = pd.DataFrame([["…"] * len(shown.columns)], columns=shown.columns, index=["…"])
        return pd.concat([shown.iloc[:half], dots, shown.iloc[half:]]), True

    def _size(self) -> str:
        return f"{len(self):,} rows × {len(self.columns)} columns"

    def _repr_html_(self) -> str:
        shown, cut = self._visible()
        table = shown.to_html(escape=True)
        if self.NOWRAP:  # JupyterLab's table style wraps cells: each one is told not to
            for tag in ("<td>", "<th>"):
                table = table.replace(tag, f'{tag[:-1]} style="white-space:nowrap">')
        size = f"<p>{self._size()}</p>" if cut else ""
        return f'<div class="pl-magic-compact {NO_MATH}">{table}{size}</div>'

    def __repr__(self) -> str:
        shown, cut = self._visible()
        return repr(shown) + (f"\n\n[{self._size()}]" if cut else "")


def compact(df: pd.DataFrame) -> CompactFrame:
    """``df``'s data as a :class:`CompactFrame` (no copy of the values)."""
    return CompactFrame(df)


#: The columns a comparison's runs are shown by, after the cell and the inputs (``var.*``);
#: ``error`` only when a run has one. The DataFrame keeps every column.
RUN_COLUMNS = ("repeat", "status", "output", "error", "latency_s", "output_tokens", "cost_usd")


class RunsFrame(CompactFrame):
    """A comparison's runs (``%%plrun --versions/--models`` without ``--out``): every column
    of the runs DataFrame, shown by the ones that tell the runs apart and how they went (the
    cell as ``compare()`` names it, the inputs, repeat, status, output, error, latency,
    tokens, cost, scores), compactly, instead of two dozen columns wrapping."""

    def _key_columns(self, plain: pd.DataFrame) -> pd.DataFrame:
        shown = pd.DataFrame(index=plain.index)
        if {"model", "prompt_version"} <= set(plain.columns):
            missing = pd.Series(None, index=plain.index)
            shown["model · version"] = [
                cell_name(model, version, label, provider)
                for provider, model, version, label in zip(
                    plain.get("provider", missing),
                    plain["model"],
                    plain["prompt_version"],
                    plain.get("release_label", missing),
                    strict=True,
                )
            ]
        names = [str(c) for c in plain.columns]
        wanted = [c for c in names if c.startswith("var.")]
        wanted += [c for c in RUN_COLUMNS if c in names]
        wanted += [c for c in names if c.startswith("score.")]
        errors = self["error"] if "error" in names else None  # the whole frame's, not a part's
        for column in wanted:
            if column != "error" or (errors is not None and not errors.map(is_missing).all()):
                shown[column] = plain[column]
        return shown

    def _format(self, plain: pd.DataFrame) -> pd.DataFrame:
        return super()._format(self._key_columns(plain))

    def _repr_html_(self) -> str:
        shown = len(self._key_columns(pd.DataFrame(self).iloc[:0]).columns)
        note = (
            f'<div style="color:#757575;font-size:0.85em">{len(self):,} runs; {shown} of the '
            f"DataFrame's {len(self.columns)} columns shown (keep it with --out NAME)</div>"
        )
        return super()._repr_html_() + note


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

    NOWRAP = False  # outputs and errors are shown whole: they wrap
    TRUNCATE = False  # its summary rows are at the end: it is shown whole

    @property
    def data(self) -> pd.DataFrame:
        """The table's values, unformatted (a plain DataFrame)."""
        return pd.DataFrame(self)

    def _format(self, plain: pd.DataFrame) -> pd.DataFrame:
        out = plain.astype(object).copy()
        for row in out.index:
            out.loc[row] = [_compare_cell(v, str(row)) for v in plain.loc[row]]
        return out
