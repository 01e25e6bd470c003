"""Crash safety: kill -9 of the kernel in the middle of a 100-run comparison.

Runs are written to the log as each one completes (one short transaction each, WAL), so
what the notebook had shown as done is in the log, every run the log calls ok has its
whole reply, and the file is intact and usable afterwards.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import sqlite3
import time

import pl_magic
from pl_magic.core import config
from tests.helpers import chat, model, publish, runs
from tests.test_notebook_kernel import Kernel

REPLY = "echo: count to three"
_DONE = re.compile(r"^(\d+)/100 runs", re.M)  # the line under the estimate


def test_kill_9_mid_comparison_keeps_every_completed_run(openai_env, fake_provider, tmp_path):
    publish("count", chat(("user", "count to three")), model())
    fake_provider.delay_s = 0.1  # 100 runs, 4 at a time: about 3 s
    kernel = Kernel(str(tmp_path))
    try:
        reply, _ = kernel.execute("%load_ext pl_magic")
        assert reply["status"] == "ok"
        pid = kernel.km.provisioner.process.pid  # type: ignore[union-attr]
        kernel.kc.execute("%plrun count --repeat 100 --concurrency 4")
        shown_done = 0
        deadline = time.monotonic() + 60
        while shown_done < 30 and time.monotonic() < deadline:
            try:
                msg = kernel.kc.get_iopub_msg(timeout=1)
            except queue.Empty:
                continue
            assert msg["msg_type"] != "error", msg["content"]
            if msg["msg_type"] in ("display_data", "update_display_data"):
                match = _DONE.search(msg["content"]["data"].get("text/plain", ""))
                if match:
                    shown_done = max(shown_done, int(match[1]))
        assert shown_done >= 30, "the comparison never got going"
        os.kill(pid, signal.SIGKILL)
        kernel.km.provisioner.process.wait(10)  # type: ignore[union-attr]
    finally:
        kernel.stop()
    answered = fake_provider.final_sent_count

    conn = sqlite3.connect(config.db_path())
    try:
        (check,) = conn.execute("PRAGMA integrity_check").fetchone()
        rows = conn.execute("SELECT status, output, repeat_index FROM runs").fetchall()
    finally:
        conn.close()
    ok = [r for r in rows if r[0] == "ok"]
    print(
        f"\nkilled after {shown_done} runs shown done; {len(ok)} ok rows in the log; "
        f"{answered} streams the server completed"
    )
    assert check == "ok"
    assert {r[0] for r in rows} == {"ok"}, "a killed process logs nothing else"
    assert all(r[1] == REPLY for r in ok), "an ok run has its whole reply"
    assert len({r[2] for r in ok}) == len(ok), "one row per run"
    # every run the notebook showed as done is in the log; none the server did not finish
    assert 0 < shown_done <= len(ok) <= answered < 100

    # the file is usable: read by the DataFrames, written by the next run
    assert len(pl_magic.runs(prompt="count")) == len(ok)
    fake_provider.delay_s = 0
    pl_magic.run("count")
    assert len(runs()) == len(ok) + 1
