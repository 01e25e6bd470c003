"""Import cost and the secrets audit that runs after every other test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

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
    finder = _finder(conftest.secret_spellings())
    for path in files:
        found = _first(finder, path.read_bytes().decode("latin-1"))
        assert found is None, f"a key ({found[:8]!r}…) reached {path}"


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
    # One Aho-Corasick pass per text finds any of the spellings: searching each spelling in
    # turn costs keys × spellings × bytes, minutes once the suite sets a thousand keys.
    finder = _finder(spellings)
    for path in sorted(files):
        try:
            data = path.read_bytes()
        except OSError:  # a socket, or a file removed meanwhile
            continue
        found = _first(finder, data.decode("latin-1"))  # byte for byte: spellings are ASCII
        assert found is None, f"a key ({found[:8]!r}…) reached {path}"
    for text in conftest.AUDIT_TEXTS:
        found = _first(finder, text)
        assert found is None, f"a key reached a captured text: {text[:300]!r}"


def _finder(spellings: list[str]) -> Any:
    import ahocorasick

    assert all(s.isascii() for s in spellings)
    automaton = ahocorasick.Automaton()
    for spelling in spellings:
        automaton.add_word(spelling, spelling)
    automaton.make_automaton()
    return automaton


def _first(finder: Any, text: str) -> str | None:
    """The first spelling found in ``text``, or None."""
    for _end, spelling in finder.iter(text):
        return str(spelling)
    return None


def test_the_audit_finder_finds_each_spelling_anywhere():
    finder = _finder(["sk-test-abc", "c2stdGVzdA=="])
    assert _first(finder, "x" * 1000 + "sk-test-abc" + "y") == "sk-test-abc"
    assert _first(finder, b"\xff\x00 c2stdGVzdA== \xfe".decode("latin-1")) == "c2stdGVzdA=="
    assert _first(finder, "sk-test-ab c2stdGVzd") is None
