"""%%plrun in a real Jupyter kernel: saved outputs (nbclient), display-update rate and
interrupts (jupyter_client), all against the fake provider server over HTTP."""

from __future__ import annotations

import json
import queue
import re
import time
from collections.abc import Iterator
from typing import Any

import nbformat
import pytest
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

import pl_magic
from tests.helpers import chat, model, publish, runs

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


@pytest.fixture
def greet(openai_env):
    publish("greet", chat(("user", "v1 hi {name}")), model())
    publish("greet", chat(("user", "v2 hello {name}")), model())
    pl_magic.set_label("greet", "prod", 2)


def _notebook(*sources: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = KERNELSPEC
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    return nb


def test_notebook_saves_streamed_text_footer_and_comparison_dataframe(greet, tmp_path):
    nb = _notebook(
        "%load_ext pl_magic",
        "%%plrun greet@prod\nname: Ada\n",
        "%%plrun greet --versions 1,prod --repeat 2\nname: Bo\n",
    )
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    nbformat.write(nb, tmp_path / "executed.ipynb")

    (shown,) = nb.cells[1].outputs
    html = shown["data"]["text/html"]
    assert "echo: v2 hello Ada" in html
    assert "greet v2 (prod)" in html and "openai/gpt-4o-mini" in html and "ttft" in html
    assert "▌" not in html  # the final update replaced the streaming view

    result = [o for o in nb.cells[2].outputs if o["output_type"] == "execute_result"]
    table = result[0]["data"]["text/html"]
    assert table.count("echo: v1 hi Bo") == 2 and table.count("echo: v2 hello Bo") == 2
    assert len(runs()) == 5


def test_out_shows_the_grid_and_a_summary_the_frame_shown_is_compact(greet, tmp_path):
    nb = _notebook(
        "%load_ext pl_magic",
        "%%plrun greet --versions 1,prod --models gpt-4o-mini,gpt-4.1-mini --out df\nname: Ada\n",
        "%%plrun greet --versions 1,prod --repeat 2\nname: Bo\n",
        "%%plrun greet --versions 1,prod --models gpt-err-401 --out failed\nname: Cy\n",
    )
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()

    # --out: the grid (rows named as compare() names them) and its summary; no DataFrame
    (grid,) = nb.cells[1].outputs
    assert grid["output_type"] == "display_data"
    html = grid["data"]["text/html"]
    assert ">openai/gpt-4.1-mini · v2 (prod)</th>" in html
    assert re.search(r">4 runs · 4 ok · mean latency \d+\.\d\ds · \$0\.\d+ → df</div>", html)
    assert grid["data"]["text/plain"].splitlines()[-1].startswith("4 runs · 4 ok · ")

    # without --out: the compact runs frame, a few key columns, not two dozen wrapped ones
    (result,) = [o for o in nb.cells[2].outputs if o["output_type"] == "execute_result"]
    table = result["data"]["text/html"]
    assert "pl-magic-compact" in table and '<th style="white-space:nowrap">model · version' in table
    assert "request_id" not in table and "parameters" not in table
    assert table.count("echo: v1 hi Bo") == 2 and table.count("echo: v2 hello Bo") == 2

    # every run failed: a red bar, and the summary leads with the failures and the first error
    (grid,) = nb.cells[3].outputs
    html = grid["data"]["text/html"]
    assert "pl-magic-bar-failed" in html and "pl-magic-bar-ok" not in html
    assert ">2 runs · 2 failed (first: openai auth error (HTTP 401)" in html
    assert 'color:#c62828">2 runs · 2 failed' in html


class Kernel:
    """A kernel with a client, and the iopub messages of each execution."""

    def __init__(self, cwd: str) -> None:
        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(cwd=cwd)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)

    def execute(
        self, code: str, timeout: float = 120, on_message: Any = None
    ) -> tuple[dict[str, Any], list[tuple[float, dict]]]:
        """Run code; return the execute_reply content and timestamped iopub messages."""
        msg_id = self.kc.execute(code)
        messages: list[tuple[float, dict]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                msg = self.kc.get_iopub_msg(timeout=1)
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            messages.append((time.monotonic(), msg))
            if on_message:
                on_message(msg)
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        # the shell channel may still hold an answer to an earlier request (wait_for_ready
        # sends kernel_info_request until one is answered; on a busy machine two are)
        while True:
            reply = self.kc.get_shell_msg(timeout=30)
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply["content"], messages

    def stop(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


@pytest.fixture
def kernel(greet, tmp_path) -> Iterator[Kernel]:
    k = Kernel(str(tmp_path))
    reply, _ = k.execute("%load_ext pl_magic")
    assert reply["status"] == "ok"
    yield k
    k.stop()


def _displayed_text(msg: dict) -> str:
    return msg["content"]["data"].get("text/plain", "")


def test_5000_chunk_stream_is_throttled_and_complete(kernel, fake_provider):
    fake_provider.stream_chunks = [f"{i % 10}" for i in range(5000)]
    reply, messages = kernel.execute("%%plrun greet@prod\nname: Fast\n")
    assert reply["status"] == "ok"
    updates = [(t, m) for t, m in messages if m["msg_type"] == "update_display_data"]
    first = next(t for t, m in messages if m["msg_type"] == "display_data")
    duration = updates[-1][0] - first
    # at most ~20 updates per second of streaming (15/s configured), plus the final one
    print(f"{len(updates)} display updates in {duration:.2f}s of streaming")
    assert len(updates) <= 20 * duration + 2, (len(updates), duration)
    final = _displayed_text(updates[-1][1])
    assert final.startswith("".join(fake_provider.stream_chunks))
    assert "greet v2 (prod)" in final


def test_interrupt_keeps_partial_text_and_logs_cancelled(kernel, fake_provider):
    fake_provider.stream_chunks = [f"w{i} " for i in range(400)]
    fake_provider.chunk_delay_s = 0.02  # an 8-second stream
    sent = []

    def interrupt_once_text_shows(msg: dict) -> None:
        if not sent and msg["msg_type"] == "update_display_data" and "w3 " in _displayed_text(msg):
            kernel.km.interrupt_kernel()
            sent.append(time.monotonic())

    reply, messages = kernel.execute(
        "%%plrun greet@prod\nname: Slow\n", on_message=interrupt_once_text_shows
    )
    assert sent, "the stream never showed text"
    assert reply["status"] == "error" and reply["ename"] == "RunCancelledError"
    last_view = [m for _, m in messages if m["msg_type"] == "update_display_data"][-1]
    shown = _displayed_text(last_view)
    assert shown.startswith("w0 w1 w2 w3 ") and "cancelled" in shown
    (row,) = runs()
    assert row["status"] == "cancelled"
    assert row["output"].startswith("w0 w1 w2 w3 ") and "w399" not in row["output"]
    # the kernel survived
    reply, _ = kernel.execute("1 + 1")
    assert reply["status"] == "ok"
    errors = [m for _, m in messages if m["msg_type"] == "error"]
    assert errors and len(errors[0]["content"]["traceback"]) == 1  # one red line
    assert json.dumps(errors[0]["content"]["traceback"]).count("\\n") == 0
