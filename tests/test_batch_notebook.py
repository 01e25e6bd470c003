"""Batch mode in a real kernel (nbclient): a job outlives the kernel that submitted it.

The kernel runs ``%plrun ... --batch`` against the fake provider server (the test process
holds it, and holds the batch in progress with its ``processing_polls`` knob); the kernel is
shut down while it waits; a new kernel runs the same cell again, attaches to the job from
the run log alone, and fills the DataFrame once the batch ends.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError

from tests.helpers import chat, model, publish, runs

BATCH_CELL = "%plrun greet --inputs people --batch --out df"
CELLS = (
    "%load_ext pl_magic",
    "people = [{'name': 'Ada'}, {'name': 'Bo'}, {'name': 'Cy'}]",
    BATCH_CELL,
    "print(len(df), 'runs,', (df['status'] == 'ok').sum(), 'ok'); print(df['output'].tolist())",
)


@pytest.fixture
def greet(openai_env, monkeypatch):
    monkeypatch.setenv("PL_MAGIC_BATCH_POLL_S", "0.05")
    monkeypatch.setenv("PL_MAGIC_BATCH_POLL_MAX_S", "0.2")
    publish("greet", chat(("user", "hi {name}")), model())


def _notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
    return nb


def _client(nb: nbformat.NotebookNode, cwd) -> NotebookClient:
    return NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    )


def _stream(cell, name: str = "stdout") -> str:
    return "".join(o["text"] for o in cell.outputs if o.get("name") == name)


def test_a_batch_job_survives_a_kernel_restart_and_the_same_cell_attaches(
    greet, fake_provider, tmp_path
):
    batches = fake_provider.batches
    batches.processing_polls = 10**9  # held in progress, across the restart

    first = _notebook()
    client = _client(first, tmp_path)
    with client.setup_kernel():
        for index in range(2):
            client.execute_cell(first.cells[index], index)
        probe = nbformat.v4.new_code_cell("import os; print(os.getpid())")
        client.execute_cell(probe, 0)
        pid = int(_stream(probe))

        def shut_down_once_polled() -> None:
            # the kernel is waiting on the job (polling it): stopped hard, mid-job
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and len(batches.calls_of("openai", "retrieve")) < 3:
                time.sleep(0.05)
            os.kill(pid, signal.SIGKILL)

        killer = threading.Thread(target=shut_down_once_polled)
        killer.start()
        with pytest.raises(DeadKernelError):
            client.execute_cell(first.cells[2], 2)
        killer.join()

    (job,) = batches.submitted("openai")
    assert len(job.requests) == 3
    assert runs() == []  # nothing ingested: the batch never ended while the kernel lived
    import pl_magic

    listed = pl_magic.batches()
    assert list(listed["status"]) == ["running"] and listed["pending"][0] == 3
    assert job.id in listed["provider_jobs"][0]  # the provider's id was kept at once

    batches.processing_polls = 0  # the provider finishes while no kernel is running
    second = _notebook()
    _client(second, tmp_path).execute()
    assert "attached to batch job" in _stream(second.cells[2], "stderr")
    printed = _stream(second.cells[3])
    assert printed.startswith("3 runs, 3 ok")
    assert "echo: hi Ada" in printed and "echo: hi Cy" in printed
    assert len(batches.submitted()) == 1  # never submitted again
    assert len(runs()) == 3 and {r["batch_id"] for r in runs()} == {listed["job_id"][0]}


# -- notebooks/batch.ipynb ------------------------------------------------------------------------

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "batch.ipynb"


def _cell(nb: nbformat.NotebookNode, starts: str) -> nbformat.NotebookNode:
    (found,) = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith(starts)]
    return found


def test_the_batch_notebook_submits_real_batches_to_the_fake_provider(
    openai_env, fake_provider, monkeypatch, tmp_path, pl_home
):
    """With a hosted model's key set (here OpenAI's, pointed at the fake), the notebook's
    comparison goes as provider batches, attaches when run again, and lists its jobs."""
    from pl_magic.core import local_target
    from pl_magic.providers import local as local_model

    monkeypatch.setenv("PL_MAGIC_STARTERS", "1")
    # (not pointed at the fake: the local-model prompts run on OpenAI when asked for its model)
    monkeypatch.delenv(local_target.ENV_BASE_URL, raising=False)
    monkeypatch.setenv("PL_MAGIC_BATCH_POLL_S", "0.05")
    fake_provider.batches.processing_polls = 2
    nb = nbformat.read(NOTEBOOK, as_version=4)
    _client(nb, tmp_path).execute()
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            assert out["output_type"] != "error", (cell.source, out.get("evalue"))

    assert "models: ['openai/gpt-4o-mini']" in _stream(_cell(nb, "hosted = "))
    submitted = _cell(nb, "df = pl_magic.run_many")
    assert "8 runs in batch job b" in _stream(submitted)
    table = "".join(o["data"].get("text/html", "") for o in submitted.outputs if "data" in o)
    assert table.count(">ok<") == 8 and "echo: What is the capital of Kenya?" in table
    again = _cell(nb, "again = pl_magic.run_many")
    assert "same runs: True" in _stream(again)
    assert "attached to batch job" in _stream(again, "stderr")
    assert "8 runs, 8 ok" in _stream(_cell(nb, "job = pl_magic.run_many"))
    # two jobs (the comparison, attached to once; and the wait=False one), all batched
    jobs = fake_provider.batches.submitted("openai")
    assert [len(j.requests) for j in jobs] == [8, 8]
    assert fake_provider.requests_for("openai.chat") == []
    assert local_model.read_state(pl_home) is None  # the local model never started
    listing = _cell(nb, "pl_magic.batches()")
    (html,) = [o["data"]["text/html"] for o in listing.outputs if "data" in o]
    assert html.count(">done<") == 2


def test_the_kernels_interrupt_stops_the_waiting_not_the_job(greet, fake_provider, tmp_path):
    from tests.test_notebook_kernel import Kernel

    batches = fake_provider.batches
    batches.processing_polls = 10**9
    kernel = Kernel(str(tmp_path))
    try:
        reply, _ = kernel.execute(f"%load_ext pl_magic\n{CELLS[1]}")
        assert reply["status"] == "ok"
        sent: list[float] = []

        def interrupt_once_polling(msg: dict) -> None:
            polled = len(batches.calls_of("openai", "retrieve")) >= 2
            if not sent and polled and msg["msg_type"] in ("display_data", "update_display_data"):
                kernel.km.interrupt_kernel()
                sent.append(time.monotonic())

        reply, messages = kernel.execute(BATCH_CELL, on_message=interrupt_once_polling)
        assert sent and reply["status"] == "ok"  # the cell ends with what it has
        stderr = "".join(
            m["content"]["text"]
            for _, m in messages
            if m["msg_type"] == "stream" and m["content"]["name"] == "stderr"
        )
        assert "stopped waiting: batch job" in stderr and "keeps running" in stderr
        reply, messages = kernel.execute("print(df['status'].tolist(), df['batch_id'][0])")
        printed = "".join(m["content"]["text"] for _, m in messages if m["msg_type"] == "stream")
        assert printed.startswith("['pending', 'pending', 'pending'] b")
        job_id = printed.split()[-1]
        assert len(batches.calls_of("openai", "cancel")) == 0  # the job goes on

        batches.processing_polls = 0
        reply, messages = kernel.execute(
            f"import pl_magic; print(pl_magic.wait({job_id!r})['output'].tolist())"
        )
        printed = "".join(m["content"]["text"] for _, m in messages if m["msg_type"] == "stream")
        assert "['echo: hi Ada', 'echo: hi Bo', 'echo: hi Cy']" in printed
    finally:
        kernel.stop()
    assert len(batches.submitted()) == 1 and len(runs()) == 3
