"""Where pl_magic keeps its files, and settings read from the environment.

Provider credentials are read by the providers themselves (see ``providers/``);
this module only knows about pl_magic's own settings.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
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


def adaptive_concurrency() -> bool:
    """Whether calls are paced by what the providers' answers say of their rate limits
    (``PL_MAGIC_ADAPTIVE_CONCURRENCY``: on unless ``0``, ``false``, ``no`` or ``off``)."""
    value = os.environ.get("PL_MAGIC_ADAPTIVE_CONCURRENCY")
    return not value or value.strip().lower() not in ("0", "false", "no", "off")


def template_max_chars() -> int:
    """Characters a run's rendered template may have (``PL_MAGIC_TEMPLATE_MAX_CHARS``);
    a jinja2 render may also take twice as many steps."""
    return max(1, env_int("PL_MAGIC_TEMPLATE_MAX_CHARS", 1_000_000))


def template_timeout_s() -> float:
    """Seconds a run's template may take to render (``PL_MAGIC_TEMPLATE_TIMEOUT``)."""
    value = env_float("PL_MAGIC_TEMPLATE_TIMEOUT", 5.0)
    return value if value > 0 else 5.0


def log_max_variable_chars() -> int:
    """Characters of one input variable kept in the run log (``PL_MAGIC_LOG_MAX_VARIABLE_CHARS``);
    a longer value is cut and marked there (the provider still gets all of it)."""
    return max(100, env_int("PL_MAGIC_LOG_MAX_VARIABLE_CHARS", 64_000))


#: Origins trusted with provider keys from ``%config PlMagic.trusted_base_urls`` (the
#: environment's ``PL_MAGIC_TRUSTED_BASE_URLS`` is read at each run).
_trusted_base_urls: tuple[str, ...] = ()


def set_trusted_base_urls(urls: Sequence[str]) -> None:
    """Trust these origins with provider keys besides ``PL_MAGIC_TRUSTED_BASE_URLS``
    (what ``%config PlMagic.trusted_base_urls`` sets)."""
    global _trusted_base_urls
    _trusted_base_urls = tuple(str(url) for url in urls)


def trusted_base_urls() -> list[tuple[str, str]]:
    """``(setting, entry)`` for every origin the user trusts with provider keys: the
    comma-separated ``PL_MAGIC_TRUSTED_BASE_URLS`` and ``%config PlMagic.trusted_base_urls``."""
    entries = [
        ("PL_MAGIC_TRUSTED_BASE_URLS", part.strip())
        for part in os.environ.get("PL_MAGIC_TRUSTED_BASE_URLS", "").split(",")
        if part.strip()
    ]
    entries += [("PlMagic.trusted_base_urls", url.strip()) for url in _trusted_base_urls]
    return entries


#: Where the module-level API and the magics find prompts (``%config PlMagic.registry``):
#: "auto" is PromptLayer when ``PROMPTLAYER_API_KEY`` is set, the embedded registry otherwise.
#: Kept here, not in the client, so that ``%load_ext`` sets it without loading the engine.
REGISTRY_BACKENDS = ("auto", "local", "promptlayer")
_registry_backend = "auto"


def set_registry_backend(backend: str) -> None:
    """Choose the default client's registry: one of :data:`REGISTRY_BACKENDS`."""
    from .errors import ConfigurationError

    global _registry_backend
    if backend not in REGISTRY_BACKENDS:
        raise ConfigurationError(
            f"registry must be one of {', '.join(REGISTRY_BACKENDS)}, not {backend!r}"
        )
    _registry_backend = backend


def registry_backend() -> str:
    """The default client's registry choice (see :func:`set_registry_backend`)."""
    return _registry_backend


#: The replay cache's modes (see :mod:`pl_magic.engine.replay`): ``off`` and ``record`` call
#: the model every time; ``replay`` serves a run recorded in the log when there is one and
#: calls the model otherwise; ``replay-only`` never calls a model (a miss is an error).
CACHE_MODES = ("off", "record", "replay", "replay-only")
#: ``%config PlMagic.cache`` (or :func:`set_cache_mode`); None: ``PL_MAGIC_CACHE`` decides.
_cache_mode: str | None = None


def check_cache_mode(mode: object, setting: str = "cache") -> str:
    """``mode`` if it is one of :data:`CACHE_MODES`, else a one-line InvalidInputError."""
    from .errors import InvalidInputError

    text = mode.strip().lower() if isinstance(mode, str) else mode
    if text not in CACHE_MODES:
        raise InvalidInputError(f"{setting} must be one of {', '.join(CACHE_MODES)}, not {mode!r}")
    return str(text)


def set_cache_mode(mode: str | None) -> None:
    """Set the process-wide cache mode (what ``%config PlMagic.cache`` sets); None goes back
    to ``PL_MAGIC_CACHE`` (default ``off``)."""
    global _cache_mode
    _cache_mode = None if mode is None else check_cache_mode(mode)


def cache_mode() -> str:
    """The process-wide cache mode: :func:`set_cache_mode`'s, else ``PL_MAGIC_CACHE``'s, else
    ``off``. A bad ``PL_MAGIC_CACHE`` is a one-line error naming the valid modes."""
    if _cache_mode is not None:
        return _cache_mode
    raw = os.environ.get("PL_MAGIC_CACHE", "").strip()
    return check_cache_mode(raw, "PL_MAGIC_CACHE") if raw else "off"
