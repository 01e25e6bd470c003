"""%%plrun and friends through a real IPython shell, against the fake provider server."""

from __future__ import annotations

import json

import pytest
from IPython.core.error import UsageError

import pl_magic
from pl_magic.core.errors import InvalidInputError, LabelNotFoundError, PlMagicError
from tests.helpers import chat, model, publish, runs


@pytest.fixture
def greet(openai_env):
    publish("greet", chat(("user", "v1 hi {name}")), model(temperature=0.1))
    publish("greet", chat(("user", "v2 hello {name}")), model(temperature=0.1))
    publish("greet", chat(("user", "v3 hey {name}")), model(temperature=0.1))
    pl_magic.set_label("greet", "prod", 2)
    pl_magic.set_label("greet", "staging", 3)


def _bodies(fake):
    return [r.body for r in fake.requests]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("greet", "v3 hey Ada"),
        ("greet@prod", "v2 hello Ada"),
        ("greet:1", "v1 hi Ada"),
        ("prompts:/greet@staging", "v3 hey Ada"),
        ("greet --version 1", "v1 hi Ada"),
        ("greet --label prod", "v2 hello Ada"),
    ],
)
def test_target_forms_pick_the_version(ip, greet, fake_provider, capsys, line, expected):
    ip.run_cell_magic("plrun", line, "name: Ada\n")
    out = capsys.readouterr().out
    assert f"echo: {expected}" in out
    assert "greet v" in out and "openai/gpt-4o-mini" in out and "request " in out  # footer
    assert expected in json.dumps(fake_provider.requests[-1].body)


def test_options_reach_the_request_and_the_log(ip, greet, fake_provider, capsys):
    group = pl_magic.create_group()
    ip.run_cell_magic(
        "plrun",
        f"greet@prod --model gpt-4.1-mini --param temperature=0.7 --param max_tokens=20 "
        f"--tag a --tag b --meta user=u1 --meta n=3 --group {group} --no-stream",
        "name: Ada\n",
    )
    body = fake_provider.requests[-1].body
    assert body["model"] == "gpt-4.1-mini" and body["stream"] is False
    assert (body["temperature"], body["max_tokens"]) == (0.7, 20)
    (row,) = runs()
    assert json.loads(row["tags"]) == ["a", "b"]
    assert json.loads(row["metadata"]) == {"user": "u1", "n": 3}
    assert row["group_id"] == group and row["model"] == "gpt-4.1-mini"
    assert "echo: v2 hello Ada" in capsys.readouterr().out


def test_braces_in_yaml_and_on_the_line_stay_literal(ip, fake_provider):
    publish("echo", chat(("user", "{text}")))
    ip.user_ns["x"] = "EXPANDED"
    ip.run_cell_magic("plrun", "echo --tag {x}", 'text: "{x} and {{y}} and $x"\n')
    sent = fake_provider.requests[-1].body["messages"][0]["content"]
    assert sent == [{"type": "text", "text": "{x} and {{y}} and $x"}]
    assert json.loads(runs()[0]["tags"]) == ["{x}"]


def test_json_body_vars_out_and_no_log(ip, greet, fake_provider):
    ip.user_ns["defaults"] = {"name": "FromVars", "extra": 1}
    ip.run_cell_magic("plrun", "greet@prod --vars defaults --out res", '{"name": "FromBody"}')
    res = ip.user_ns["res"]
    assert res["request_id"] and "FromBody" in json.dumps(res["prompt_blueprint"])
    ip.run_line_magic("plrun", "greet@prod --vars defaults --no-log")
    assert "FromVars" in json.dumps(fake_provider.requests[-1].body)
    assert len(runs()) == 1


def test_line_magic_with_var_options(ip, greet, fake_provider, capsys):
    ip.run_line_magic("plrun", "greet@prod --var name=Line")
    assert "echo: v2 hello Line" in capsys.readouterr().out


def test_markdown_format(ip, greet, capsys):
    ip.run_cell_magic("plrun", "greet@prod --format markdown", "name: Md")
    assert "echo: v2 hello Md" in capsys.readouterr().out


def test_bad_yaml_body_is_a_one_line_error_and_nothing_runs(ip, greet, fake_provider):
    with pytest.raises(InvalidInputError) as info:
        ip.run_cell_magic("plrun", "greet", "name: [unclosed\n")
    assert "YAML" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(InvalidInputError):
        ip.run_cell_magic("plrun", "greet", "- a list\n- not a mapping\n")
    assert fake_provider.requests == [] and runs() == []


def test_short_errors_render_one_line_and_can_be_turned_off(ip, greet):
    result = ip.run_cell("%%plrun greet@nope\nname: x\n")
    err = result.error_in_exec
    assert isinstance(err, LabelNotFoundError)
    assert len(err._render_traceback_()) == 1
    ip.run_line_magic("config", "PlMagic.short_errors = False")
    result = ip.run_cell("%%plrun greet@nope\nname: x\n")
    assert not hasattr(result.error_in_exec, "_render_traceback_")


def test_unknown_option_is_a_usage_error(ip, greet):
    with pytest.raises(UsageError):
        ip.run_cell_magic("plrun", "greet --frobnicate 3", "name: x")


def test_missing_variable_names_it(ip, greet, fake_provider):
    with pytest.raises(PlMagicError) as info:
        ip.run_line_magic("plrun", "greet")
    assert "name" in str(info.value)
    assert fake_provider.requests == []


def test_plruns_plprompts_and_compare(ip, greet, fake_provider):
    ip.run_cell_magic("plrun", "greet --versions 1,2 --repeat 2 --tag cmp", "name: Q")
    df = ip.run_line_magic("plruns", "--prompt greet --limit 3")
    assert len(df) == 3 and list(df.columns[:3]) == ["request_id", "started_at", "prompt_name"]
    assert len(ip.run_line_magic("plruns", "--tag cmp")) == 4
    prompts = ip.run_line_magic("plprompts", "")
    assert prompts.loc["greet", "labels"] == {"prod": 2, "staging": 3}
    table = pl_magic.compare(pl_magic.runs(tag="cmp"))
    assert table.shape[1] == 2  # v1 and v2 side by side
    assert "mean latency_s" in table.index and "error rate" in table.index


def test_unload_removes_the_magics(shell, openai_env):
    shell.run_line_magic("load_ext", "pl_magic")
    assert "plrun" in shell.magics_manager.magics["cell"]
    shell.run_line_magic("unload_ext", "pl_magic")
    assert "plrun" not in shell.magics_manager.magics["cell"]
    assert "plrun" not in shell.magics_manager.magics["line"]


def test_config_settings_take_effect(ip, fake_provider, capsys):
    pl_magic.publish({"prompt_name": "bare", "prompt_template": chat(("user", "hi {name}"))})
    ip.run_line_magic("config", "PlMagic.default_provider = 'openai'")
    ip.run_line_magic("config", "PlMagic.default_model = 'gpt-4.1-nano'")
    ip.run_line_magic("config", "PlMagic.stream = False")
    try:
        ip.run_cell_magic("plrun", "bare", "name: Cfg")
    finally:
        ip.run_line_magic("config", "PlMagic.stream = True")
        ip.run_line_magic("config", "PlMagic.default_provider = None")
    body = fake_provider.requests[-1].body
    assert body["model"] == "gpt-4.1-nano" and body["stream"] is False
    assert "echo: hi Cfg" in capsys.readouterr().out


def test_vars_that_contain_themselves_are_one_line(ip, greet, fake_provider):
    d = {"name": "Ada"}
    d["me"] = d
    ip.user_ns["d"] = d
    with pytest.raises(InvalidInputError, match="'me' contains itself"):
        ip.run_line_magic("plrun", "greet --vars d")
    assert fake_provider.requests == [] and runs() == []


def test_concurrency_below_one_is_refused_not_replaced(ip, greet, fake_provider):
    for option in ("--concurrency 0", "--concurrency -3", "--concurrency x"):
        with pytest.raises(UsageError, match="see %plrun"):
            ip.run_line_magic(
                "plrun", f"greet --models gpt-4o-mini,gpt-4.1-mini {option} --var n=1"
            )
    assert fake_provider.requests == []
    try:
        ip.run_line_magic("config", "PlMagic.concurrency = 0")  # %config logs the refusal
        assert ip.magics_manager.registry["PlMagic"].concurrency == 8
    finally:  # (the session's shell keeps its config for the next load_ext)
        ip.config.PlMagic.pop("concurrency", None)
    df = ip.run_line_magic(
        "plrun", "greet@prod --models gpt-4o-mini,gpt-4.1-mini --concurrency 1 --var name=A"
    )
    assert list(df["status"]) == ["ok", "ok"]


def test_overrides_cannot_change_the_model_or_streaming(ip, greet, fake_provider):
    for param, fix in (("model=gpt-4o", "--model"), ("stream=false", "--no-stream")):
        with pytest.raises(InvalidInputError, match=f"\\({fix} in %%plrun and pl-magic\\)"):
            ip.run_cell_magic("plrun", f"greet@prod --param {param}", "name: Ada")
    with pytest.raises(InvalidInputError, match="pass model='gpt-4o' instead"):
        pl_magic.run(
            "greet", input_variables={"name": "A"}, model_parameter_overrides={"model": "gpt-4o"}
        )
    assert fake_provider.requests == [] and runs() == []
    # the way that works: model= sends and logs the same model
    pl_magic.run("greet", input_variables={"name": "A"}, model="gpt-4o")
    assert fake_provider.requests[-1].body["model"] == "gpt-4o"
    assert runs()[-1]["model"] == "gpt-4o"


def test_an_error_names_the_fix_in_the_cells_words(ip, greet):
    result = ip.run_cell("%%plrun zzzzzz\nname: x\n")
    (line,) = result.error_in_exec._render_traceback_()
    assert "%plprompts" in line and "pl_magic.prompts()" not in line
    with pytest.raises(PlMagicError, match=r"pl_magic\.prompts\(\)"):  # Python keeps its words
        pl_magic.run("zzzzzz")
