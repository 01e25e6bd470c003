"""Template text and notices reach a terminal with their control characters escaped: each
runs a terminal IPython (or Python) on a real pseudo-terminal."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import chat, publish
from tests.reliability.test_terminal_and_csv import _command_in_pty, _raw_controls

#: An OSC 52 clipboard write, a screen clear, a C1 CSI and a bell.
HOSTILE = "Hi {name} \x1b]52;c;ZXZpbA==\x07 \x1b[2J\x9b31mred"
HOSTILE_SHOWN = "Hi {name} \\x1b]52;c;ZXZpbA==\\x07 \\x1b[2J\\x9b31mred"

_PLPROMPT = """
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
ip.run_line_magic("load_ext", "pl_magic")
ip.run_line_magic("plprompt", "greet")
ip.run_line_magic("plprompt", "greet --diff 1")
"""


def test_plprompt_and_its_diff_reach_a_terminal_escaped() -> None:
    publish("greet", chat(("user", "Hello {name}")))
    publish("greet", chat(("user", HOSTILE)))
    code, shown = _command_in_pty([sys.executable, "-c", _PLPROMPT])
    assert code == 0, shown
    assert _raw_controls(shown) == [], shown
    # the template twice (--diff shows it too), then the diff's added line
    assert shown.count(HOSTILE_SHOWN) == 3, shown
    assert "\n+" + HOSTILE_SHOWN + "\n" in shown, shown


_NOTICE = "from pl_magic.core import notices; notices.warn({!r})"


def test_a_notice_reaches_a_terminal_escaped_and_a_pipe_as_written() -> None:
    code, shown = _command_in_pty([sys.executable, "-c", _NOTICE.format(HOSTILE)])
    assert code == 0, shown
    assert _raw_controls(shown) == [], shown
    assert shown == f"pl_magic: {HOSTILE_SHOWN}\n", shown
    piped = subprocess.run(
        [sys.executable, "-c", _NOTICE.format(HOSTILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert piped.stderr == f"pl_magic: {HOSTILE}\n"
