"""pl_magic.ui.diff: word-level differences between two cells, escaped for HTML and terminals."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from typing import Any

import pytest

from pl_magic.core.errors import InvalidInputError
from pl_magic.engine.results import compare, frame_from_log_rows
from pl_magic.ui.diff import DiffView, cells, diff, tokens

A = "openai/gpt-4o · v1"
B = "openai/gpt-4o · v2"
EMITTED_TAGS = {"div", "table", "thead", "tbody", "tr", "th", "td", "pre", "del", "ins"}
ATTACKS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '"><svg onload=alert(1)>',
    "</td></tr></table>",
    "\x1b[2J\x1b]52;c;ZXZpbA==\x07",
    "nul\x00here",
]


def _frame(runs: list[dict[str, Any]]) -> Any:
    """A runs DataFrame from log rows (the same path as runs())."""
    rows = []
    for n, run in enumerate(runs):
        rows.append(
            {
                "request_id": f"r{n}",
                "started_at": "2026-11-01T00:00:00+00:00",
                "prompt_name": "greet",
                "prompt_version": run.get("version", 1),
                "release_label": run.get("label"),
                "provider": "openai",
                "model": "gpt-4o",
                "parameters": "{}",
                "input_variables": json.dumps(run.get("vars", {"name": "Ada"})),
                "output": run.get("output"),
                "status": run.get("status", "ok"),
                "error_message": run.get("error"),
                "error_category": None,
                "latency_s": 0.5,
                "repeat_index": run.get("repeat", 0),
            }
        )
    return frame_from_log_rows(rows)


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attrs.extend(attrs)


def _parse(markup: str) -> _Tags:
    parser = _Tags()
    parser.feed(markup)
    parser.close()
    return parser


def test_a_known_pair_gives_the_exact_marked_html():
    df = _frame(
        [
            {"version": 1, "output": "Hello Ada, how are you?"},
            {"version": 2, "output": "Hello Ada, who are you!"},
        ]
    )
    view = diff(df, A, B)
    html = view._repr_html_()
    assert (
        '<pre style="white-space:pre-wrap;word-break:break-word;margin:0;'
        'font-family:var(--jp-code-font-family,monospace)">Hello Ada, '
        '<del style="background:#ffebe9;color:#82071e">how</del> are you'
        '<del style="background:#ffebe9;color:#82071e">?</del></pre>'
    ) in html
    assert (
        '">Hello Ada, <ins style="background:#dafbe1;color:#116329">who</ins> are you'
        '<ins style="background:#dafbe1;color:#116329">!</ins></pre>'
    ) in html
    assert view.rows == [
        {
            "inputs": {"name": "Ada"},
            "repeat": 0,
            "a": "Hello Ada, how are you?",
            "b": "Hello Ada, who are you!",
            "opcodes": [
                ("equal", "Hello Ada, ", "Hello Ada, "),
                ("replace", "how", "who"),
                ("equal", " are you", " are you"),
                ("replace", "?", "!"),
            ],
        }
    ]
    assert str(view) == (
        f"--- {A}\n+++ {B}\n@@ name=Ada\n"
        "- Hello Ada, [-how-] are you[-?-]\n"
        "+ Hello Ada, {+who+} are you{+!+}"
    )


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("  two  spaces,\ttab\nnew line.  ", "two spaces;\n\n tab new-line!"),
        ("", "something"),
        ("same — text, «quoted» 1.5", "same — text, «quoted» 1.5"),
        ("a\r\nb\u00a0c", "a\nb c"),
    ],
)
def test_whitespace_and_punctuation_are_kept(a, b):
    assert "".join(tokens(a)) == a
    df = _frame([{"version": 1, "output": a}, {"version": 2, "output": b}])
    (row,) = diff(df, A, B).rows
    assert "".join(op[1] for op in row["opcodes"]) == a
    assert "".join(op[2] for op in row["opcodes"]) == b


@pytest.mark.parametrize("attack", ATTACKS)
def test_hostile_outputs_and_inputs_are_escaped(attack):
    df = _frame(
        [
            {"version": 1, "output": f"safe {attack} text", "vars": {"q": attack}},
            {"version": 2, "output": f"{attack} other", "vars": {"q": attack}},
        ]
    )
    view = diff(df, A, B)
    html = view._repr_html_()
    parsed = _parse(html)
    assert parsed.tags <= EMITTED_TAGS
    assert {name for name, _ in parsed.attrs} <= {"class", "style", "colspan"}
    assert not any(name.startswith("on") for name, _ in parsed.attrs)
    for needle in ("<script", "<img", "<svg", "\x1b", "\x00", "\x07"):
        assert needle not in html
    assert html.count("</table>") == 1 and html.count("</td>") == html.count("<td ")
    text = str(view)
    assert "\x1b" not in text and "\x00" not in text and "\x07" not in text
    # the data itself is untouched
    assert view.rows[0]["a"] == f"safe {attack} text"
    assert view.rows[0]["inputs"] == {"q": attack}


def test_hostile_model_and_label_names_are_escaped():
    df = _frame([{"version": 1, "output": "x", "label": "<b onclick=x>"}])
    label = "openai/gpt-4o · v1 (<b onclick=x>)"
    assert cells(df) == [label]
    html = diff(df, label, label)._repr_html_()
    assert _parse(html).tags <= EMITTED_TAGS
    assert "&lt;b onclick=x&gt;" in html


def test_bad_cells_are_one_line_errors_listing_the_cells():
    df = _frame([{"version": 1, "output": "x"}, {"version": 2, "output": "y"}])
    with pytest.raises(InvalidInputError) as caught:
        diff(df, A, "openai/gpt-4o · v9")
    message = str(caught.value)
    assert "\n" not in message
    assert "diff(b='openai/gpt-4o · v9')" in message
    assert repr(A) in message and repr(B) in message
    with pytest.raises(InvalidInputError, match="no such cell"):
        diff(df, 3, B)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="takes a runs DataFrame"):
        diff([1, 2], A, B)


def test_a_label_without_the_provider_names_its_cell_and_matches_compare():
    df = _frame([{"version": 1, "output": "x"}, {"version": 2, "output": "y", "label": "prod"}])
    assert cells(df) == [A, "openai/gpt-4o · v2 (prod)"]
    assert cells(df) == [c for c in compare(df).columns]
    view = diff(df, "gpt-4o · v1", "gpt-4o · v2 (prod)")
    assert (view.a, view.b) == (A, "openai/gpt-4o · v2 (prod)")


def test_error_rows_show_an_em_dash():
    df = _frame(
        [
            {"version": 1, "output": "fine", "vars": {"name": "Ada"}},
            {
                "version": 2,
                "output": None,
                "status": "error",
                "error": "boom",
                "vars": {"name": "Ada"},
            },
            {"version": 1, "output": "partial", "status": "error", "vars": {"name": "Bo"}},
            {"version": 2, "output": "whole", "vars": {"name": "Bo"}},
        ]
    )
    view = diff(df, A, B)
    assert [(r["a"], r["b"], r["opcodes"]) for r in view.rows] == [
        ("fine", None, None),
        (None, "whole", None),
    ]
    html = view._repr_html_()
    assert html.count(">—</pre>") == 2 and "<del" not in html and "<ins" not in html
    assert "- fine\n+ —" in str(view)


def test_repeats_pair_by_index_and_inputs_by_their_variables():
    df = _frame(
        [
            {"version": 1, "output": "a0", "repeat": 0, "vars": {"n": 1, "tags": ["x"]}},
            {"version": 1, "output": "a1", "repeat": 1, "vars": {"n": 1, "tags": ["x"]}},
            {"version": 2, "output": "b1", "repeat": 1, "vars": {"n": 1, "tags": ["x"]}},
            {"version": 2, "output": "b0", "repeat": 0, "vars": {"n": 1, "tags": ["x"]}},
            {"version": 2, "output": "c", "repeat": 0, "vars": {"n": 2}},
        ]
    )
    view = diff(df, A, B)
    assert [(r["inputs"], r["repeat"], r["a"], r["b"]) for r in view.rows] == [
        ({"n": 1, "tags": ["x"]}, 0, "a0", "b0"),
        ({"n": 1, "tags": ["x"]}, 1, "a1", "b1"),
        ({"n": 2, "tags": None}, 0, None, "c"),
    ]
    assert ">repeat</th>" in view._repr_html_()


def test_repr_pretty_and_an_empty_view():
    view = DiffView(a=A, b=B)
    assert "no input rows" in view._repr_html_()

    class Printer:
        def __init__(self) -> None:
            self.out = ""

        def text(self, value: str) -> None:
            self.out += value

    p = Printer()
    view._repr_pretty_(p, cycle=False)
    assert p.out == str(view) == f"--- {A}\n+++ {B}"


def test_compare_diff_shows_the_first_cell_against_each_other_or_one_pair(shell, capsys):
    # (the test shell prints what is displayed in its plain-text form: the terminal diff)
    import pandas as pd

    import pl_magic
    from pl_magic.testing import fake_provider
    from tests.helpers import chat, model, publish

    publish("echo-diff", chat(("user", "{q}")), model())

    def reply(request):
        return "the <b>old</b> answer" if request.model == "gpt-4o-mini" else "the new answer"

    with fake_provider(reply):
        df = pl_magic.run_many(
            "echo-diff",
            models="openai/gpt-4o-mini,openai/gpt-4o",
            inputs=pd.DataFrame([{"q": "x"}]),
            concurrency=1,
        )
    capsys.readouterr()
    table = pl_magic.compare(df, diff=True)
    assert list(table.columns) == ["openai/gpt-4o-mini · v1", "openai/gpt-4o · v1"]
    shown = capsys.readouterr().out
    assert shown.count("--- openai/gpt-4o-mini · v1") == 1
    assert "+++ openai/gpt-4o · v1" in shown and "{+new+}" in shown and "[-<b>old</b>-]" in shown
    pl_magic.compare(df, diff=("openai/gpt-4o · v1", "openai/gpt-4o-mini · v1"))
    assert capsys.readouterr().out.count("--- openai/gpt-4o · v1") == 1
    with pytest.raises(InvalidInputError, match="no such cell"):
        pl_magic.compare(df, diff=("openai/gpt-4o · v1", "openai/gpt-4o · v9"))
    assert "---" not in capsys.readouterr().out  # nothing shown before the error
    with pytest.raises(InvalidInputError, match="two cell names"):
        pl_magic.compare(df, diff=("only one",))
