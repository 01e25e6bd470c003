"""Import cost and the secrets audit that runs after every other test."""

from __future__ import annotations

import subprocess
import sys

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
    for path in files:
        data = path.read_bytes()
        for secret in conftest.SECRETS_SET:
            assert secret.encode() not in data, f"a key reached {path}"
