"""How a comparison names its cells: ``provider/model · vN`` (`` (label)`` when the run
asked for a release label; ``v?`` when the version is unknown). ``compare()``'s columns, the
statistics and the diff view (``ui/diff.py`` repeats the rule: ui may not import engine) all
use these names."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


def version_label(df: pd.DataFrame) -> pd.Series:
    """``vN`` per run, with `` (label)`` when it ran by release label."""
    version = df["release_label"].fillna("").astype(str)
    number = df["prompt_version"].astype("string").fillna("?")
    return "v" + number + version.where(version == "", " (" + version + ")")


def cell_label(df: pd.DataFrame) -> pd.Series:
    """``provider/model · vN`` per run: the cell it belongs to."""
    return df["provider"].astype(str) + "/" + df["model"].astype(str) + " · " + version_label(df)
