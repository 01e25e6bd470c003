"""Every row of the bad-input catalogue, run through its surface.

Each must give the typed error (a ``pl_magic.core.errors`` class, or a usage error from the
magics' or the CLI's argument parsing), as one line that names the fix, before any provider
call, with nothing logged as a success. A sample of the notebook rows also runs in a real
kernel, which must still execute ``1 + 1`` afterwards.
"""

from __future__ import annotations

import html
import re
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError as IPythonUsageError

import pl_magic
from pl_magic.core import errors
from pl_magic.surfaces import cli
from tests import conftest
from tests.fakes.provider_server import PROVIDER_KINDS
from tests.helpers import runs
from tests.reliability import catalogue
from tests.reliability.catalogue import CASES, KINDS, SURFACES, Case

DOCS = Path(__file__).resolve().parents[2] / "docs" / "errors.md"


def _error_class(case: Case) -> type[BaseException]:
    if case.error == "UsageError":
        return cli.UsageError if case.surface == "cli" else IPythonUsageError
    cls = getattr(errors, case.error, None)
    assert cls is not None, f"{case.error} is not a class of pl_magic.core.errors"
    return cls


def _check_error(
    case: Case, exc: BaseException | None, shown: str, message: str | None = None
) -> None:
    """The typed error, one line naming the fix; remembered for the secrets audit.
    ``message``: what the person reads, when the surface prints it (default: the error's)."""
    assert exc is not None, f"{case.id}: no error"
    conftest.audit_text(str(exc))
    conftest.audit_text(shown)
    assert isinstance(exc, _error_class(case)), f"{case.id}: {type(exc).__name__}: {exc}"
    assert isinstance(exc, errors.PlMagicError | IPythonUsageError | cli.UsageError)
    message = str(exc) if message is None else message
    assert "\n" not in message and "\r" not in message, f"{case.id}: {message!r}"
    assert len(message) < 600, f"{case.id}: a {len(message)}-character message"
    assert case.fix in message, f"{case.id}: {message!r} does not say {case.fix!r}"
    assert "Traceback" not in shown, f"{case.id}: a traceback was shown: {shown[:500]}"


def _run_api(case: Case) -> None:
    with pytest.raises(Exception) as info:
        exec(case.input, {"pl_magic": pl_magic})
    _check_error(case, info.value, "")


def _run_magic(case: Case, ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    result = ip.run_cell(case.input)
    out, err = capsys.readouterr()
    exc = result.error_before_exec or result.error_in_exec
    _check_error(case, exc, out + err)
    if isinstance(exc, errors.PlMagicError):
        rendered = exc._render_traceback_()  # type: ignore[attr-defined]
        assert len(rendered) == 1 and "\n" not in rendered[0], rendered
        assert case.fix in rendered[0]
    shown = [line for line in (out + err).splitlines() if "Error" in line]
    assert len(shown) == 1, f"{case.id}: the cell showed {out + err!r}"


_TAGS = re.compile(r"<[^>]+>")


def _run_widget(case: Case) -> None:
    namespace: dict[str, Any] = {"pl_magic": pl_magic}
    exec(case.input, namespace)
    form = namespace["form"]
    status = html.unescape(_TAGS.sub("", form.status.value)).strip()
    assert "pl-magic-error" in form.status.value
    assert str(form.last_error) == status
    _check_error(case, form.last_error, status)
    assert form.reply.value == "", "a failure before the call shows no reply"
    assert not form.run_button.disabled, "the form is ready for the next run"


def _run_cli(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    for name, text in case.files:
        (tmp_path / name).write_text(text, encoding="utf-8")
    handled: list[BaseException | None] = []
    real_err = cli._err

    def spy(text: str) -> None:  # the exception main() is handling when it reports it
        handled.append(sys.exc_info()[1])
        real_err(text)

    monkeypatch.setattr(cli, "_err", spy)
    argv = shlex.split(case.input)
    assert argv[0] == "pl-magic"
    code = cli.main(argv[1:])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pl-magic: error: "), f"{case.id}: {err!r}"
    assert code == case.exit_code, f"{case.id}: exit {code}: {err!r}"
    assert out == ""
    _check_error(case, handled[-1], err, lines[0].removeprefix("pl-magic: error: "))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(
    case: Case,
    catalogue_prompts: None,
    ip: Any,
    fake_provider: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    pl_home: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in case.env:
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    if case.surface == "run()":
        _run_api(case)
    elif case.surface in ("%%plrun", "%%plprompt"):
        _run_magic(case, ip, capsys)
    elif case.surface == "widget":
        _run_widget(case)
    else:
        _run_cli(case, tmp_path, monkeypatch, capsys)
    assert [r for r in fake_provider.requests if r.kind in PROVIDER_KINDS] == [], (
        f"{case.id}: a provider was called"
    )
    monkeypatch.setenv("PL_MAGIC_HOME", str(pl_home))  # (a row may have pointed it elsewhere)
    assert [r for r in runs() if r["status"] == "ok"] == [], f"{case.id}: logged as a success"


def test_the_catalogue_covers_every_surface_and_kind() -> None:
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES), "ids are unique"
    assert len({(c.surface, c.input, c.env) for c in CASES}) == len(CASES), "inputs are distinct"
    assert {c.surface for c in CASES} == set(SURFACES)
    assert {c.kind for c in CASES} == set(KINDS)
    for case in CASES:
        assert case.surface in SURFACES and case.kind in KINDS, case.id
        assert case.fix.strip(), case.id


def test_docs_errors_md_is_generated_from_the_catalogue() -> None:
    expected = catalogue.markdown()
    assert DOCS.exists(), "run: python -m tests.reliability.catalogue --markdown > docs/errors.md"
    assert DOCS.read_text(encoding="utf-8") == expected, (
        "docs/errors.md is out of date: python -m tests.reliability.catalogue --markdown "
        "> docs/errors.md"
    )
    for case in CASES:
        assert f"`{case.id}`" in expected


# -- a real kernel -------------------------------------------------------------------------

KERNEL_CASES = [c for c in CASES if c.kernel]


def test_notebook_errors_in_a_real_kernel_are_one_line_and_the_kernel_lives(
    catalogue_prompts: None, fake_provider: Any, tmp_path: Path
) -> None:
    from tests.test_notebook_kernel import Kernel

    assert len(KERNEL_CASES) >= 8 and all(not c.env for c in KERNEL_CASES)
    kernel = Kernel(str(tmp_path))
    try:
        reply, _ = kernel.execute("%load_ext pl_magic")
        assert reply["status"] == "ok"
        for case in KERNEL_CASES:
            reply, messages = kernel.execute(case.input, timeout=60)
            assert reply["status"] == "error", f"{case.id}: {reply}"
            assert reply["ename"] == case.error, f"{case.id}: {reply['ename']}: {reply['evalue']}"
            assert case.fix in reply["evalue"] and "\n" not in reply["evalue"], case.id
            shown = [m["content"] for _, m in messages if m["msg_type"] in ("error", "stream")]
            text = "".join(
                "\n".join(c["traceback"]) if "traceback" in c else c["text"] for c in shown
            )
            conftest.audit_text(text)
            assert "Traceback" not in text and text.strip().count("\n") == 0, (
                f"{case.id}: the cell showed {text!r}"
            )
            assert case.fix in text, f"{case.id}: {text!r}"
        reply, messages = kernel.execute("1 + 1")
        assert reply["status"] == "ok"
        results = [m for _, m in messages if m["msg_type"] == "execute_result"]
        assert results and results[0]["content"]["data"]["text/plain"] == "2"
    finally:
        kernel.stop()
    assert [r for r in fake_provider.requests if r.kind in PROVIDER_KINDS] == []
    assert [r for r in runs() if r["status"] == "ok"] == []
