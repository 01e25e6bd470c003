"""pl_magic: run versioned registry prompts from Jupyter.

``import pl_magic`` is kept light: the engine, the provider SDKs, pandas and ipywidgets
load on first use (see ``__getattr__``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .core import __version__ as __version__

# public name -> module that defines it (imported on first access)
_LAZY = {
    "run": "pl_magic.api",
    "arun": "pl_magic.api",
    "run_tools": "pl_magic.api",
    "publish": "pl_magic.api",
    "get_template": "pl_magic.api",
    "set_label": "pl_magic.api",
    "delete_label": "pl_magic.api",
    "prompts": "pl_magic.api",
    "create_group": "pl_magic.api",
    "pin": "pl_magic.api",
    "score": "pl_magic.api",
    "add_metadata": "pl_magic.api",
    "sync": "pl_magic.api",
    "run_many": "pl_magic.api",
    "batches": "pl_magic.api",
    "wait": "pl_magic.api",
    "cancel": "pl_magic.api",
    "runs": "pl_magic.api",
    "compare": "pl_magic.api",
    "significance": "pl_magic.engine.statistics",
    "cell_summary": "pl_magic.engine.statistics",
    "diff": "pl_magic.ui.diff",
    "PromptLayer": "pl_magic.client",
    "AsyncPromptLayer": "pl_magic.async_client",
    "form": "pl_magic.surfaces.widget",
    "review": "pl_magic.surfaces.review",
}

__all__ = [
    "AsyncPromptLayer",
    "PromptLayer",
    "add_metadata",
    "arun",
    "batches",
    "cancel",
    "cell_summary",
    "compare",
    "create_group",
    "delete_label",
    "diff",
    "errors",
    "form",
    "get_template",
    "pin",
    "prompts",
    "publish",
    "review",
    "run",
    "run_many",
    "run_tools",
    "runs",
    "score",
    "set_label",
    "significance",
    "sync",
    "wait",
]

if TYPE_CHECKING:
    from .api import (
        add_metadata,
        arun,
        batches,
        cancel,
        compare,
        create_group,
        delete_label,
        get_template,
        pin,
        prompts,
        publish,
        run,
        run_many,
        run_tools,
        runs,
        score,
        set_label,
        sync,
        wait,
    )
    from .async_client import AsyncPromptLayer
    from .client import PromptLayer
    from .core import errors
    from .engine.statistics import cell_summary, significance
    from .surfaces.review import review
    from .surfaces.widget import form
    from .ui.diff import diff


def load_ipython_extension(ip: Any) -> None:
    """``%load_ext pl_magic``: register the magics (heavy modules still load on first use)."""
    from .surfaces.magics import load

    load(ip)


def unload_ipython_extension(ip: Any) -> None:
    """``%unload_ext pl_magic``: remove the magics."""
    from .surfaces.magics import unload

    unload(ip)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name == "errors":
        return importlib.import_module("pl_magic.core.errors")
    raise AttributeError(f"module 'pl_magic' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
