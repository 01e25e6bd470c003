"""Import cost and the secrets audit that runs after every other test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests import conftest

HEAVY = ("openai", "anthropic", "google.genai", "pandas", "ipywidgets", "genai_prices", "jinja2")


def test_import_pl_magic_loads_no_heavy_module():
    code = (
        "import sys, pl_magic; pl_magic.run; pl_magic.PromptLayer; "
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.audit_last
def test_no_api_key_value_reached_any_sqlite_file():
    """Every key a test set, searched for in every file of every PL_MAGIC_HOME used."""
    assert conftest.SECRETS_SET, "the suite set no keys: this audit would prove nothing"
    files = [p for home in conftest.HOMES if home.exists() for p in home.rglob("*") if p.is_file()]
    assert any(p.name.startswith("pl_magic.db") for p in files)
    spellings = [s.encode() for s in conftest.secret_spellings()]
    for path in files:
        data = path.read_bytes()
        for secret in spellings:
            assert secret not in data, f"a key ({secret[:8]!r}…) reached {path}"


ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


@pytest.mark.audit_last
def test_no_api_key_value_reached_any_file_log_notebook_or_message(tmp_path_factory):
    """Every key a test set, searched for in every file the suite wrote — the homes, every
    test's temporary directory (saved notebooks, JupyterLab's and the kernels' logs, CSV
    exports, the local model's log), test-artifacts/ — and in every error message and cell
    output the tests captured (including everything passing tests printed). Each key is looked
    for in every spelling: as is, stripped, escaped, URL-encoded and in base64."""
    spellings = conftest.secret_spellings()
    secrets = [s.encode() for s in spellings]
    assert secrets, "the suite set no keys: this audit would prove nothing"
    roots = {*conftest.HOMES, *conftest.AUDIT_DIRS, tmp_path_factory.getbasetemp(), ARTIFACTS}
    files = {p for root in roots if root.exists() for p in root.rglob("*") if p.is_file()}
    suffixes = {p.suffix for p in files}
    print(
        f"\naudit: {len(secrets)} keys, {len(files)} files ({sorted(suffixes)[:20]}...), "
        f"{len(conftest.AUDIT_TEXTS)} captured texts"
    )
    for path in sorted(files):
        try:
            data = path.read_bytes()
        except OSError:  # a socket, or a file removed meanwhile
            continue
        for secret in secrets:
            assert secret not in data, f"a key ({secret[:8]!r}…) reached {path}"
    for text in conftest.AUDIT_TEXTS:
        for spelling in spellings:
            assert spelling not in text, f"a key reached a captured text: {text[:300]!r}"
