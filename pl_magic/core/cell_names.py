"""How a comparison names its cells: ``provider/model · vN``, `` (label)`` after it when the
run asked for a release label, ``v?`` when the version is unknown.

The one rule behind ``compare()``'s columns, the statistics, the diff view, the live grid of
``%%plrun --versions/--models`` and the compact runs table (:mod:`pl_magic.engine.labels`
applies it to a whole DataFrame). It sits in the core because the ui layer, which may not
import the engine, names cells too.
"""

from __future__ import annotations

from typing import Any

from .plain_data import is_missing

#: What stands for the model of a cell whose model is not known (nothing reached a model).
UNKNOWN_MODEL = "—"


def version_name(version: Any, label: Any = None) -> str:
    """``v3``, ``v3 (prod)``, or ``v? (prod)`` when the version is not known."""
    if is_missing(version):
        number = "?"
    elif isinstance(version, float) and version.is_integer():
        number = str(int(version))  # a version column with a missing value holds floats
    else:
        number = str(version)
    tag = "" if is_missing(label) or str(label) == "" else f" ({label})"
    return f"v{number}{tag}"


def cell_name(model: Any, version: Any, label: Any = None, provider: Any = None) -> str:
    """``provider/model · v3 (prod)``; ``model · v3`` without a provider; ``— · v3`` when
    the model is not known."""
    if is_missing(model):
        return f"{UNKNOWN_MODEL} · {version_name(version, label)}"
    cell = str(model) if provider is None or is_missing(provider) else f"{provider}/{model}"
    return f"{cell} · {version_name(version, label)}"
