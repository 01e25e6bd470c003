"""Where pl_magic keeps its files, and settings read from the environment.

Provider credentials are read by the providers themselves (see ``providers/``);
this module only knows about pl_magic's own settings.
"""

from __future__ import annotations

import os
from pathlib import Path

DB_FILENAME = "pl_magic.db"


def home_dir() -> Path:
    """pl_magic's directory: ``$PL_MAGIC_HOME`` or ``~/.pl_magic`` (created if needed)."""
    raw = os.environ.get("PL_MAGIC_HOME") or str(Path.home() / ".pl_magic")
    path = Path(raw).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def db_path() -> Path:
    """The SQLite file that holds the local registry and the run log."""
    return home_dir() / DB_FILENAME


def env_int(name: str, default: int) -> int:
    """An integer from the environment, or ``default`` when unset or not a number."""
    try:
        return int(os.environ.get(name, ""))
    except ValueError:
        return default


def env_float(name: str, default: float) -> float:
    """A float from the environment, or ``default`` when unset or not a number."""
    try:
        return float(os.environ.get(name, ""))
    except ValueError:
        return default


def provider_max_retries() -> int:
    """Retries the provider SDKs make on 429/5xx/connection errors (their own retry logic)."""
    return env_int("PL_MAGIC_MAX_RETRIES", 2)


def provider_timeout_s() -> float:
    """Seconds before a provider request times out."""
    return env_float("PL_MAGIC_TIMEOUT", 600.0)
