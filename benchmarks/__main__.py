"""Run the benchmarks: ``.venv/bin/python -m benchmarks [--only B1,B3] [--quick] [--out FILE]``.

Each benchmark (B1–B12b, one module each) measures pl_magic side by side with its baseline
against the same fake servers on 127.0.0.1 and reports the ratio. A full run writes
``benchmarks/RESULTS.md``; ``--only`` and ``--quick`` runs just print (unless ``--out``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from .harness import Outcome, Row, Servers, machine, offline_environment, package_versions

BENCHMARKS = {
    "B1": "b1_run",
    "B2": "b2_stream",
    "B3": "b3_promptlayer",
    "B4": "b4_run_many",
    "B5": "b5_plrun_display",
    "B6": "b6_load_ext",
    "B7": "b7_runs_frame",
    "B8": "b8_scorers",
    "B9": "b9_compare_scores",
    "B10": "b10_judge",
    "B11": "b11_replay",
    "B12a": "b12a_rate_limit",
    "B12b": "b12b_batch",
}
RESULTS = Path(__file__).with_name("RESULTS.md")
FIXES = Path(__file__).with_name("fixes.md")
PACKAGES = (
    "pl_magic",
    "openai",
    "promptlayer",
    "httpx2",
    "pandas",
    "ipykernel",
    "jupyter_client",
    "uvicorn",
    "starlette",
)
NOTES = """\
- pl_magic and its baseline run interleaved (A B, B A, …) after a warm-up, in one process,
  against the same fake servers, which run in a process of their own
  (`benchmarks/serve.py`) so that they do not compete with the code measured for the GIL.
  The absolute figures are each side's median; the ratio is the median of the per-round
  ratios (each pl_magic measurement over the baseline measured next to it), which a
  machine drifting between a fast and a slow state moves less than a ratio of medians.
- The machine has 2 cores: the benchmark process, the fake servers' process and (B5, B6)
  the kernel share them.
- B1/B2 baseline: the request pl_magic sends (`Engine.prepare(...).request`) through a reused
  `openai.OpenAI` client with pl_magic's retries and timeout.
- B3 baseline: `promptlayer.PromptLayer(api_key=..., base_url=fake)` with its defaults (no
  template cache): per run a template fetch, the provider call and `/track-request`.
  pl_magic, template cached: the provider call and `/track-request`.
- B4 loop: the official SDK has no concurrent runner; its loop is measured on fewer runs
  with PromptLayer answering at once (latency 0) and extrapolated to 200 (see the details).
- B5: times are from the execute request to the kernel going idle, seen from the client.
  The display throttle is `PlMagic.refresh_rate` (15 a second); the first update goes out
  as soon as text arrives and a final one (the whole reply and its footer) always follows
  the stream. The rate in the table leaves that final update out; over a stream this short
  (about half a second) counting it adds 2 a second (see the details).
- B6: measured inside each fresh kernel with `time.perf_counter()` around the statement.
- B8: the scoring inside `pl_magic.score(df, ["contains"])` (`engine.scoring.score_runs`,
  no database) against a row-wise pandas check of the same 100,000 outputs.
- B11: both sides are `pl_magic.run()`: replayed (`cache` mode `replay`, a hit) against live
  (`off`), interleaved; B11b times `run_many(repeat=1000, cache="replay")` once every repeat is
  recorded (each served run is still resolved, rendered, looked up and logged; a comparison
  serves hits on the calling thread and writes their rows 256 per transaction).
- B12b: 10,000 runs (2 versions × 2,500 inputs × 2 repeats) submitted in batch mode
  (`run_many(batch=True, wait=False)`) and, once the fake has ended the batch, ingested into
  the log and the DataFrame (`job.wait()`, `job.frame()`); the reference is a live `run_many`
  of the same runs at concurrency 16, the fake answering at once. Not interleaved: each side
  is one long operation; the batch side is the median of three passes (fresh jobs), each
  pass listed in the details. Memory is tracemalloc's peak, in a pass of its own.
- B9: `cell_summary` (the score rows `compare()` adds) against a pandas
  `groupby().agg(["mean", "std", "count"])`; B9b is `compare(df)` as a whole, reported.
- B12a: one comparison per mode (adaptive, then fixed), each from a fresh limiter and a full
  bucket; the baseline is the limit itself, `(runs − burst) / rate + delay`, the least time any
  client needs. 600 requests a minute (`--quick`: 1,200, the same shape in half the time).
"""


def _table(rows: list[Row]) -> list[str]:
    out = [
        "| # | what | pl_magic | baseline | ratio | target | met? |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        met = "—" if r.met is None else "yes" if r.met else "**no**"
        out.append(
            f"| {r.id} | {r.what} | {r.ours} | {r.baseline} | {r.ratio} | {r.target} | {met} |"
        )
    return out


def render(outcomes: dict[str, Outcome], quick: bool, seconds: float) -> str:
    """RESULTS.md's text."""
    info = machine()
    versions = package_versions(PACKAGES)
    rows = [row for o in outcomes.values() for row in o.rows]
    lines = [
        "# Benchmarks",
        "",
        "Written by `.venv/bin/python -m benchmarks`"
        + (" --quick" if quick else "")
        + f" on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC ({seconds:.0f} s).",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores, {info['os']}, Python {info['python']}.",
        "Packages: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".",
        "",
        *_table(rows),
        "",
        "## How",
        "",
        NOTES,
        "## Details",
        "",
        *[f"- {line}" for o in outcomes.values() for line in o.details],
        "",
    ]
    if FIXES.exists():
        lines += [FIXES.read_text().rstrip(), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks; 0 when every one ran (met or not), 1 otherwise."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--only", help="comma-separated ids, e.g. B1,B3")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--out", type=Path, help="write the results here (a full run: RESULTS.md)")
    args = parser.parse_args(argv)
    selected = list(BENCHMARKS)
    if args.only:
        named = {ident.upper(): ident for ident in BENCHMARKS}  # (B12b typed as b12b or B12B)
        selected = [named.get(s.strip().upper(), s.strip()) for s in args.only.split(",")]
        selected = [s for s in selected if s]
        unknown = [s for s in selected if s not in BENCHMARKS]
        if unknown:
            parser.error(f"unknown benchmark(s) {', '.join(unknown)}: use {', '.join(BENCHMARKS)}")
    out = args.out or (RESULTS if not args.only and not args.quick else None)

    offline_environment()
    started = time.perf_counter()
    outcomes: dict[str, Outcome] = {}
    failed = []
    with Servers() as servers:
        for ident in selected:
            module = importlib.import_module(f"benchmarks.{BENCHMARKS[ident]}")
            print(f"{ident} …", flush=True)
            t0 = time.perf_counter()
            try:
                outcome = module.run(servers, quick=args.quick)
            except Exception:
                traceback.print_exc()
                failed.append(ident)
                continue
            outcomes[ident] = outcome
            for line in _table(outcome.rows)[2:]:
                print("  " + line)
            print(f"  ({time.perf_counter() - t0:.0f} s)", flush=True)
    seconds = time.perf_counter() - started
    text = render(outcomes, args.quick, seconds)
    if out is not None:
        out.write_text(text)
        print(f"wrote {out}")
    else:
        print("\n".join(_table([r for o in outcomes.values() for r in o.rows])))
    if failed:
        print(f"failed to run: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
