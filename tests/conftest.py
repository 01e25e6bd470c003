"""Test-wide setup: the offline safety net, a clean environment per test, fake servers.

The safety net (reference/provider-wire.md §0.7) is applied at import time, before any
SDK is imported, because google-auth reads NO_GCE_CHECK when it is imported. Any request
that escapes towards a real host then fails at once with "connection refused".
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pl_magic.core import config
from tests.fakes.offline import apply_offline_environment

apply_offline_environment()

pytest_plugins = ["tests.fakes.fixtures", "tests.fakes.promptlayer_fixtures"]

#: Every secret value a test put in the environment; checked against the SQLite files last.
SECRETS_SET: list[str] = []
#: Every PL_MAGIC_HOME a test used.
HOMES: list[Path] = []
#: Texts tests captured (error messages, cell output): the audit searches them for keys too.
AUDIT_TEXTS: list[str] = []
#: Directories besides the homes whose files the audit searches (notebooks, logs, artifacts).
AUDIT_DIRS: list[Path] = []


def audit_text(text: str) -> None:
    """Keep ``text`` (an error message, a cell's output) for the final secrets audit."""
    AUDIT_TEXTS.append(text)


def audit_dir(path: Path) -> None:
    """Have the final secrets audit search every file under ``path``."""
    AUDIT_DIRS.append(Path(path))


def new_secret(prefix: str) -> str:
    """A unique fake key; remembered so the last test can prove it never reached a file."""
    value = f"{prefix}{uuid.uuid4().hex}"
    SECRETS_SET.append(value)
    return value


def secret_spellings() -> list[str]:
    """Every spelling of every key the suite set (as is, stripped, escaped, URL-encoded, in
    base64 as in ``user:key``: see ``pl_magic.core.errors.spellings``): what the audit looks for."""
    from pl_magic.core.errors import spellings

    return sorted({s for secret in SECRETS_SET for s in spellings(secret)})


@pytest.fixture(autouse=True)
def pl_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh PL_MAGIC_HOME (registry + run log) for every test."""
    home = tmp_path / "pl_magic_home"
    monkeypatch.setenv("PL_MAGIC_HOME", str(home))
    # Tests start from an empty registry; the starter-prompt tests turn seeding back on.
    monkeypatch.setenv("PL_MAGIC_STARTERS", "0")
    HOMES.append(home)
    yield home
    # Process-wide choices a test made (%config PlMagic.registry / .cache) end with it:
    # the module's setting, and the shared test shell's config that the next load_ext reads.
    config.set_registry_backend("auto")
    config.set_cache_mode(None)
    # What the limiters learnt of the fake's limits (a 429 test's small window) ends too.
    limiter = sys.modules.get("pl_magic.engine.limiter")
    if limiter is not None:
        limiter.reset()
    from IPython import get_ipython

    shell = get_ipython()
    if shell is not None and "PlMagic" in shell.config:
        for name in ("registry", "cache"):
            shell.config.PlMagic.pop(name, None)


@pytest.fixture
def openai_env(fake_provider, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """OPENAI_API_KEY and OPENAI_BASE_URL pointing at the fake server; yields the key."""
    key = new_secret("sk-test-")
    monkeypatch.setenv("OPENAI_API_KEY", key)
    monkeypatch.setenv("OPENAI_BASE_URL", fake_provider.openai_base_url)
    yield key


@pytest.fixture(scope="session")
def shell():
    """IPython's test shell (one per session: IPython allows a single global instance)."""
    from IPython import get_ipython
    from IPython.testing.globalipapp import start_ipython

    return start_ipython() or get_ipython()


@pytest.fixture
def ip(shell, openai_env):
    """The IPython test shell with pl_magic loaded and one-line errors on."""
    shell.run_line_magic("load_ext", "pl_magic")
    shell.run_line_magic("config", "PlMagic.short_errors = True")
    yield shell
    shell.run_line_magic("unload_ext", "pl_magic")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """What passing tests printed (cell output, notices, CLI lines) goes to the audit too.
    (Failures are left out: pytest shows fixture values, keys included, when one fails.)"""
    if report.passed:
        AUDIT_TEXTS.extend(text for _, text in report.sections)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the secrets audit after everything else."""
    items.sort(key=lambda item: item.get_closest_marker("audit_last") is not None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "audit_last: runs after every other test")
