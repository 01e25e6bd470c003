"""The main job's notebook step: execute example notebooks headlessly and save what they made.

    .venv/bin/python scripts/execute_notebooks.py [--out build/notebooks] [NAME ...]

(``./scripts/demo`` runs it for ``quickstart``, ``compare`` and ``evaluate``.) Each notebook
runs top to bottom in a fresh kernel of this Python (nbclient), on whatever pl_magic is
configured to use — with no key, the local registry and the local model. Written to ``--out``:

* ``NAME.ipynb``: the executed copy, with its outputs (and widget state);
* ``NAME.html``: the same, to open in a browser without Jupyter;
* for ``compare``: ``compare.csv`` (the comparison DataFrame ``df``, one row per run) and
  ``compare-chart.png`` (the chart ``pl_magic.compare(df, chart=True)`` drew);
* for ``evaluate``: ``evaluate.csv`` (the scored comparison ``df``, with its ``score.*``
  columns).

Prints the paths and a short summary of what ran. Exit status 1 when a cell fails (the
error, and the executed copy up to it, are kept). Rerunning overwrites the outputs.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
DEFAULT = ("quickstart", "compare", "evaluate")
# Appended to these notebooks for the run (and removed from the saved copy): saves `df`.
EXPORT_CELL = "df.to_csv({path!r}, index=False)"
EXPORTS = ("compare", "evaluate")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _outputs(cell: Any, kind: str = "text/plain") -> list[str]:
    """The ``kind`` data of a cell's displays and results (not its printed streams)."""
    return [o["data"][kind] for o in cell.get("outputs", []) if kind in o.get("data", {})]


def _first_cell(nb: Any, prefix: str) -> Any:
    return next(c for c in nb.cells if c.cell_type == "code" and c.source.startswith(prefix))


def _summary(name: str, nb: Any, out: Path) -> list[str]:
    """A few lines saying what the notebook produced (shown in the terminal)."""
    lines: list[str] = []
    if name == "quickstart":
        cell = _first_cell(nb, "%%plrun")
        shown = _outputs(cell)
        lines.append(f"{cell.source.splitlines()[0]}  →")
        lines += ["    " + ln for ln in (shown[-1] if shown else "(no output)").splitlines()]
    elif name == "compare":
        import pandas as pd

        df = pd.read_csv(out / "compare.csv")
        ok = int((df["status"] == "ok").sum())
        lines.append(
            f"{len(df)} runs ({df['prompt_version'].nunique()} versions × "
            f"{df['var.country'].nunique()} inputs × {df['repeat'].nunique()} repeats), {ok} ok; "
            "mean latency by version: "
            + ", ".join(
                f"v{v} {s:.2f}s"
                for v, s in df.groupby("prompt_version")["latency_s"].mean().items()
            )
        )
    elif name == "evaluate":
        lines.append(_evaluate_summary(nb, out))
    return lines


def _evaluate_summary(nb: Any, out: Path) -> str:
    """Runs, each version's icontains pass rate and the significance verdict, on one line."""
    import pandas as pd

    df = pd.read_csv(out / "evaluate.csv")
    ok = int((df["status"] == "ok").sum())
    version = "v" + df["prompt_version"].astype(str) + " (" + df["release_label"] + ")"
    rates = df.groupby(version, sort=True)["score.icontains"].mean()
    printed = "".join(
        o.get("text", "")
        for o in _first_cell(nb, "result = pl_magic.significance").get("outputs", [])
        if o.get("output_type") == "stream" and o.get("name") == "stdout"
    )
    verdict = printed.splitlines()[0] if printed.strip() else "(no verdict)"
    return (
        f"{len(df)} runs, {ok} ok; icontains pass rate "
        + ", ".join(f"{v} {r:.2f}" for v, r in rates.items())
        + f"; {verdict}"
    )


def execute(name: str, out: Path, timeout: int) -> tuple[bool, list[str]]:
    """Run one notebook; write its executed copy (and exports); (ok, lines to print)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    source = NOTEBOOKS / f"{name}.ipynb"
    nb = nbformat.read(source, as_version=4)
    export = None
    if name in EXPORTS:
        export = nbformat.v4.new_code_cell(EXPORT_CELL.format(path=str(out / f"{name}.csv")))
        nb.cells.append(export)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        store_widget_state=True,
        # A streamed reply printed piece by piece is one output, as the live notebook shows
        # it, not one line of the saved HTML per piece.
        coalesce_streams=True,
        resources={"metadata": {"path": str(out)}},
    )
    started = time.monotonic()
    error = None
    # the kernel process's own log lines (not the cells' output, which is in the notebook)
    log = open(out / f"{name}.kernel.log", "wb")  # noqa: SIM115 - closed below
    try:
        client.execute(stdout=log, stderr=log)
    except CellExecutionError as exc:
        error = ANSI.sub("", str(exc)).strip().splitlines()
    finally:
        log.close()
        if export is not None and export in nb.cells:
            nb.cells.remove(export)
        nbformat.write(nb, out / f"{name}.ipynb")
    took = time.monotonic() - started
    written = [out / f"{name}.ipynb"]
    try:
        from nbconvert import HTMLExporter

        html, _ = HTMLExporter().from_notebook_node(nb)
        (out / f"{name}.html").write_text(html, encoding="utf-8")
        written.append(out / f"{name}.html")
    except ImportError:
        pass
    if error:
        tail = [ln for ln in error if ln.strip()][-6:]
        return False, [f"{name}: a cell failed after {took:.1f}s:", *("    " + t for t in tail)]
    if name == "compare":
        images = [i for c in nb.cells for i in _outputs(c, "image/png")]
        if images:
            (out / "compare-chart.png").write_bytes(base64.b64decode(images[-1]))
            written.append(out / "compare-chart.png")
    if name in EXPORTS:
        written.insert(1, out / f"{name}.csv")
    lines = [f"{name}.ipynb ran in {took:.1f}s"]
    lines += ["  " + ln for ln in _summary(name, nb, out)]
    lines += [f"  wrote {_shown(p)}" for p in written]
    return True, lines


def replay(name: str, out: Path, timeout: int) -> tuple[bool, list[str]]:
    """Execute ``name`` again with ``PL_MAGIC_CACHE=replay-only``: every run is served from
    the run log the first execution wrote, no model is called. Checks that the replies are
    the recorded ones; (ok, lines to print)."""
    import sqlite3

    from pl_magic.core import config
    from pl_magic.core.store import utcnow_iso

    since = utcnow_iso()
    os.environ["PL_MAGIC_CACHE"] = "replay-only"  # the kernel inherits it
    try:
        ok, lines = execute(name, out, timeout)
    finally:
        del os.environ["PL_MAGIC_CACHE"]
    if not ok:
        return False, [f"replaying {name}.ipynb failed:", *lines[1:]]
    with sqlite3.connect(config.db_path()) as db:
        served = db.execute(
            "SELECT s.output = r.output FROM runs s JOIN runs r ON s.cached_from = r.request_id "
            "WHERE s.started_at >= ?",
            (since,),
        ).fetchall()
        called = db.execute(
            "SELECT COUNT(*) FROM runs WHERE cached_from IS NULL AND started_at >= ?", (since,)
        ).fetchone()[0]
    same = all(row[0] for row in served)
    line = (
        f"{name}.ipynb replayed from the run log (PL_MAGIC_CACHE=replay-only): "
        f"{len(served)} runs served, {called} model calls, "
        + ("the same replies" if same else "REPLIES DIFFER")
    )
    return bool(served) and called == 0 and same, [line, *lines[2:]]


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", default=list(DEFAULT), help="notebooks/NAME.ipynb")
    parser.add_argument("--out", default=str(ROOT / "build" / "notebooks"), help="output folder")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    parser.add_argument(
        "--replay",
        action="append",
        default=None,
        help="then execute NAME again from the run log, calling no model (default: compare)",
    )
    args = parser.parse_args(argv)
    # The venv's own kernel spec before any user-wide one (which may name another Python).
    os.environ.setdefault("JUPYTER_PREFER_ENV_PATH", "1")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    for name in args.names:
        if not (NOTEBOOKS / f"{name}.ipynb").is_file():
            print(f"No notebook notebooks/{name}.ipynb", file=sys.stderr)
            return 2
    failed = False
    for name in args.names:
        print(f"Executing notebooks/{name}.ipynb ...", flush=True)
        ok, lines = execute(name, out, args.timeout)
        print("\n".join(lines), flush=True)
        failed |= not ok
    replays = args.replay if args.replay is not None else ["compare"]
    for name in [n for n in replays if n in args.names]:
        print(f"Executing notebooks/{name}.ipynb again, replayed ...", flush=True)
        replayed = out / "replayed"
        replayed.mkdir(exist_ok=True)
        ok, lines = replay(name, replayed, args.timeout)
        print("\n".join(lines), flush=True)
        failed |= not ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
