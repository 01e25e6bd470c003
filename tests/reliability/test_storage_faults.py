"""The local log file fails after the provider was called (and paid): the reply is not lost.

Real faults, no mocks: a second process holding SQLite's write lock (``BEGIN EXCLUSIVE``), a
real full filesystem (a small tmpfs mounted for the test; needs root, else skipped), and a
database file with a damaged page. Each time the result comes back with a one-line notice
naming the file and why, the run is kept in memory and written at the next chance (the next
run, or the next ``pl_magic.runs()``). A file that cannot be used at all (damaged header,
a directory where the file should be, ``PL_MAGIC_HOME`` that is a file) is a one-line
``ConfigurationError`` before any provider call.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import pl_magic
from pl_magic.core import config
from pl_magic.core.errors import ConfigurationError
from tests.fakes.provider_server import PROVIDER_KINDS
from tests.helpers import chat, model, publish, runs

GREET = chat(("user", "hi {name}"))
MODES = [False, True]
MODE_IDS = ["plain", "stream"]


def _run(stream: bool, name: str = "Ada") -> dict[str, Any]:
    result = pl_magic.run("greet", input_variables={"name": name}, stream=stream)
    return list(result)[-1] if stream else result  # type: ignore[arg-type]


def _reply(result: dict[str, Any]) -> str:
    return result["prompt_blueprint"]["prompt_template"]["messages"][-1]["content"][-1]["text"]


def _notices(err: str) -> list[str]:
    return [line for line in err.splitlines() if "could not be logged" in line]


def _provider_calls(fake_provider: Any) -> int:
    return len([r for r in fake_provider.requests if r.kind in PROVIDER_KINDS])


# -- another process holds the write lock ------------------------------------------------

_HOLDER = textwrap.dedent(
    """
    import sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    print("locked", flush=True)
    sys.stdin.readline()
    conn.execute("ROLLBACK")
    """
)


@pytest.fixture
def lock_holder() -> Iterator[Any]:
    """Start a process that holds the log file's write lock until told to let go."""
    procs: list[subprocess.Popen[str]] = []

    def hold() -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, str(config.db_path())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        return proc

    yield hold
    for proc in procs:
        release(proc)


def release(proc: subprocess.Popen[str]) -> None:
    """Let the holder end its transaction and exit."""
    if proc.poll() is None:
        assert proc.stdin is not None
        proc.stdin.write("\n")
        proc.stdin.flush()
        proc.wait(10)


@pytest.mark.parametrize("stream", MODES, ids=MODE_IDS)
def test_a_locked_log_returns_the_reply_and_writes_it_at_the_next_run(
    openai_env, fake_provider, lock_holder, capsys, stream
):
    publish("greet", GREET, model())
    holder = lock_holder()

    started = time.monotonic()
    result = _run(stream)
    elapsed = time.monotonic() - started

    assert _reply(result) == "echo: hi Ada"  # the reply the provider was paid for
    assert elapsed < 10, elapsed  # the old wait was 60 s, then a raw OperationalError
    (line,) = _notices(capsys.readouterr().err)
    assert str(config.db_path()) in line and "another process holds its write lock" in line
    assert runs() == []  # not in the file yet: kept in memory

    release(holder)
    second = _run(stream, name="Bob")

    rows = runs()
    assert [r["output"] for r in rows] == ["echo: hi Ada", "echo: hi Bob"]
    assert [r["request_id"] for r in rows] == [result["request_id"], second["request_id"]]
    assert _notices(capsys.readouterr().err) == []


def test_a_locked_log_is_written_at_the_next_read_of_runs(openai_env, fake_provider, lock_holder):
    publish("greet", GREET, model())
    holder = lock_holder()
    result = _run(False)
    assert runs() == []

    release(holder)
    df = pl_magic.runs()

    assert list(df["request_id"]) == [result["request_id"]]
    assert list(df["output"]) == ["echo: hi Ada"]
    assert len(runs()) == 1


def test_a_comparison_while_the_log_is_locked_waits_once_and_loses_nothing(
    openai_env, fake_provider, lock_holder, capsys
):
    publish("greet", GREET, model())
    holder = lock_holder()

    started = time.monotonic()
    df = pl_magic.run_many("greet", input_variables={"name": "Ada"}, repeat=6)
    elapsed = time.monotonic() - started

    assert list(df["status"]) == ["ok"] * 6
    assert elapsed < 12, elapsed  # one lock wait, not one per run
    capsys.readouterr()
    release(holder)
    assert len(pl_magic.runs()) == 6


def test_the_promptlayer_backend_still_logs_remotely_while_the_local_file_is_locked(
    openai_env, promptlayer_env, fake_promptlayer, fake_provider, lock_holder, capsys
):
    fake_promptlayer.add_prompt("greet", GREET, model(), labels=["prod"])
    pl_magic.run("greet", input_variables={"name": "Ann"})  # the file exists, with one run
    holder = lock_holder()

    result = _run(False)

    assert result["request_id"] == 102  # PromptLayer has it: the payload came from memory
    assert len(_notices(capsys.readouterr().err)) == 1
    release(holder)
    pl_magic.runs()
    row = runs()[-1]
    assert (row["output"], row["sync_state"], row["remote_request_id"]) == (
        "echo: hi Ada",
        "sent",
        "102",
    )
    assert len(fake_promptlayer.tracked) == 2


# -- a full disk -------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """PL_MAGIC_HOME on a 2 MB tmpfs of its own (mounting needs root: skipped otherwise)."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}): needs root")
    monkeypatch.setenv("PL_MAGIC_HOME", str(mount / "home"))
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(mount: Path) -> Path:
    """Fill the filesystem until the kernel says it is full (ENOSPC)."""
    filler = mount / "filler"
    with open(filler, "wb", buffering=0) as handle:  # unbuffered: nothing left to write at close
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError as exc:
            assert exc.errno == 28, exc  # ENOSPC: really full
    return filler


@pytest.mark.parametrize("stream", MODES, ids=MODE_IDS)
def test_a_full_disk_returns_the_reply_and_writes_it_when_there_is_room(
    openai_env, fake_provider, small_disk, capsys, stream
):
    publish("greet", GREET, model())
    fake_provider.reply_text = "long " * 60_000  # a 300 kB reply: the log needs new pages
    filler = _fill(small_disk)

    result = _run(stream)

    assert _reply(result) == fake_provider.reply_text
    (line,) = _notices(capsys.readouterr().err)
    assert str(config.db_path()) in line and "the disk is full" in line

    filler.unlink()
    df = pl_magic.runs()
    assert list(df["request_id"]) == [result["request_id"]]
    assert runs()[0]["output"] == fake_provider.reply_text


# -- a damaged file ----------------------------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import json, sys
    import pl_magic
    from pl_magic.core import store
    result = pl_magic.run("greet", input_variables={"name": "Ada"}, stream=sys.argv[1] == "1")
    if sys.argv[1] == "1":
        result = list(result)[-1]
    text = result["prompt_blueprint"]["prompt_template"]["messages"][-1]["content"][-1]["text"]
    print(json.dumps({"reply": text, "kept": store.kept_count()}))
    """
)


def _damage_runs_table(db: Path) -> None:
    """Overwrite the page at the root of the ``runs`` table (the registry stays readable)."""
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'runs'").fetchone()
        (size,) = conn.execute("PRAGMA page_size").fetchone()
    finally:
        conn.close()
    with open(db, "r+b") as handle:
        handle.seek((root - 1) * size)
        handle.write(b"\xff" * size)


@pytest.mark.parametrize("stream", MODES, ids=MODE_IDS)
def test_a_damaged_runs_table_returns_the_reply_with_a_notice(openai_env, fake_provider, stream):
    publish("greet", GREET, model())
    pl_magic.run("greet", input_variables={"name": "Ann"})
    _damage_runs_table(config.db_path())
    fake_provider.requests.clear()

    # A process of its own, as a new kernel: nothing of the file is cached in it.
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, "1" if stream else "0"],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ.copy(),
        cwd=str(Path(__file__).resolve().parents[2]),
    )

    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out == {"reply": "echo: hi Ada", "kept": 1}
    (line,) = _notices(done.stderr)
    assert str(config.db_path()) in line and "damaged" in line
    assert "Traceback" not in done.stderr
    assert _provider_calls(fake_provider) == 1


# -- a file that cannot be used at all: an error before any provider call -----------------


def _garbage(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not a SQLite database\n" * 200)


def test_a_damaged_file_is_a_one_line_error_before_the_call(openai_env, fake_provider):
    _garbage(config.db_path())
    with pytest.raises(ConfigurationError) as info:
        pl_magic.run("greet", input_variables={"name": "Ada"})
    message = str(info.value)
    assert "\n" not in message and str(config.db_path()) in message
    assert "is damaged" in message and "move it aside" in message
    assert _provider_calls(fake_provider) == 0


def test_a_damaged_file_with_the_promptlayer_backend_fails_before_the_call(
    openai_env, promptlayer_env, fake_promptlayer, fake_provider
):
    fake_promptlayer.add_prompt("greet", GREET, model(), labels=["prod"])
    _garbage(config.db_path())
    with pytest.raises(ConfigurationError, match="move it aside"):
        pl_magic.run("greet", input_variables={"name": "Ada"})
    assert _provider_calls(fake_provider) == 0
    assert fake_promptlayer.tracked == {}


def test_a_directory_where_the_file_should_be_is_a_one_line_error(openai_env, fake_provider):
    config.db_path().mkdir(parents=True)
    with pytest.raises(ConfigurationError) as info:
        pl_magic.run("greet", input_variables={"name": "Ada"})
    assert str(config.db_path()) in str(info.value) and "PL_MAGIC_HOME" in str(info.value)
    assert _provider_calls(fake_provider) == 0


def test_pl_magic_home_that_is_a_file_is_a_one_line_error(
    openai_env, fake_provider, tmp_path, monkeypatch
):
    home = tmp_path / "home-file"
    home.write_text("not a directory")
    monkeypatch.setenv("PL_MAGIC_HOME", str(home))
    with pytest.raises(ConfigurationError) as info:
        pl_magic.run("greet", input_variables={"name": "Ada"})
    assert str(info.value) == (
        f"PL_MAGIC_HOME ({home}) is not a directory: set PL_MAGIC_HOME to a directory "
        "(pl_magic creates it), or move the file away"
    )
    assert _provider_calls(fake_provider) == 0
