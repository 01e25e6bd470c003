"""Fuzzing (hypothesis): cell bodies, option lines, templates and command lines never raise
anything but pl_magic's own errors (or a one-line usage error from the argument parsers).

Strategies mix arbitrary text with the pieces that matter (YAML and JSON punctuation,
option names, template delimiters, jinja2 expressions), so that the interesting inputs
come up within a few hundred examples. Examples are bounded (and derandomized: the same
ones on every run) and deadlines off, to keep CI time small and its results stable.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError

import pl_magic
from pl_magic.core import blueprint, templates
from pl_magic.core.errors import PlMagicError
from pl_magic.core.parsing import parse_body, parse_pairs, parse_target
from pl_magic.surfaces import cli
from tests import conftest
from tests.helpers import chat, model, publish

FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI fails for a change, not by chance
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _joined(pieces: st.SearchStrategy[str], max_size: int = 12) -> st.SearchStrategy[str]:
    return st.lists(pieces, max_size=max_size).map("".join)


def _ours(exc: BaseException) -> None:
    """The only exceptions allowed out: pl_magic's own (one line) or a usage error."""
    if isinstance(exc, PlMagicError | UsageError | cli.UsageError):
        assert "\n" not in str(exc), repr(exc)
        conftest.audit_text(str(exc))
        return
    raise exc


# -- YAML cell bodies ----------------------------------------------------------------------

YAML_PIECES = st.sampled_from(
    [
        "name",
        ":",
        ": ",
        " ",
        "\n",
        "  ",
        "- ",
        "[",
        "]",
        "{",
        "}",
        ",",
        '"',
        "'",
        "#",
        "&a ",
        "*a",
        "!!str ",
        "!!python/object:os.system ",
        "? ",
        "|\n  ",
        ">-\n  ",
        "---\n",
        "...",
        "null",
        "~",
        "1e400",
        "0x1F",
        "2024-01-01",
        "yes",
        "\t",
        "%YAML 1.1\n",
        "\\u0000",
        '{"name": "Ada"}',
        "<<: *a",
        "name: Ada\n",
        "\ufeff",
        "\x85",
        "\u2028",
    ]
)
YAML_BODIES = st.one_of(st.text(max_size=60), _joined(YAML_PIECES, 16))


@FUZZ
@given(body=YAML_BODIES)
def test_yaml_cell_bodies(body: str) -> None:
    try:
        values = parse_body(body)
    except BaseException as exc:
        _ours(exc)
        return
    assert isinstance(values, dict) and all(isinstance(k, str) for k in values)


@pytest.fixture
def fuzz_shell(shell, openai_env, fake_provider):
    """The shell with pl_magic and a prompt ``greet`` (labels prod, staging) to run."""
    publish("greet", chat(("user", "hi {name}")), model(), release_labels=["staging"])
    publish("greet", chat(("user", "hello {name}")), model(), release_labels=["prod"])
    shell.run_line_magic("load_ext", "pl_magic")
    shell.run_line_magic("config", "PlMagic.short_errors = True")
    shell.user_ns["fuzz_vars"] = {"name": "Ada"}
    shell.user_ns["fuzz_rows"] = [{"name": "A"}, {"name": "B"}]
    yield shell
    shell.run_line_magic("unload_ext", "pl_magic")


def _cell(shell: Any, line: str, body: str | None) -> None:
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        try:
            if body is None:
                shell.run_line_magic("plrun", line)
            else:
                shell.run_cell_magic("plrun", line, body)
        except BaseException as exc:
            _ours(exc)


@FUZZ
@given(body=YAML_BODIES)
def test_yaml_bodies_through_the_magic(fuzz_shell, body: str) -> None:
    _cell(fuzz_shell, "greet@prod --no-stream", body)


# -- option lines --------------------------------------------------------------------------

OPTION_PIECES = st.sampled_from(
    [
        "greet",
        "greet@prod",
        "greet:1",
        "greet@",
        "@prod",
        ":",
        "prompts:/greet@staging",
        "--version",
        "--label",
        "--provider",
        "--model",
        "--param",
        "--var",
        "--vars",
        "fuzz_vars",
        "--tag",
        "--meta",
        "--group",
        "--no-stream",
        "--no-log",
        "--out fuzz_out",
        "--format",
        "markdown",
        "text",
        "--versions",
        "1,prod",
        "--models",
        "gpt-4o-mini",
        "openai/gpt-4.1-mini",
        "claude-x",
        "--repeat",
        "--inputs",
        "fuzz_rows",
        "--concurrency",
        "0",
        "1",
        "2",
        "-1",
        "99999999999999999999",
        "name=Ada",
        "temperature=0.2",
        "=",
        '"',
        "'",
        "\\",
        "-",
        "--",
        "-h",
        "--help",
        "{x}",
        "$x",
    ]
)
OPTION_LINES = st.lists(st.one_of(OPTION_PIECES, st.text(max_size=8)), min_size=1, max_size=7).map(
    " ".join
)


@FUZZ
@given(line=OPTION_LINES, body=st.one_of(st.none(), st.just("name: Ada")))
def test_option_lines(fuzz_shell, line: str, body: str | None) -> None:
    _cell(fuzz_shell, line, body)


@FUZZ
@given(target=st.text(max_size=30), pairs=st.lists(st.text(max_size=12), max_size=4))
def test_targets_and_pairs(target: str, pairs: list[str]) -> None:
    for call in (lambda: parse_target(target), lambda: parse_pairs(pairs, "--var")):
        try:
            call()
        except BaseException as exc:
            _ours(exc)


# -- templates -----------------------------------------------------------------------------

FSTRING_PIECES = st.sampled_from(
    [
        "{",
        "}",
        "{{",
        "}}",
        "{name}",
        "{name!r}",
        "{name!x}",
        "{name:>10}",
        "{name:.3}",
        "{name:>999999999}",
        "{name:d}",
        "{0}",
        "{}",
        "{name.__class__}",
        "{name[0]}",
        "{name:{name}}",
        "hi ",
        "\n",
        ":",
        "!",
        "name",
    ]
)
JINJA_PIECES = st.sampled_from(
    [
        "{{",
        "}}",
        "{%",
        "%}",
        "{#",
        "#}",
        " name ",
        "name",
        " x ",
        "1",
        "0",
        "/",
        "+",
        "*",
        "**",
        "'a'",
        "|upper",
        "|int",
        "|join(',')",
        " for x in name ",
        " endfor ",
        " if ",
        " endif ",
        " else ",
        "name.__class__",
        ".__mro__",
        "()",
        "[0]",
        "range(10**9)",
        " 10**10**10 ",
        "'a' * 10**9",
        " set y = 1 ",
        "(",
        ")",
        "cycler",
        "lipsum()",
        "-",
        " ",
        "self",
        "namespace()",
        "{{ name }}",
    ]
)
VALUES = st.one_of(
    st.text(max_size=20),
    st.integers(),
    st.floats(allow_nan=True),
    st.none(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def _render(text: str, fmt: str, value: Any) -> None:
    template = chat(("user", text), fmt=fmt)
    try:
        values = {n: value for n in blueprint.input_variables(template)}
        blueprint.render(template, values, "fuzz")
    except BaseException as exc:
        _ours(exc)


@FUZZ
@given(text=st.one_of(st.text(max_size=40), _joined(FSTRING_PIECES)), value=VALUES)
@example(text="{name:>999999999}", value="a")  # a 1 GB string, before issue 9
@example(text="{name!s}", value=10**5000)  # beyond Python's int-to-str limit
def test_fstring_templates(text: str, value: Any) -> None:
    _render(text, "f-string", value)


@FUZZ
@given(text=st.one_of(st.text(max_size=40), _joined(JINJA_PIECES)), value=VALUES)
@example(text="{{ 1/0 }}", value=None)  # ZeroDivisionError, before issue 9
@example(text="{{ 'a' * 10**9 }}", value=None)  # a 1 GB string
@example(text="{{ 10 ** 10000000 }}", value=None)  # minutes of arithmetic
@example(text="{% for x in range(10**9) %}{% endfor %}", value=None)  # OverflowError
@example(text="{{ name + 1 }}", value="a")  # TypeError
@example(text="{{ name[9] }}", value=[1])  # IndexError: undefined, under StrictUndefined
def test_jinja2_templates(text: str, value: Any) -> None:
    _render(text, "jinja2", value)


@FUZZ
@given(
    text=_joined(st.one_of(FSTRING_PIECES, JINJA_PIECES)), fmt=st.sampled_from(templates.FORMATS)
)
def test_templates_published_and_run(openai_env, fake_provider, text: str, fmt: str) -> None:
    template = chat(("user", text), fmt=fmt)
    try:
        pl_magic.publish({"prompt_name": "fuzz", "prompt_template": template, "metadata": model()})
        names = blueprint.input_variables(template)
        pl_magic.run("fuzz", input_variables={n: "v" for n in names})
    except BaseException as exc:
        _ours(exc)


# -- the CLI -------------------------------------------------------------------------------

ARGV_PIECES = st.sampled_from(
    [
        "run",
        "greet",
        "--label",
        "prod",
        "--version",
        "2",
        "0",
        "x",
        "--var",
        "name=Ada",
        "name",
        "--param",
        "temperature=hot",
        "--provider",
        "cohere",
        "--model",
        "--tag",
        "--no-stream",
        "prompts",
        "list",
        "show",
        "push",
        "export",
        "import",
        "nothere.yaml",
        "--json",
        "--out",
        "labels",
        "set",
        "delete",
        "runs",
        "--limit",
        "--prompt",
        "--csv",
        "local",
        "status",
        "-h",
        "--help",
        "--version",
        "",
    ]
)


@FUZZ
@given(argv=st.lists(st.one_of(ARGV_PIECES, st.text(max_size=6)), max_size=7))
def test_command_lines(openai_env, fake_provider, tmp_path_factory, argv: list[str]) -> None:
    if "--csv" in argv or "--out" in argv:  # (they write files: not in the working directory)
        argv = [a for a in argv if a not in ("--csv", "--out")]
    if "local" in argv and "start" in argv:
        return  # starting the local model is not a bad input
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(argv)
        except SystemExit as exc:  # only --help/--version may exit, and main() returns those
            raise AssertionError(f"main() raised SystemExit({exc.code})") from None
    lines = err.getvalue().strip().splitlines()
    if code not in (0,):
        assert lines and lines[-1].startswith("pl-magic: "), (argv, err.getvalue())
        assert "unexpected" not in lines[-1], (argv, lines[-1])
        assert "Traceback" not in err.getvalue()
    conftest.audit_text(err.getvalue())


# -- Markdown: the escaping holds for any reply ---------------------------------------------

MARKDOWN_PIECES = st.sampled_from(
    [
        "<img src=x onerror=alert(1)>",
        "<script>alert(1)</script>",
        "<!--",
        "-->",
        "```",
        "~~~",
        "````",
        "`",
        "``",
        "\n",
        "\r",
        "\r\n",
        "    ",
        "   ",
        " ",
        "a",
        "> ",
        "- ",
        "1. ",
        "\\",
        "&lt;",
        "&#60;",
        "|",
        "<",
        ">",
        "html",
        "\t",
        "<http://x.y>",
        "**",
        "![i](",
        "[l](",
        "[r]: ",
        ")",
        "javascript:alert(1)",
        "http://evil.example/i",
        "- ",
    ]
)


@FUZZ
@given(reply=_joined(MARKDOWN_PIECES, 20))
def test_markdown_views_never_hold_live_html(reply: str) -> None:
    from pl_magic.ui.markdown_view import MarkdownStream, render_markdown
    from tests.reliability.test_escaping import assert_inert

    assert_inert(render_markdown(reply))
    stream = MarkdownStream()  # the streaming preview, one piece at a time
    for end in range(0, len(reply) + 1, 3):
        assert_inert(stream.render(reply[:end]))
