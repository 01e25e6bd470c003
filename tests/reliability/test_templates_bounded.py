"""Templates cannot touch the user's objects or the machine.

A registry template is code others may edit: it sees input variables as plain data only,
its rendering is bounded in size, steps and time from inside the render, the YAML around
it cannot expand, the log keeps a bounded copy of what went in, and an interrupt of a
comparison stops the worker threads' rendering too. Bounds are shown by the error and by
the peak of traced memory, never by timing asserts.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

import pl_magic
from pl_magic.core import errors, parsing
from pl_magic.core.errors import InvalidInputError, TemplateError, TemplateLimitError
from pl_magic.surfaces import authoring, cli
from tests.fakes.provider_server import PROVIDER_KINDS
from tests.helpers import chat, publish, runs
from tests.reliability.cases_templates import ALIAS_BOMB

ROOT = Path(__file__).resolve().parents[2]
#: The most memory (traced by tracemalloc) a refused render may take.
PEAK_MB = 50


def _provider_calls(fake_provider: Any) -> list[Any]:
    return [r for r in fake_provider.requests if r.kind in PROVIDER_KINDS]


def _sent_text(fake_provider: Any) -> str:
    """The user message of the one call the fake provider received."""
    (call,) = _provider_calls(fake_provider)
    return "".join(
        block["text"] if isinstance(block, dict) else block
        for block in _content(call.body["messages"][-1]["content"])
    )


def _content(content: Any) -> list[Any]:
    return [content] if isinstance(content, str) else content


def _peak_mb(fn: Any) -> tuple[BaseException | None, float]:
    """Run ``fn``; the exception it raised and the peak of traced memory in MB."""
    tracemalloc.start()
    try:
        fn()
    except BaseException as exc:  # (returned to the test to check)
        return exc, tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        peak = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
    return None, peak


# -- templates see plain data ------------------------------------------------------------


def test_a_jinja2_template_cannot_call_methods_of_a_path_input(openai_env, fake_provider, tmp_path):
    doc = tmp_path / "notes.txt"
    doc.write_text("mine", encoding="utf-8")
    publish("touch", chat(("user", "{{ doc.write_text('owned') }}"), fmt="jinja2"))
    with pytest.raises(TemplateError) as info:
        pl_magic.run("touch", input_variables={"doc": doc})
    assert "write_text" in str(info.value) and "\n" not in str(info.value)
    assert doc.read_text(encoding="utf-8") == "mine"
    assert _provider_calls(fake_provider) == [] and runs() == []


def test_a_dataframe_input_is_refused_naming_the_variable_and_its_type(
    openai_env, fake_provider, tmp_path
):
    pd = pytest.importorskip("pandas")
    out = tmp_path / "leak.csv"
    publish("dump", chat(("user", "{{ df.to_csv(path) }}"), fmt="jinja2"))
    frame = pd.DataFrame({"a": [1, 2]})
    with pytest.raises(InvalidInputError) as info:
        pl_magic.run("dump", input_variables={"df": frame, "path": str(out)})
    message = str(info.value)
    assert "'df'" in message and "pandas.DataFrame" in message
    assert "df.to_markdown()" in message and "\n" not in message
    assert not out.exists() and list(frame["a"]) == [1, 2]
    assert _provider_calls(fake_provider) == [] and runs() == []


def test_a_template_cannot_change_a_list_it_is_given(openai_env, fake_provider):
    items = [1, 2]
    publish("grow", chat(("user", "{{ items.append(3) }}{{ items }}"), fmt="jinja2"))
    with pytest.raises(errors.SandboxViolationError):
        pl_magic.run("grow", input_variables={"items": items})
    assert items == [1, 2]


def test_inputs_are_converted_to_what_a_person_means(openai_env, fake_provider, tmp_path):
    np = pytest.importorskip("numpy")
    publish(
        "mixed",
        chat(
            ("user", "{{ path }}|{{ when }}|{{ n + 1 }}|{{ price }}|{{ tags|join(',') }}"),
            fmt="jinja2",
        ),
    )
    pl_magic.run(
        "mixed",
        input_variables={
            "path": tmp_path / "a.txt",
            "when": dt.datetime(2026, 1, 2, 3, 4, 5),
            "n": np.int64(41),
            "price": decimal.Decimal("1.10"),
            "tags": ("x", "y"),
        },
    )
    assert _sent_text(fake_provider) == f"{tmp_path / 'a.txt'}|2026-01-02T03:04:05|42|1.10|x,y"
    (row,) = runs()
    logged = json.loads(row["input_variables"])
    assert logged["n"] == 41 and logged["path"] == str(tmp_path / "a.txt")


@pytest.mark.parametrize(
    ("value", "kind"),
    [(object(), "object"), (b"bytes", "bytes"), (iter([1]), "list_iterator")],
    ids=["object", "bytes", "iterator"],
)
def test_other_objects_are_refused_in_one_line(openai_env, fake_provider, value, kind):
    publish("greet", chat(("user", "hi {name}")))
    with pytest.raises(InvalidInputError) as info:
        pl_magic.run("greet", input_variables={"name": {"inner": [value]}})
    message = str(info.value)
    assert f"of type {kind}" in message and "'name'" in message and "\n" not in message
    assert "at name['inner'][0]" in message
    assert _provider_calls(fake_provider) == []


# -- bounded rendering ---------------------------------------------------------------------

JINJA_ATTACKS = {
    "center": "{{ name|center(900000000) }}",
    "percent-star": "{{ '%*s' % (900000000, name) }}",
    "percent-precision": "{{ '%.900000000f' % 1.5 }}",
    "ljust": "{{ name.ljust(900000000) }}",
    "format-width": "{{ '{:>900000000}'.format(name) }}",
    "format-nested-width": "{{ '{:>{w}}'.format(name, w=900000000) }}",
    "nested-range-loops": (
        "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}"
    ),
    "nested-range-output": (
        "{% for i in range(99999) %}{% for j in range(99999) %}{{ name }}{% endfor %}{% endfor %}"
    ),
    "set-block-accumulation": (
        "{% set s %}{% for i in range(99999) %}{% for j in range(99999) %}ab"
        "{% endfor %}{% endfor %}{% endset %}{{ s|length }}"
    ),
    "loops-over-a-long-string": (
        "{% set s = 'ab' * 500000 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}"
    ),
    "lipsum": "{{ lipsum(n=2000000) }}",
    "repeat": "{{ name * 10**9 }}",
    "replace": "{% set b = 'x' * 100000 %}{{ b.replace('x', b) }}",
    "join-of-references": "{% set b = 'x' * 1000000 %}{{ ([b] * 100000)|join }}",
    "list-of-references": "{% set b = 'x' * 1000000 %}{{ [b] * 100000 }}",
    "string-filter": "{% set b = 'x' * 1000000 %}{{ ([b] * 100000)|string|length }}",
    "tilde-chain": "{% set b = 'x' * 300000 %}{{ b ~ b ~ b ~ b ~ b }}",
    "indent": "{{ name|indent(900000000) }}",
    "batch-fill": "{{ [1]|batch(900000000, 'x')|list }}",
    "expandtabs": "{{ 'a\tb'.expandtabs(900000000) }}",
    "round-digits": "{{ 5|round(-900000000) }}",
    "to-bytes": "{{ (1).to_bytes(900000000, 'big') }}",
    "power": "{{ 9 ** 900000000 }}",
}


@pytest.mark.parametrize("text", list(JINJA_ATTACKS.values()), ids=list(JINJA_ATTACKS))
def test_a_jinja2_attack_ends_with_a_limit_error_in_bounded_memory(openai_env, fake_provider, text):
    publish("attack", chat(("user", text), fmt="jinja2"))
    error, peak = _peak_mb(lambda: pl_magic.run("attack", input_variables={"name": "Ada"}))
    assert isinstance(error, TemplateLimitError), repr(error)
    message = str(error)
    assert "\n" not in message and len(message) < 400
    assert "PL_MAGIC_TEMPLATE_MAX_CHARS" in message or "PL_MAGIC_TEMPLATE_TIMEOUT" in message
    assert peak < PEAK_MB, f"{peak:.0f} MB traced"
    assert _provider_calls(fake_provider) == [] and runs() == []


@pytest.mark.parametrize(
    "text",
    ["{name:>999999}" * 1500, "{name:>900000000}", "{name:.900000000}"],
    ids=["1500-wide-fields", "one-huge-width", "huge-precision"],
)
def test_an_fstring_attack_ends_with_a_limit_error_in_bounded_memory(
    openai_env, fake_provider, text
):
    publish("attack", chat(("user", text)))
    error, peak = _peak_mb(lambda: pl_magic.run("attack", input_variables={"name": "Ada"}))
    assert isinstance(error, TemplateLimitError), repr(error)
    assert "PL_MAGIC_TEMPLATE_MAX_CHARS" in str(error)
    assert peak < PEAK_MB, f"{peak:.0f} MB traced"
    assert _provider_calls(fake_provider) == []


def _nested(name: str, levels: int, first: str) -> str:
    """A jinja2 template that nests ``[x, x]`` ``levels`` times inside a namespace: the
    text and the comparisons of the result are 2**levels times the size of ``first``."""
    return (
        f"{{% set {name} = namespace(x={first}) %}}{{% for i in range({levels}) %}}"
        f"{{% set {name}.x = [{name}.x, {name}.x] %}}{{% endfor %}}"
    )


#: Shared references: small as objects, huge as text or to compare (each reference is
#: written, or compared, in full). Rendered with a lower size limit so that the new code's
#: bounded walks are short; the old code built the whole text (or compared it all) first.
SHARED_ATTACKS = {
    "repeated-lists": "{% set a=[1]*1000 %}{% set b=[a]*1000 %}{% set c=[b]*100 %}{{ c }}",
    "added-lists": (
        "{% set a=[[1]*1000] %}{% set ns = namespace(x=a) %}{% for i in range(12) %}"
        "{% set ns.x = ns.x + ns.x %}{% endfor %}{{ ns.x|length }}"
    ),
    "written-lists": "{% set a=['abcdefgh']*1000 %}{% set b=[a,a,a,a,a,a,a,a,a,a] %}"
    "{% set c=[b,b,b,b,b,b,b,b,b,b] %}{% set d=[c,c,c,c,c,c,c,c,c,c] %}{{ [d,d,d,d] }}",
    "namespace-doubling": _nested("ns", 22, "'abcdefgh'") + "{{ ns.x }}",
    "namespace-doubling-tojson": _nested("ns", 22, "'abcdefgh'") + "{{ ns.x|tojson }}",
    "equal-deep-structures": _nested("g", 27, "1") + _nested("h", 27, "1") + "{{ g.x == h.x }}",
    "member-of-deep-structure": _nested("g", 27, "1")
    + _nested("h", 27, "1")
    + "{{ g.x in [0, h.x] }}",
}


@pytest.mark.parametrize("text", list(SHARED_ATTACKS.values()), ids=list(SHARED_ATTACKS))
def test_shared_references_count_in_full_against_the_size_limit(
    openai_env, fake_provider, monkeypatch, text
):
    monkeypatch.setenv("PL_MAGIC_TEMPLATE_MAX_CHARS", "100000")
    publish("shared", chat(("user", text), fmt="jinja2"))
    error, peak = _peak_mb(lambda: pl_magic.run("shared"))
    assert isinstance(error, TemplateLimitError), repr(error)
    assert "PL_MAGIC_TEMPLATE_MAX_CHARS" in str(error) and "\n" not in str(error)
    assert peak < 10, f"{peak:.0f} MB traced"
    assert _provider_calls(fake_provider) == [] and runs() == []


def test_a_cycle_still_counts_as_short_text():
    from pl_magic.core.templates import text_size

    loop: list[Any] = [1]
    loop.append(loop)
    assert text_size(loop, 1000) < 20
    shared = ["x" * 10] * 10
    assert text_size([shared, shared], 10**6) > 2 * 10 * 12


def test_the_size_limit_covers_the_whole_template_and_is_configurable(
    openai_env, fake_provider, monkeypatch
):
    # two messages of 600,000 characters each: each fits, the run's template does not
    publish(
        "two",
        chat(("system", "{{ 'a' * 600000 }}"), ("user", "{{ 'b' * 600000 }}"), fmt="jinja2"),
    )
    with pytest.raises(TemplateLimitError, match="PL_MAGIC_TEMPLATE_MAX_CHARS"):
        pl_magic.run("two")
    assert _provider_calls(fake_provider) == []
    monkeypatch.setenv("PL_MAGIC_TEMPLATE_MAX_CHARS", "2000000")
    pl_magic.run("two")
    assert len(_sent_text(fake_provider)) == 600_000


def test_the_time_limit_is_enforced_inside_the_render_and_configurable(
    openai_env, fake_provider, monkeypatch
):
    monkeypatch.setenv("PL_MAGIC_TEMPLATE_MAX_CHARS", str(10**12))  # only time stops it
    monkeypatch.setenv("PL_MAGIC_TEMPLATE_TIMEOUT", "0.5")
    publish(
        "slow",
        chat(
            (
                "user",
                "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}",
            ),
            fmt="jinja2",
        ),
    )
    with pytest.raises(TemplateLimitError) as info:
        pl_magic.run("slow")
    assert "0.5 s" in str(info.value) and "PL_MAGIC_TEMPLATE_TIMEOUT" in str(info.value)


def test_ordinary_templates_still_render(openai_env, fake_provider):
    text = (
        "{% for row in rows %}{{ loop.index }}. {{ row.name|title }} ({{ '%.1f' % row.score }})"
        "{{ ', ' if not loop.last }}{% endfor %} — {{ '{:>6}'.format(who) }} {{ who ~ '!' }} "
        "{{ lipsum(1, html=False)|length > 0 }}"
    )
    publish("report", chat(("user", text), fmt="jinja2"))
    rows = [{"name": "ada", "score": 9.25}, {"name": "grace", "score": 8}]
    pl_magic.run("report", input_variables={"rows": rows, "who": "me"})
    assert _sent_text(fake_provider) == "1. Ada (9.2), 2. Grace (8.0) —     me me! True"


# -- YAML: no anchors, no aliases ----------------------------------------------------------


def test_a_yaml_alias_bomb_in_a_plrun_body_is_refused_at_once(ip, openai_env, fake_provider):
    publish("greet", chat(("user", "hi {name}")))
    assert len(ALIAS_BOMB) < 400
    result: list[Any] = []
    error, peak = _peak_mb(lambda: result.append(ip.run_cell("%%plrun greet\n" + ALIAS_BOMB)))
    assert error is None
    exc = result[0].error_in_exec
    assert isinstance(exc, InvalidInputError), repr(exc)
    assert "anchor or alias" in str(exc) and "write each value out in full" in str(exc)
    assert peak < PEAK_MB
    assert _provider_calls(fake_provider) == [] and runs() == []


@pytest.mark.parametrize(
    ("read", "line"),
    [
        (parsing.parse_body, 1),
        (lambda text: authoring.body_from_yaml("prompt_name: p\ntemplate: hi\n" + text), 3),
    ],
    ids=["cell-body", "authoring"],
)
def test_every_yaml_reader_refuses_aliases(read, line):
    with pytest.raises(InvalidInputError) as info:
        read("x: &x [1, 2]\ny: *x\n")
    assert "write each value out in full" in str(info.value)
    assert f"line {line}" in str(info.value)


def test_yaml_nested_too_deep_is_a_one_line_error():
    with pytest.raises(InvalidInputError, match="nested too deeply"):
        parsing.parse_body("name: " + "[" * 5000 + "]" * 5000)


def test_the_cli_refuses_a_yaml_alias_in_a_pushed_prompt(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bomb.yaml").write_text("prompt_name: p\ntemplate: hi\n" + ALIAS_BOMB, "utf-8")
    assert cli.main(["prompts", "push", "bomb.yaml"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "write each value out in full" in err
    assert cli.parse_params(["stop=&s [a, *s]"]) == {"stop": "&s [a, *s]"}  # kept as typed


# -- the log keeps a bounded copy ----------------------------------------------------------


def test_a_long_input_goes_whole_to_the_provider_and_cut_to_the_log(openai_env, fake_provider):
    publish("echo", chat(("user", "{doc}")))
    doc = "é" * 300_000
    pl_magic.run("echo", input_variables={"doc": doc, "rows": [{"n": i} for i in range(20_000)]})
    assert _sent_text(fake_provider) == doc
    (row,) = runs()
    logged = json.loads(row["input_variables"])
    assert logged["doc"].startswith("é" * 64_000)
    assert logged["doc"].endswith("[cut in the log: 300,000 characters in all]")
    assert len(logged["doc"]) < 64_100
    assert isinstance(logged["rows"], str) and "cut in the log" in logged["rows"]
    assert len(row["input_variables"]) < 1_000_000  # (the whole doc is 1.8 MB as JSON)


def test_an_integer_too_long_to_write_is_refused_before_the_call(openai_env, fake_provider):
    publish("pj", chat(("user", "hi {{ x|length }}"), fmt="jinja2"))
    with pytest.raises(InvalidInputError) as info:
        pl_magic.run("pj", input_variables={"x": [10**5000]})
    message = str(info.value)
    assert "'x'" in message and "4,300 digits" in message and "at x[0]" in message
    assert "\n" not in message
    assert _provider_calls(fake_provider) == [] and runs() == []


def test_the_log_keeps_a_row_for_a_value_python_cannot_write():
    from pl_magic.engine.engine import _jsonable_vars

    logged = _jsonable_vars({"n": 10**5000, "name": "Ada"})
    assert logged["name"] == "Ada"
    assert logged["n"].startswith("[not stored: a int") and len(logged["n"]) < 300


@pytest.mark.parametrize(
    "read", [parsing.parse_body, lambda t: parsing.parse_pairs([t.replace(": ", "=")], "--var")]
)
def test_a_yaml_integer_too_long_for_python_is_not_a_traceback(read):
    text = "x: " + "1" * 5000
    try:
        value = read(text)
    except InvalidInputError as exc:  # the cell body: one line naming the fix
        assert "quote it to keep it as text" in str(exc) and "\n" not in str(exc)
    else:  # --var x=…: kept as typed, like any value YAML cannot read
        assert value == {"x": "1" * 5000}


# -- Ctrl-C during run_many stops the rendering in the worker threads ---------------------


def test_an_interrupt_of_run_many_stops_the_workers_rendering(openai_env, fake_provider, tmp_path):
    """In a process of its own, a real SIGINT arrives while run_many's workers render a
    template that would take hours (the limits are raised so that only the interrupt can
    stop it): every worker thread must have ended soon after."""
    env = {
        **os.environ,
        "PL_MAGIC_HOME": str(tmp_path / "child_home"),
        "PL_MAGIC_TEMPLATE_MAX_CHARS": str(10**12),
        "PL_MAGIC_TEMPLATE_TIMEOUT": "3600",
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "tests.reliability.render_child"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["interrupted_while_rendering"], report
    assert report["alive"] == [], f"worker threads still rendering: {report}"
    assert "ok" not in report["statuses"] and "cancelled" in report["statuses"], report
    assert "interrupted" in proc.stderr
