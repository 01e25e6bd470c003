"""The notebook magic and the widget against the fake PromptLayer, as against the local
registry: publishing, running (streamed and not), listing, labels, the runs table."""

from __future__ import annotations

import json

import pytest

import pl_magic
from pl_magic.core.errors import ConfigurationError, InvalidInputError, LabelNotFoundError
from pl_magic.surfaces.widget import PromptForm
from tests.helpers import chat, model, runs


@pytest.fixture(scope="module")
def shell():
    from IPython.terminal.interactiveshell import TerminalInteractiveShell
    from IPython.testing.globalipapp import start_ipython

    start_ipython()  # a no-op when another module started it
    return TerminalInteractiveShell.instance()


@pytest.fixture
def ip(shell, promptlayer_env, openai_env):
    shell.run_line_magic("load_ext", "pl_magic")
    shell.run_line_magic("config", "PlMagic.short_errors = True")
    shell.run_line_magic("config", 'PlMagic.registry = "promptlayer"')
    yield shell
    shell.run_line_magic("unload_ext", "pl_magic")


@pytest.fixture
def greet(promptlayer_env, openai_env, fake_promptlayer):
    fake_promptlayer.add_prompt("greet", chat(("user", "v1 hi {name}")), model(temperature=0.1))
    fake_promptlayer.add_prompt("greet", chat(("user", "v2 hello {name}")), model(max_tokens=50))
    fake_promptlayer.add_prompt("greet", chat(("user", "v3 hey {name} {extra}")), model())
    fake_promptlayer.set_label("greet", "prod", 2)
    fake_promptlayer.add_prompt("other", chat(("user", "other {topic}")), model())
    return fake_promptlayer


def test_plprompt_publishes_to_promptlayer(ip, fake_promptlayer, capsys):
    ip.run_cell_magic(
        "plprompt",
        "greet --label prod --model openai/gpt-4o-mini --param temperature=0.3",
        "messages:\n  - system: Be brief.\n  - user: 'hi {name}'\n",
    )
    assert "Published greet version 1 (prod)" in capsys.readouterr().out
    (req,) = fake_promptlayer.requests_for("template.publish")
    version = req.body["prompt_version"]
    assert version["metadata"]["model"]["parameters"] == {"temperature": 0.3}
    assert req.body["release_labels"] == ["prod"]


def test_plprompt_with_a_raw_base_url_is_one_line(ip, fake_promptlayer):
    with pytest.raises(InvalidInputError, match="provider_base_url_name"):
        ip.run_cell_magic(
            "plprompt",
            "greet",
            "messages:\n  - user: hi\nprovider_base_url: http://127.0.0.1:1/v1\n",
        )


@pytest.mark.parametrize("flags", ["", "--no-stream"])
def test_plrun_runs_registry_prompts(ip, greet, fake_provider, capsys, flags):
    ip.run_cell_magic("plrun", f"greet@prod --out res {flags}", "name: Ada\n")
    out = capsys.readouterr().out
    assert "echo: v2 hello Ada" in out
    (row,) = runs()
    assert (row["backend"], row["remote_request_id"]) == ("promptlayer", "101")
    assert "greet v2 (prod)" in out and "openai/gpt-4o-mini" in out
    assert f"request {row['request_id'][:8]}" in out  # the footer shows the log's own id
    assert ip.user_ns["res"]["request_id"] == 101
    assert fake_provider.requests[0].body["max_tokens"] == 50


def test_plrun_forms_and_errors(ip, greet, fake_provider, capsys):
    ip.run_cell_magic("plrun", "greet:1", "name: Ada\n")
    assert "echo: v1 hi Ada" in capsys.readouterr().out
    with pytest.raises(LabelNotFoundError, match="existing labels are prod"):
        ip.run_cell_magic("plrun", "greet@nope", "name: Ada\n")


def test_plprompts_and_plprompt_show(ip, greet, capsys):
    df = ip.run_line_magic("plprompts", "")
    assert list(df.index) == ["greet", "other"]
    assert df.loc["greet", "labels"] == {"prod": 2} and df.loc["greet", "latest_version"] == 3
    ip.run_line_magic("plprompt", "greet@prod")
    assert "v2 hello {name}" in capsys.readouterr().out


def test_comparison_with_promptlayer(ip, greet, fake_provider):
    df = ip.run_cell_magic("plrun", "greet --versions 1,prod --repeat 2", "name: Q\n")
    assert len(df) == 4 and set(df["status"]) == {"ok"}
    assert df["latency_s"].notna().all()
    assert len(greet.tracked) == 4


def test_registry_promptlayer_without_a_key_is_one_line(ip, monkeypatch):
    monkeypatch.delenv("PROMPTLAYER_API_KEY")
    with pytest.raises(ConfigurationError, match="PROMPTLAYER_API_KEY") as info:
        ip.run_cell_magic("plrun", "greet", "name: Ada\n")
    assert "\n" not in str(info.value)


def test_registry_local_ignores_the_key(ip, fake_promptlayer, fake_provider, capsys):
    from tests.helpers import publish

    ip.run_line_magic("config", 'PlMagic.registry = "local"')
    publish("mine", chat(("user", "local {name}")))
    ip.run_cell_magic("plrun", "mine", "name: Ada\n")
    assert "echo: local Ada" in capsys.readouterr().out
    assert fake_promptlayer.requests == []


# -- the widget -------------------------------------------------------------------------


def _vars(form: PromptForm) -> dict[str, str]:
    return {b.description: b.value for b in form.variables.children}


def test_widget_reads_the_promptlayer_registry(greet):
    form = PromptForm("greet")
    assert form.prompt.options == ("greet", "other")
    labels = [label for label, _ in form.version.options]
    assert labels[0] == "prod → v2" and "v3 (latest)" in labels
    assert form.version.value == ("label", "prod")
    assert (form.provider.value, form.model.value, form.max_tokens.value) == (
        "openai",
        "gpt-4o-mini",
        50,
    )
    form.version.value = ("version", 3)
    assert _vars(form) == {"extra": "", "name": ""}


def test_widget_runs_against_promptlayer(greet, fake_provider):
    form = PromptForm("greet")
    form.variables.children[0].value = "Ada"
    form.tags.value = "ui"
    form.run()

    assert form.status.value == ""
    assert "echo: v2 hello Ada" in form.reply.value and "greet v2 (prod)" in form.reply.value
    assert form.request_ids == [101]
    df = form.runs
    assert len(df) == 1 and df["output"].iloc[0] == "echo: v2 hello Ada"
    assert "echo: v2 hello Ada" in form.table.value
    assert greet.tracked[101]["tags"] == ["ui"]
    assert json.loads(runs()[0]["tags"]) == ["ui"]


def test_widget_never_shows_the_promptlayer_key(greet, fake_provider, promptlayer_env):
    form = PromptForm("greet")
    form.variables.children[0].value = "Ada"
    form.run()
    todo = [form.widget]
    while todo:
        widget = todo.pop()
        assert promptlayer_env not in json.dumps(widget.get_state(), default=str)
        todo.extend(getattr(widget, "children", ()))


def test_widget_shows_promptlayer_errors_in_the_form(greet):
    greet.outage = 503
    form = PromptForm(client=pl_magic.PromptLayer())  # nothing cached: one line in the form
    assert "HTTP 503" in form.status.value and "Traceback" not in form.status.value
    assert form.prompt.options == ()
