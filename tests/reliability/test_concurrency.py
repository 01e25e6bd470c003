"""Two processes, 500 runs each, into one SQLite log at the same time: 1,000 rows, and no
"database is locked" (or any other error) reaching anyone."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from pl_magic.core import config
from tests.helpers import chat, model, publish

ROOT = Path(__file__).resolve().parents[2]
RUNS = 500
THREADS = 4


def _two_processes(runs: int, *extra: str) -> float:
    """Start both at once; check each made every run without an error; the seconds taken."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.reliability.concurrent_runs",
                str(runs),
                str(THREADS),
                tag,
                *extra,
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in ("a", "b")
    ]
    outputs = [p.communicate(timeout=240) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-3000:]
        assert "locked" not in err.lower() and "Traceback" not in err, err[-3000:]
        summary = json.loads(out.strip().splitlines()[-1])
        assert summary["errors"] == [], summary["errors"][:5]
        assert summary["ok"] == runs
    return time.monotonic() - started


def test_two_processes_log_1000_runs_into_one_file(openai_env, fake_provider):
    publish("count", chat(("user", "run {i}")), model())  # creates and migrates the file
    elapsed = _two_processes(RUNS)

    conn = sqlite3.connect(config.db_path())
    try:
        (total,) = conn.execute("SELECT COUNT(*) FROM runs").fetchone()
        by_tag = dict(conn.execute("SELECT tags, COUNT(*) FROM runs GROUP BY tags").fetchall())
        statuses = dict(
            conn.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall()
        )
        (distinct,) = conn.execute("SELECT COUNT(DISTINCT request_id) FROM runs").fetchone()
        (check,) = conn.execute("PRAGMA integrity_check").fetchone()
    finally:
        conn.close()
    print(f"\n2 processes × {RUNS} runs ({THREADS} threads each) in {elapsed:.1f}s")
    assert total == distinct == 2 * RUNS
    assert by_tag == {'["a"]': RUNS, '["b"]': RUNS}
    assert statuses == {"ok": 2 * RUNS}
    assert check == "ok"
    assert len(fake_provider.requests_for("openai.chat")) == 2 * RUNS


def test_two_processes_creating_the_file_at_once(openai_env, fake_provider):
    assert not config.db_path().exists()
    _two_processes(50, "--publish")  # both create, migrate and publish, then run
    conn = sqlite3.connect(config.db_path())
    try:
        (total,) = conn.execute("SELECT COUNT(*) FROM runs WHERE status = 'ok'").fetchone()
        versions = conn.execute("SELECT version FROM prompt_versions ORDER BY version").fetchall()
        migrations = conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT name) FROM _migrations"
        ).fetchone()
    finally:
        conn.close()
    assert total == 100
    assert versions == [(1,), (2,)]
    assert migrations[0] == migrations[1]  # each migration applied once
