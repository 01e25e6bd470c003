"""Escaping: model output that is HTML shows as text, in the cell and in the form.

Here the saved outputs of a real kernel (nbclient) and the form's HTML are read; the
browser test next to this one proves that no script runs when JupyterLab shows them.
"""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

from tests import conftest
from tests.helpers import chat, model, publish, runs

PAYLOAD = "<img src=x onerror=alert(1)>"
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
        )
    ]
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    nbformat.write(nb, tmp_path / "xss.ipynb")
    conftest.audit_dir(tmp_path)

    for index in (1, 2, 3, 4):
        shown = _html_outputs(nb.cells[index])
        assert shown, f"cell {index} showed no HTML"
        for html in shown:
            assert PAYLOAD not in html and "<img" not in html, (index, html)
        assert any(ESCAPED in html for html in shown), (index, shown)
    # Markdown: Jupyter renders a live output's Markdown as trusted (unsanitized), so its
    # raw HTML must not be live: "<" is "&lt;", which Markdown shows as "<"
    (markdown,) = [o["data"]["text/markdown"] for o in nb.cells[5].outputs]
    assert markdown.startswith(ESCAPED.replace("&gt;", ">")) and "<img" not in markdown
    # the plain-text views keep the text as it is
    plain = nb.cells[1].outputs[0]["data"]["text/plain"]
    assert plain.startswith(PAYLOAD)
    assert {r["output"] for r in runs()} == {PAYLOAD}


@pytest.mark.parametrize(
    ("reply", "shown"),
    [
        ("<script>alert(1)</script>", "&lt;script>alert(1)&lt;/script>"),
        ("a <b>c</b> <!-- x --> <http://x.y>", "a &lt;b>c&lt;/b> &lt;!-- x --> &lt;http://x.y>"),
        ("```html\n<div>kept</div>\n```\n<i>", "```html\n<div>kept</div>\n```\n&lt;i>"),
        ("~~~~\n<p>\n~~~\n<q>\n~~~~~\n<r>", "~~~~\n<p>\n~~~\n<q>\n~~~~~\n&lt;r>"),
        ("```\n<a>\r```\n<img>", "```\n<a>\n```\n&lt;img>"),  # \r ends a line there too
        ("    ```\n<img>", "    ```\n&lt;img>"),  # indented: not a fence
    ],
)
def test_markdown_source_disarms_html_outside_fenced_code(reply, shown):
    from pl_magic.display import markdown_source

    assert markdown_source(reply) == shown


def test_the_form_escapes_model_output(xss):
    from pl_magic.widget import PromptForm

    form = PromptForm("xss")
    form.run()
    assert ESCAPED in form.reply.value and PAYLOAD not in form.reply.value
    assert PAYLOAD not in form.table.value and "&lt;img src=x" in form.table.value
    form.stream.value = False
    form.run()
    assert form.reply.value.count(ESCAPED) == 1 and "<img" not in form.reply.value


def test_an_error_echoing_html_is_escaped_in_the_form(openai_env, fake_provider):
    from pl_magic.widget import PromptForm

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
