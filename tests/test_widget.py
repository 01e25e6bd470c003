"""The widget form, driven in a kernel-less Python session against the fake provider server."""

from __future__ import annotations

import json
import re
import threading
import time

import pytest

import pl_magic
from pl_magic.surfaces.widget import PromptForm
from tests.helpers import chat, model, publish, runs


@pytest.fixture
def prompts(openai_env):
    publish(
        "greet",
        chat(("system", "Be {tone}"), ("user", "v1 hi {name}")),
        model(temperature=0.2, max_tokens=40),
    )
    publish("greet", chat(("user", "v2 hello {name}")), model(temperature=0.3, max_tokens=50))
    publish("greet", chat(("user", "v3 hey {name} {extra}")), model())
    pl_magic.set_label("greet", "prod", 2)
    publish("other", chat(("user", "other {topic}")), model())


def _vars(form: PromptForm) -> dict[str, str]:
    return {b.description: b.value for b in form.variables.children}


def test_defaults_come_from_the_registry(prompts):
    form = PromptForm("greet")
    assert form.prompt.options == ("greet", "other")
    labels = [label for label, _ in form.version.options]
    assert labels[0] == "prod → v2" and "v3 (latest)" in labels
    assert form.version.value == ("label", "prod")
    assert (form.provider.value, form.model.value) == ("openai", "gpt-4o-mini")
    assert (form.temperature.value, form.max_tokens.value) == (0.3, 50)
    assert list(_vars(form)) == ["name"]


def test_typed_values_survive_a_version_change(prompts):
    form = PromptForm("greet")
    form.variables.children[0].value = "Ada"
    form.version.value = ("version", 1)
    assert _vars(form) == {"name": "Ada", "tone": ""}
    form.version.value = ("version", 3)
    assert _vars(form) == {"extra": "", "name": "Ada"}


def test_run_streams_into_the_form_and_lists_the_run(prompts, fake_provider):
    form = PromptForm("greet")
    form.variables.children[0].value = "Ada"
    form.temperature.value = 0.9
    form.tags.value = "ui, demo"
    form.metadata.value = "who=me"
    form.run()

    (req,) = fake_provider.requests
    assert req.body["stream"] is True
    assert (req.body["temperature"], req.body["max_tokens"]) == (0.9, 50)
    assert "v2 hello Ada" in json.dumps(req.body)
    assert "echo: v2 hello Ada" in form.reply.value and "greet v2 (prod)" in form.reply.value
    assert form.status.value == ""
    (row,) = runs()
    assert json.loads(row["tags"]) == ["ui", "demo"] and json.loads(row["metadata"]) == {
        "who": "me"
    }
    df = form.runs
    assert list(df["request_id"]) == [row["request_id"]]
    assert "echo: v2 hello Ada" in form.table.value
    assert not form.run_button.disabled and form.stop_button.disabled


def test_model_and_repeat(prompts, fake_provider):
    form = PromptForm("other")
    form.variables.children[0].value = "tea"
    form.model.value = "gpt-4.1-mini"
    form.repeat.value = 2
    form.stream.value = False
    form.run()
    assert [r.body["model"] for r in fake_provider.requests] == ["gpt-4.1-mini"] * 2
    assert form.reply.value.count("echo: other tea") == 2
    assert len(form.runs) == 2


def test_empty_variable_is_a_one_line_error_in_the_form(prompts, fake_provider):
    form = PromptForm("greet")
    form.run()
    assert "name" in form.status.value and "pl-magic-error" in form.status.value
    assert "Traceback" not in form.status.value and "\n" not in form.status.value
    assert fake_provider.requests == [] and runs() == []


def test_provider_error_shows_one_line(prompts, fake_provider):
    publish("bad", chat(("user", "hi")), model("gpt-err-401"))
    form = PromptForm("bad")
    form.run()
    assert "auth" in form.status.value and "\n" not in form.status.value
    assert runs()[0]["status"] == "error" and len(form.runs) == 1


def _stopped_mid_stream(fake_provider) -> PromptForm:
    """A form whose 300-word streamed run was stopped after its first words."""
    fake_provider.stream_chunks = [f"w{i} " for i in range(300)]
    fake_provider.chunk_delay_s = 0.01
    form = PromptForm("greet")
    form.variables.children[0].value = "Ada"
    form.start()
    deadline = time.monotonic() + 10
    while "w5 " not in form.reply.value and time.monotonic() < deadline:
        time.sleep(0.01)
    form.stop()
    form._worker.join(10)
    return form


def test_stop_keeps_partial_text_and_logs_cancelled(prompts, fake_provider):
    form = _stopped_mid_stream(fake_provider)
    (row,) = runs()
    assert row["status"] == "cancelled" and row["output"].startswith("w0 w1")
    assert "w299" not in row["output"]
    assert "cancelled" in form.reply.value and "w0 w1" in form.reply.value


def test_no_widget_value_shows_the_api_key(prompts, fake_provider, openai_env):
    form = PromptForm("greet")
    form.variables.children[0].value = "Ada"
    form.run()
    seen, todo = 0, [form.widget]
    while todo:
        widget = todo.pop()
        seen += 1
        state = json.dumps(widget.get_state(), default=str)
        assert openai_env not in state
        todo.extend(getattr(widget, "children", ()))
    assert seen > 20


def test_plform_magic_builds_the_form(prompts, shell):
    ip = shell
    ip.run_line_magic("load_ext", "pl_magic")
    try:
        form = ip.run_line_magic("plform", "greet")
        assert isinstance(form, PromptForm) and form.prompt.value == "greet"
        assert isinstance(pl_magic.form("other"), PromptForm)
    finally:
        ip.run_line_magic("unload_ext", "pl_magic")


def _wait_until(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_a_click_the_moment_run_is_enabled_starts_the_next_run(prompts, fake_provider):
    """The browser sends a click as soon as it shows Run enabled: that click must run.

    The observer clicks from inside the change that enables the button, the earliest moment
    a person (or Playwright) could; the run before it must be entirely over by then.
    """
    form = PromptForm("other")
    form.variables.children[0].value = "tea"
    clicks: list[int] = []

    def click_when_enabled(change: dict) -> None:
        if change["new"] is False and not clicks:
            clicks.append(len(form.runs))  # the first run is in the table already
            form.run_button.click()

    form.run_button.observe(click_when_enabled, names="disabled")
    form.start()
    assert _wait_until(lambda: len(fake_provider.requests) == 2), (
        f"the click on the re-enabled Run button was dropped: {form.status.value!r}"
    )
    form.wait()
    assert clicks == [1]
    assert len(form.runs) == 2 and form.table.value.count("echo: other tea") == 2
    assert not form.run_button.disabled and form.stop_button.disabled
    assert form.status.value == ""


def test_a_click_during_a_run_is_refused_visibly(prompts, fake_provider):
    fake_provider.hold_before_last = hold = threading.Event()
    form = PromptForm("other")
    form.variables.children[0].value = "tea"
    form.start()
    try:
        assert _wait_until(lambda: len(fake_provider.requests) == 1)
        assert form.run_button.disabled and not form.stop_button.disabled
        form.run_button.click()  # a script's click: the browser shows the button disabled
        assert "in progress" in form.status.value and "pl-magic-notice" in form.status.value
    finally:
        hold.set()
    form.wait()
    assert len(fake_provider.requests) == 1 and len(form.runs) == 1
    assert not form.run_button.disabled


# -- what a newcomer sees (issue 19) -------------------------------------------------------------


def test_a_bare_form_selects_the_last_used_prompt_and_its_model(prompts, fake_provider):
    first = PromptForm()
    assert first.prompt.value == "greet"  # nothing run yet: the first prompt
    assert (first.provider.value, first.model.value) == ("openai", "gpt-4o-mini")
    pl_magic.run("other", input_variables={"topic": "tea"})
    assert PromptForm().prompt.value == "other"  # the prompt of the newest run


def test_a_bare_form_on_an_empty_registry_says_how_to_make_a_prompt(openai_env):
    form = PromptForm()
    assert form.prompt.value is None
    assert "%%plprompt NAME" in form.status.value
    form.run()
    assert "Choose a prompt" in form.status.value and "prompt name is required" not in (
        form.status.value
    )


def test_a_stopped_run_is_in_the_forms_runs(prompts, fake_provider):
    form = _stopped_mid_stream(fake_provider)
    assert list(form.runs["status"]) == ["cancelled"]
    assert ">cancelled<" in form.table.value


def test_the_runs_table_shows_the_last_20_with_seconds_and_dollars(prompts, fake_provider):
    form = PromptForm("greet")
    form.variables.children[0].value = "Ada"
    form.stream.value = False
    form.repeat.value = 23
    form.run()
    assert len(form.runs) == 23
    table = form.table.value
    assert "3 earlier runs not shown" in table
    assert table.count("<tr") == 1 + 20  # the header and the newest 20
    latencies = re.findall(r"<td>(\d+\.\d\ds)</td>", table)
    assert len(latencies) == 20
    assert "overflow-x:auto" in table
    assert form.temperature.style.description_width == "7em"
