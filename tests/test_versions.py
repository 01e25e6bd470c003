"""Which version ran: label drift notices, pins in prompts.lock.json, PromptLayer's split
labels, the remote request id and the local model's provider, end to end against the fakes."""

from __future__ import annotations

import itertools
import json
import re

import pytest

import pl_magic
from pl_magic.core.errors import InvalidInputError, VersionNotFoundError
from tests.helpers import chat, model, publish, runs


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    """Every test in its own working directory: the pin file is written there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def greet(openai_env):
    for word in ("one", "two", "three"):
        publish("greet", chat(("user", word + " {name}")), model())
    pl_magic.set_label("greet", "prod", 1)


def _run(label="prod"):
    return pl_magic.run("greet", prompt_release_label=label, input_variables={"name": "Ada"})


def _notices(capsys):
    """The drift and pin notices on stderr (other notices, such as a cost estimate, aside)."""
    return [
        line
        for line in capsys.readouterr().err.splitlines()
        if line.startswith("pl_magic:") and (" is now v" in line or " is pinned to v" in line)
    ]


def _versions_match_outputs(df):
    """Each run's version is the one whose text it ran (v1 says "one", v2 "two")."""
    words = [o.split()[1] for o in df["output"]]
    assert words == [{1: "one", 2: "two"}[v] for v in df["prompt_version"]]


# -- drift -------------------------------------------------------------------------------


def test_a_moved_label_says_so_once(greet, fake_provider, capsys):
    _run()
    _run()
    assert _notices(capsys) == []
    pl_magic.set_label("greet", "prod", 2)
    result = _run()
    (line,) = _notices(capsys)
    assert re.fullmatch(r"pl_magic: greet@prod is now v2 \(was v1 at \d\d:\d\d\)", line)
    assert result["prompt_blueprint"]["prompt_version"] == 2
    _run()
    assert _notices(capsys) == []  # said once
    assert "two Ada" in json.dumps(fake_provider.requests[-1].body)


def test_runs_by_version_or_latest_are_not_tracked(greet, capsys):
    pl_magic.run("greet", input_variables={"name": "Ada"})
    publish("greet", chat(("user", "four {name}")), model())
    pl_magic.run("greet", input_variables={"name": "Ada"})
    pl_magic.run("greet", prompt_version=1, input_variables={"name": "Ada"})
    assert _notices(capsys) == []


def test_a_new_client_starts_afresh(greet, capsys, monkeypatch, tmp_path):
    _run()
    monkeypatch.setenv("PL_MAGIC_HOME", str(tmp_path / "other_home"))
    for word in ("uno", "dos"):
        publish("greet", chat(("user", word + " {name}")), model())
    pl_magic.set_label("greet", "prod", 2)
    _run()
    assert _notices(capsys) == []


# -- pins --------------------------------------------------------------------------------


def test_pin_writes_the_labels_used(greet, in_tmp):
    _run()
    pl_magic.set_label("greet", "staging", 3)
    _run("staging")
    path = pl_magic.pin()
    assert path == str(in_tmp / "prompts.lock.json")
    text = (in_tmp / "prompts.lock.json").read_text()
    assert json.loads(text) == {"version": 1, "pins": {"greet": {"prod": 1, "staging": 3}}}
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"  # diffable


def test_a_pin_is_honoured_and_the_move_reported(greet, fake_provider, capsys, in_tmp):
    _run()
    pl_magic.pin()
    pl_magic.set_label("greet", "prod", 3)
    capsys.readouterr()
    result = _run()
    assert "one Ada" in json.dumps(fake_provider.requests[-1].body)  # v1 ran, not v3
    assert result["prompt_blueprint"]["prompt_version"] == 1
    (line,) = _notices(capsys)
    assert line == (
        "pl_magic: greet@prod is pinned to v1 in prompts.lock.json; the label now points at "
        "v3: %plpin --update to follow it"
    )
    _run()
    assert _notices(capsys) == []  # said once
    row = runs()[-1]
    assert (row["release_label"], row["prompt_version"]) == ("prod", 1)  # asked for, ran
    # pin() without update keeps the pin; with it, the label is followed
    pl_magic.pin()
    assert json.loads((in_tmp / "prompts.lock.json").read_text())["pins"]["greet"]["prod"] == 1
    pl_magic.pin(update=True)
    assert json.loads((in_tmp / "prompts.lock.json").read_text())["pins"]["greet"]["prod"] == 3
    _run()
    assert "three Ada" in json.dumps(fake_provider.requests[-1].body)
    assert _notices(capsys) == []


def test_a_pin_to_a_missing_version_says_where_it_came_from(greet, in_tmp, fake_provider):
    (in_tmp / "prompts.lock.json").write_text('{"version": 1, "pins": {"greet": {"prod": 7}}}')
    with pytest.raises(VersionNotFoundError) as info:
        _run()
    assert str(info.value) == (
        "Prompt 'greet' has no version 7: existing versions are 1, 2, 3 (greet@prod is pinned "
        "to v7 in prompts.lock.json; the label points at v1: %plpin --update to pin it there)"
    )
    assert fake_provider.requests == []
    pl_magic.pin(update=True)
    assert json.loads((in_tmp / "prompts.lock.json").read_text())["pins"] == {"greet": {"prod": 1}}
    _run()
    assert len(fake_provider.requests) == 1


def test_pins_of_other_labels_are_kept(greet, in_tmp):
    (in_tmp / "prompts.lock.json").write_text(
        json.dumps({"version": 1, "pins": {"other": {"prod": 7}}})
    )
    _run()
    pl_magic.pin()
    pins = json.loads((in_tmp / "prompts.lock.json").read_text())["pins"]
    assert pins == {"greet": {"prod": 1}, "other": {"prod": 7}}


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        '{"version": 2, "pins": {}}',
        '{"version": 1, "pins": []}',
        '{"version": 1, "pins": {"greet": {"prod": "v1"}}}',
        '{"version": 1, "pins": {"greet": 3}}',
    ],
)
def test_a_malformed_pin_file_is_one_line(greet, in_tmp, fake_provider, text):
    (in_tmp / "prompts.lock.json").write_text(text)
    sent = len(fake_provider.requests)
    with pytest.raises(InvalidInputError) as info:
        _run()
    message = str(info.value)
    assert "prompts.lock.json" in message and "%plpin" in message and "\n" not in message
    assert len(fake_provider.requests) == sent  # nothing was called
    with pytest.raises(InvalidInputError, match=r"prompts\.lock\.json"):
        pl_magic.pin()


def test_plpin_magic(ip, greet, fake_provider, capsys, in_tmp):
    ip.run_cell_magic("plrun", "greet@prod --no-stream", "name: Ada\n")
    capsys.readouterr()
    ip.run_line_magic("plpin", "")
    out = capsys.readouterr().out
    assert "prompts.lock.json" in out and "greet@prod → v1" in out
    pl_magic.set_label("greet", "prod", 2)
    ip.run_cell_magic("plrun", "greet@prod --no-stream", "name: Ada\n")
    captured = capsys.readouterr()
    assert "echo: one Ada" in captured.out and "greet v1 (prod)" in captured.out
    assert "pinned to v1" in captured.err
    ip.run_line_magic("plpin", "--update")
    assert "greet@prod → v2" in capsys.readouterr().out
    ip.run_cell_magic("plrun", "greet@prod --no-stream", "name: Ada\n")
    assert "echo: two Ada" in capsys.readouterr().out


def test_plpin_with_a_malformed_file_is_one_line(ip, greet, in_tmp):
    (in_tmp / "prompts.lock.json").write_text("[]")
    with pytest.raises(InvalidInputError, match=r"prompts\.lock\.json"):
        ip.run_line_magic("plpin", "")


# -- PromptLayer's split labels ----------------------------------------------------------


@pytest.fixture
def split(promptlayer_env, openai_env, fake_promptlayer):
    fake_promptlayer.add_prompt("greet", chat(("user", "one {name}")), model())
    fake_promptlayer.add_prompt("greet", chat(("user", "two {name}")), model())
    fake_promptlayer.split_label("greet", "prod", [1, 2])
    return fake_promptlayer


@pytest.mark.parametrize("how", ["metadata", "no cache"])
def test_a_split_label_shows_each_runs_version(split, fake_provider, monkeypatch, how):
    extra = {"metadata": {"user": "u1"}}  # a dynamic label's filters: fetched every run
    if how == "no cache":
        monkeypatch.setenv("PL_MAGIC_TEMPLATE_TTL", "0")
        extra = {}
    df = pl_magic.run_many(
        "greet",
        versions="prod",
        repeat=4,
        input_variables={"name": "Ada"},
        concurrency=1,
        **extra,
    )
    assert list(df["release_label"]) == ["prod"] * 4
    versions = list(df["prompt_version"])  # what ran, run by run: the label alternates
    assert sorted(versions) == [1, 1, 2, 2] and all(a != b for a, b in itertools.pairwise(versions))
    _versions_match_outputs(df)
    cells = pl_magic.compare(df).columns
    assert sorted(cells) == ["openai/gpt-4o-mini · v1 (prod)", "openai/gpt-4o-mini · v2 (prod)"]
    logged = pl_magic.runs()
    assert list(logged["prompt_version"]) == versions


def test_a_split_label_in_a_magic_comparison(ip, split, fake_provider, capsys):
    ip.run_cell_magic(
        "plrun", "greet@prod --repeat 4 --concurrency 1 --meta user=u1 --out df", "name: Ada\n"
    )
    df = ip.user_ns["df"]
    assert sorted(df["prompt_version"]) == [1, 1, 2, 2]
    _versions_match_outputs(df)
    ip.run_cell_magic("plrun", "greet@prod --no-stream --meta user=u1", "name: Ada\n")
    out = capsys.readouterr().out
    ran = runs()[-1]["prompt_version"]
    assert f"greet v{ran} (prod)" in out  # the footer: the version that ran
    assert f"echo: {'one' if ran == 1 else 'two'} Ada" in out


# -- PromptLayer's request id ------------------------------------------------------------


def test_remote_request_id_is_a_column(split, fake_provider):
    df = pl_magic.run_many("greet", versions="1,2", input_variables={"name": "Ada"})
    tracked = {str(i) for i in split.tracked}
    assert len(tracked) == 2
    assert set(df["remote_request_id"]) == tracked
    logged = pl_magic.runs()
    assert set(logged["remote_request_id"]) == tracked
    # (added at the end, after the columns users had already, as batch_id was after it)
    assert list(logged.columns[-2:]) == ["remote_request_id", "batch_id"]
    assert set(logged["request_id"]).isdisjoint(tracked)  # the local ids stay the ids


def test_remote_request_id_is_missing_without_promptlayer(greet):
    df = pl_magic.run_many("greet", versions="prod", input_variables={"name": "Ada"})
    assert df["remote_request_id"].isna().all()
    assert pl_magic.runs()["remote_request_id"].isna().all()


# -- the local model reads as provider "local" -------------------------------------------


@pytest.fixture
def local_server(fake_provider, monkeypatch):
    """Local-model templates answered by the fake provider (the user's own server)."""
    from pl_magic.core import local_target

    monkeypatch.setenv(local_target.ENV_BASE_URL, fake_provider.openai_base_url)
    return local_target


def test_the_local_model_shows_as_provider_local(local_server, fake_provider, capsys, ip):
    from pl_magic.core import local_target

    publish(
        "capital",
        chat(("user", "capital of {country}?")),
        local_target.model_metadata(max_tokens=32),
        provider_base_url=local_target.base_url_spec(),
    )
    result = pl_magic.run("capital", input_variables={"country": "Peru"})
    # the request went through the OpenAI adapter; the blueprint stays PromptLayer's shape
    assert fake_provider.requests[-1].path.endswith("/chat/completions")
    assert result["prompt_blueprint"]["metadata"]["model"]["provider"] == "openai"
    assert runs()[-1]["provider"] == "local"
    ip.run_cell_magic("plrun", "capital --no-stream", "country: Chile\n")
    assert "— capital v1 · local/smollm2-135m-instruct · ttft" in capsys.readouterr().out
    df = pl_magic.run_many("capital", input_variables={"country": "Peru"})
    assert list(df["provider"]) == ["local"]
    assert list(pl_magic.compare(df).columns) == ["local/smollm2-135m-instruct · v1"]
    assert set(pl_magic.runs()["provider"]) == {"local"}


def test_promptlayer_is_told_openai_for_the_local_model(
    local_server, promptlayer_env, fake_promptlayer, fake_provider
):
    from pl_magic.core import local_target

    fake_promptlayer.provider_base_urls[local_target.LOCAL_NAME] = local_target.PLACEHOLDER_URL
    fake_promptlayer.add_prompt(
        "capital",
        chat(("user", "capital of {country}?")),
        local_target.model_metadata(),
        provider_base_url_name=local_target.LOCAL_NAME,
    )
    pl_magic.run("capital", input_variables={"country": "Peru"})
    assert runs()[-1]["provider"] == "local"
    (payload,) = fake_promptlayer.tracked.values()
    assert payload["provider_type"] == "openai"


def test_grid_cells_say_which_version_a_label_ran(ip, split, fake_provider, monkeypatch):
    from IPython.utils.capture import capture_output

    monkeypatch.setattr(ip, "kernel", object(), raising=False)  # a front end: the live grid
    with capture_output(display=True) as captured:
        ip.run_cell_magic(
            "plrun", "greet@prod --repeat 2 --concurrency 1 --meta user=u1", "name: Ada\n"
        )
    html = captured.outputs[-1].data["text/html"]
    # the row is named by the version the label pointed at when the grid was drawn; the run
    # that got the other version says so
    row = re.search(r"openai/gpt-4o-mini · v(\d) \(prod\)</th>", html)
    assert row, html
    other = 3 - int(row[1])
    assert f'">ran v{other}</div>' in html and f'">ran v{row[1]}</div>' not in html


def test_a_pin_on_promptlayer_holds_a_split_label(split, fake_provider, in_tmp, capsys):
    pl_magic.run_many("greet", versions="prod", input_variables={"name": "Ada"}, metadata={"u": 1})
    pl_magic.pin()
    pins = json.loads((in_tmp / "prompts.lock.json").read_text())["pins"]
    assert pins == {"greet": {"prod": 1}}  # what PromptLayer's /labels says the label is
    capsys.readouterr()
    df = pl_magic.run_many(
        "greet",
        versions="prod",
        repeat=4,
        input_variables={"name": "Ada"},
        concurrency=1,
        metadata={"u": 1},
    )
    assert list(df["prompt_version"]) == [1, 1, 1, 1]
    assert [o.split()[1] for o in df["output"]] == ["one"] * 4
    notices = _notices(capsys)
    assert notices == [
        "pl_magic: greet@prod is pinned to v1 in prompts.lock.json; the label now points at "
        "v2: %plpin --update to follow it"
    ]


def test_a_split_label_is_not_reported_run_after_run(split, fake_provider, capsys):
    pl_magic.run_many(
        "greet",
        versions="prod",
        repeat=6,
        input_variables={"name": "Ada"},
        concurrency=1,
        metadata={"user": "u1"},
    )
    lines = _notices(capsys)
    # each direction of the split once (a label moved back is news too), not six lines
    assert len(lines) == 2
    assert re.fullmatch(r"pl_magic: greet@prod is now v2 \(was v1 at \d\d:\d\d\)", lines[0])
    assert re.fullmatch(r"pl_magic: greet@prod is now v1 \(was v2 at \d\d:\d\d\)", lines[1])


def test_the_footer_of_an_unlogged_local_result_says_local():
    from pl_magic.core import local_target
    from pl_magic.ui.footer import footer

    blueprint = {
        "prompt_name": "capital",
        "prompt_version": 2,
        "metadata": local_target.model_metadata(),
        "provider_base_url": local_target.base_url_spec(),
    }
    shown = footer({"request_id": None, "prompt_blueprint": blueprint})
    assert "capital v2 · local/smollm2-135m-instruct · " in shown
    blueprint["provider_base_url"] = None  # the same model name on OpenAI's own endpoint
    assert "· openai/smollm2-135m-instruct · " in footer({"prompt_blueprint": blueprint})


# -- a real kernel: the pin file is beside the notebook, and outlives the kernel ----------


@pytest.mark.slow
def test_a_notebook_pins_beside_itself_and_a_new_kernel_honours_it(greet, tmp_path):
    import nbformat
    from nbclient import NotebookClient

    folder = tmp_path / "analysis"
    folder.mkdir()

    def execute(*sources: str) -> nbformat.NotebookNode:
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
        nb.cells = [nbformat.v4.new_code_cell(s) for s in ("%load_ext pl_magic", *sources)]
        NotebookClient(
            nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
        ).execute()
        return nb

    def text(cell: nbformat.NotebookNode) -> str:
        return "".join(o.get("text", "") + str(o.get("data", "")) for o in cell.outputs)

    execute("%%plrun greet@prod --no-stream\nname: Ada\n", "%plpin")
    assert json.loads((folder / "prompts.lock.json").read_text()) == {
        "version": 1,
        "pins": {"greet": {"prod": 1}},
    }
    assert not (tmp_path / "prompts.lock.json").exists()
    pl_magic.set_label("greet", "prod", 2)
    nb = execute("%%plrun greet@prod --no-stream\nname: Ada\n")  # a fresh kernel
    ran = nb.cells[1]
    assert "echo: one Ada" in text(ran) and "greet v1 (prod)" in text(ran), ran.outputs
    assert "greet@prod is pinned to v1 in prompts.lock.json" in text(ran), ran.outputs
