"""How a comparison names its cells, for a whole DataFrame of runs: the rule of
:func:`pl_magic.core.cell_names.cell_name` (``provider/model · vN``, `` (label)`` when the
run asked for a release label, ``v?`` when the version is unknown), applied once per
distinct model · version. ``compare()``'s columns, the statistics, the live grid and the
diff view (``ui/diff.py``) all use these names."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

from ..core.cell_names import cell_name, version_name
from ..core.plain_data import is_missing

if TYPE_CHECKING:
    import pandas as pd

    from .batch import Batch, PlannedRun


def _named(df: pd.DataFrame, keys: Iterable[tuple[Any, ...]], name: Callable[..., Any]) -> Any:
    """A Series of ``name(*key)`` per row, each distinct key named once."""
    import pandas as pd

    names: dict[tuple[Any, ...], Any] = {}
    out = []
    for key in keys:
        try:
            found = names[key]
        except KeyError:
            found = names[key] = name(*key)
        except TypeError:  # an unhashable value (a list in a label column): named each time
            found = name(*key)
        out.append(found)
    return pd.Series(out, index=df.index, dtype="string")


def version_label(df: pd.DataFrame) -> pd.Series:
    """``vN`` per run, with `` (label)`` when it ran by release label."""
    return _named(df, zip(df["prompt_version"], df["release_label"], strict=True), version_name)


def _cell_or_missing(provider: Any, model: Any, version: Any, label: Any) -> str | None:
    if is_missing(provider) or is_missing(model):
        return None  # nothing says which model: compare() places the run by its version
    return cell_name(model, version, label, provider)


def cell_label(df: pd.DataFrame) -> pd.Series:
    """``provider/model · vN`` per run: the cell it belongs to (missing when the run has no
    provider or model)."""
    keys = zip(df["provider"], df["model"], df["prompt_version"], df["release_label"], strict=True)
    return _named(df, keys, _cell_or_missing)


class PlannedCell(NamedTuple):
    """A planned run's cell: its name and the template version it is expected to run."""

    name: str
    #: None when the template could not be read (the runs will say why).
    version: int | None


def planned_cells(batch: Batch) -> list[PlannedCell]:
    """Each planned run's cell, named as ``compare()`` will name it once it ran
    (``openai/gpt-4o-mini · v3 (prod)``): the template each distinct version × model asks
    for is read once (:meth:`Engine.describe <pl_magic.engine.engine.Engine.describe>`: no
    render, no call). A cell that cannot be read names what was asked (``— · v2`` when no
    model was given); its runs will fail and say why. A release label split across versions
    (PromptLayer's A/B) is named by the version it points at when asked here."""
    cells: dict[tuple[Any, ...], PlannedCell] = {}
    out = []
    for planned in batch.runs:
        key = (planned.version, planned.label, planned.provider, planned.model)
        if key not in cells:
            cells[key] = _planned_cell(batch, planned)
        out.append(cells[key])
    return out


def _planned_cell(batch: Batch, planned: PlannedRun) -> PlannedCell:
    try:
        options = batch.options_of(planned)
        provider, model, version = batch.engine.describe(options)
    except Exception:  # naming a row never stops a comparison: its runs report the error
        name = cell_name(planned.model, planned.version, planned.label, planned.provider)
        return PlannedCell(name, None)
    return PlannedCell(cell_name(model, version, planned.label, provider), version)
