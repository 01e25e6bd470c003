"""Batch mode (issue 17): comparisons submitted as provider batches through the real SDKs,
against the fake provider server's batch APIs on 127.0.0.1 (tests/fakes/provider_batches.py).

No SDK or engine function is replaced: the fake's knobs decide how long a batch runs, how it
ends and which requests fail; the environment sets pl_magic's poll interval and limits.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import pl_magic
from pl_magic.core.errors import InvalidInputError
from pl_magic.engine import pricing
from tests.helpers import chat, model, publish, runs

GREET = chat(("system", "Be brief."), ("user", "hi {name}"))
NAMES = [{"name": "Ada"}, {"name": "Bo"}, {"name": "Cy"}]


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Polls milliseconds apart (the fake ends a batch after a few reads)."""
    monkeypatch.setenv("PL_MAGIC_BATCH_POLL_S", "0.01")
    monkeypatch.setenv("PL_MAGIC_BATCH_POLL_MAX_S", "0.05")


@pytest.fixture
def greet(openai_env):
    publish("greet", GREET, model())


@pytest.fixture
def claude(anthropic_env):
    publish("claude", GREET, model("claude-haiku-4-5", "anthropic", max_tokens=64))


def _batches(fake, provider):
    return fake.batches.submitted(provider)


# -- submit → poll → results, per provider ------------------------------------------------------


def test_openai_batch_submit_poll_results(greet, fake_provider):
    fake_provider.batches.processing_polls = 2
    df = pl_magic.run_many("greet", inputs=NAMES[:2], repeat=2, batch=True)
    assert list(df["status"]) == ["ok"] * 4
    assert list(df["output"]) == ["echo: hi Ada"] * 2 + ["echo: hi Bo"] * 2
    (job,) = _batches(fake_provider, "openai")
    assert len(job.requests) == 4 and job.endpoint == "/v1/chat/completions"
    # the request a live call sends, minus streaming
    body = job.requests[0].body
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert "stream" not in body and "stream_options" not in body
    assert fake_provider.requests_for("openai.chat") == []  # nothing went live
    polls = fake_provider.batches.calls_of("openai", "retrieve")
    assert len(polls) >= 3  # in progress twice, then ended
    rows = runs()
    assert len(rows) == 4 and {r["batch_id"] for r in rows} == {df["batch_id"][0]}
    assert {r["request_id"] for r in rows} == set(df["request_id"])
    # the same columns as a live run: tokens, raw response, replay key, costed at batch rates
    row = rows[0]
    assert row["input_tokens"] and row["output_tokens"] and row["cache_key"]
    assert json.loads(row["raw_response"])["object"] == "chat.completion"
    live = pricing.cost_usd("openai", "gpt-4o-mini", row["input_tokens"], row["output_tokens"])
    assert row["cost_usd"] == pytest.approx(live / 2)
    assert row["ttft_s"] is None and row["latency_s"] is None


def test_openai_responses_api_type_batches_on_its_endpoint(openai_env, fake_provider):
    publish("resp", GREET, model(api_type="responses"))
    df = pl_magic.run_many("resp", inputs=NAMES[:2], batch=True)
    assert list(df["output"]) == ["echo: hi Ada", "echo: hi Bo"]
    (job,) = _batches(fake_provider, "openai")
    assert job.endpoint == "/v1/responses"


def test_anthropic_message_batches(claude, fake_provider):
    fake_provider.batches.processing_polls = 1
    fake_provider.batches.results_order = "reversed"  # matched by custom_id, not by order
    df = pl_magic.run_many("claude", inputs=NAMES, batch=True)
    assert list(df["output"]) == ["echo: hi Ada", "echo: hi Bo", "echo: hi Cy"]
    assert list(df["status"]) == ["ok"] * 3
    (job,) = _batches(fake_provider, "anthropic")
    params = job.requests[0].body
    assert params["system"] == "Be brief." and params["max_tokens"] == 64
    assert "stream" not in params
    assert fake_provider.requests_for("anthropic.messages") == []
    assert {r["provider"] for r in runs()} == {"anthropic"}


def test_two_models_are_two_provider_jobs_of_one_job(greet, anthropic_env, fake_provider):
    df = pl_magic.run_many(
        "greet", models=["gpt-4o-mini", "claude-haiku-4-5"], inputs=NAMES[:2], batch=True
    )
    assert list(df["model"]) == ["gpt-4o-mini", "claude-haiku-4-5"] * 2
    assert df["batch_id"].nunique() == 1
    assert len(_batches(fake_provider, "openai")) == len(_batches(fake_provider, "anthropic")) == 1
    listed = pl_magic.batches()
    assert len(listed) == 1 and listed["ok"][0] == 4 and listed["status"][0] == "done"
    assert "openai/gpt-4o-mini" in listed["provider_jobs"][0]
    assert "anthropic/claude-haiku-4-5" in listed["provider_jobs"][0]


# -- failures -----------------------------------------------------------------------------------


def test_partial_failures_are_error_rows_in_pl_magics_categories(greet, fake_provider):
    df = pl_magic.run_many(
        "greet",
        inputs=[{"name": "Ada"}, {"name": "batch-err-429"}, {"name": "batch-err-400"}],
        batch=True,
    )
    assert list(df["status"]) == ["ok", "error", "error"]
    assert list(df["error_category"][1:]) == ["rate_limit", "bad_request"]
    assert "HTTP 429" in df["error"][1]
    rows = {r["request_id"]: r for r in runs()}
    assert len(rows) == 3  # failed requests are logged runs too


def test_a_batch_the_provider_fails_fails_its_runs(greet, fake_provider):
    fake_provider.batches.outcome = "failed"
    df = pl_magic.run_many("greet", inputs=NAMES[:2], batch=True)
    assert list(df["status"]) == ["error", "error"]
    assert all("the batch failed" in e for e in df["error"])


def test_an_expired_batch_keeps_what_it_finished(claude, fake_provider):
    fake_provider.batches.outcome = "expired"
    fake_provider.batches.processed_before_stop = 1
    df = pl_magic.run_many("claude", inputs=NAMES, batch=True)
    assert list(df["status"]) == ["ok", "error", "error"]
    assert list(df["error_category"])[1:] == ["timeout", "timeout"]


def test_a_run_that_fails_before_any_call_is_an_error_row_not_submitted(greet, fake_provider):
    publish("needs", chat(("user", "hi {name} from {city}")), model())
    rows = [{"name": "Ada", "city": "Oslo"}, {"name": "Bo"}]
    df = pl_magic.run_many("needs", inputs=rows, batch=True)
    assert list(df["status"]) == ["ok", "error"]
    assert "city" in df["error"][1] and df["request_id"].isna()[1]
    (job,) = _batches(fake_provider, "openai")
    assert len(job.requests) == 1
    assert len(runs()) == 1  # as live: a run that never reached the provider is not logged
    assert pl_magic.batches()["error"][0] == 1


# -- cancel ---------------------------------------------------------------------------------------


def test_cancel_logs_what_finished_and_cancels_the_rest(claude, fake_provider):
    fake_provider.batches.processing_polls = 1000
    fake_provider.batches.processed_before_stop = 1
    job = pl_magic.run_many("claude", inputs=NAMES, batch=True, wait=False)
    assert job.status().status == "running"
    status = pl_magic.cancel(job)
    assert status.status in ("cancelling", "cancelled")
    df = pl_magic.wait(job.id)
    assert list(df["status"]) == ["ok", "cancelled", "cancelled"]
    assert pl_magic.batches()["status"][0] == "cancelled"
    assert len(fake_provider.batches.calls_of("anthropic", "cancel")) == 1


def test_cancel_of_an_openai_batch(greet, fake_provider):
    fake_provider.batches.processing_polls = 1000
    job = pl_magic.run_many("greet", inputs=NAMES, batch=True, wait=False)
    pl_magic.cancel(job.id[:8])  # a unique prefix names it
    df = pl_magic.wait(job)
    assert list(df["status"]) == ["cancelled"] * 3
    assert [r["status"] for r in runs()] == ["cancelled"] * 3


# -- size limits --------------------------------------------------------------------------------


def test_split_at_the_request_limit(greet, fake_provider, monkeypatch):
    fake_provider.batches.openai_max_requests = 3  # the fake fails a larger batch
    monkeypatch.setenv("PL_MAGIC_BATCH_MAX_REQUESTS", "3")
    df = pl_magic.run_many("greet", inputs=NAMES, repeat=3, batch=True)
    assert list(df["status"]) == ["ok"] * 9
    assert [len(j.requests) for j in _batches(fake_provider, "openai")] == [3, 3, 3]
    assert df["batch_id"].nunique() == 1


def test_split_at_the_byte_limit(claude, fake_provider, monkeypatch):
    body = len(json.dumps(_batches_body()))  # about one request's size
    fake_provider.batches.anthropic_max_bytes = 3 * body
    monkeypatch.setenv("PL_MAGIC_BATCH_MAX_BYTES", str(2 * body))
    df = pl_magic.run_many("claude", inputs=NAMES, repeat=2, batch=True)
    assert list(df["status"]) == ["ok"] * 6
    sizes = [len(j.requests) for j in _batches(fake_provider, "anthropic")]
    assert sum(sizes) == 6 and len(sizes) >= 3 and max(sizes) <= 2


def _batches_body():
    return {
        "custom_id": "0" * 32,
        "params": {
            "model": "claude-haiku-4-5",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi Ada"}]}],
            "system": "Be brief.",
            "max_tokens": 64,
        },
    }


# -- routes that cannot batch ---------------------------------------------------------------------


def test_the_local_model_cannot_batch_its_runs_go_live_with_a_notice(
    fake_provider, monkeypatch, capsys
):
    from pl_magic.core import local_target

    monkeypatch.setenv(local_target.ENV_BASE_URL, fake_provider.openai_base_url)
    publish(
        "local",
        GREET,
        local_target.model_metadata(max_tokens=16),
        provider_base_url=local_target.base_url_spec(),
    )
    df = pl_magic.run_many("local", inputs=NAMES[:2], batch=True)
    assert list(df["output"]) == ["echo: hi Ada", "echo: hi Bo"]
    err = capsys.readouterr().err
    assert "local/smollm2-135m-instruct cannot run as a provider batch" in err
    assert "2 runs go live" in err and err.count("cannot run as a provider batch") == 1
    assert len(fake_provider.requests_for("openai.chat")) == 2
    assert fake_provider.batches.submitted() == []
    assert set(df["batch_id"]) == {df["batch_id"][0]}  # still the job's runs
    assert pl_magic.batches()["status"][0] == "done"


def test_claude_on_vertex_cannot_batch_and_goes_live(anthropic_vertex_env, fake_provider, capsys):
    publish("vx", GREET, model("claude-sonnet-4-5@20250929", "vertexai", max_tokens=32))
    df = pl_magic.run_many("vx", inputs=NAMES[:1], batch=True)
    assert list(df["output"]) == ["echo: hi Ada"]
    assert "Cloud Storage or BigQuery" in capsys.readouterr().err
    assert len(fake_provider.requests_for("anthropic.vertex")) == 1


# -- re-attach ------------------------------------------------------------------------------------


def test_the_same_comparison_again_attaches_instead_of_submitting(greet, fake_provider, capsys):
    fake_provider.batches.processing_polls = 1000
    job = pl_magic.run_many("greet", inputs=NAMES, batch=True, wait=False)
    again = pl_magic.run_many("greet", inputs=NAMES, batch=True, wait=False)
    assert again.id == job.id
    assert "attached to batch job" in capsys.readouterr().err
    fake_provider.batches.processing_polls = 0
    df = pl_magic.run_many("greet", inputs=NAMES, batch=True)  # waits: the first job's runs
    assert list(df["status"]) == ["ok"] * 3 and set(df["batch_id"]) == {job.id}
    finished = pl_magic.run_many("greet", inputs=NAMES, batch=True)  # a finished job too
    assert list(finished["request_id"]) == list(df["request_id"])
    assert len(_batches(fake_provider, "openai")) == 1
    assert len(runs()) == 3
    # another comparison (other inputs), or reattach=False, is a new job
    pl_magic.run_many("greet", inputs=NAMES[:2], batch=True)
    pl_magic.run_many("greet", inputs=NAMES, batch=True, reattach=False)
    assert len(_batches(fake_provider, "openai")) == 3


def test_a_new_handle_resumes_a_job_from_the_log_alone(greet, fake_provider):
    from pl_magic.client import default_client
    from pl_magic.engine.batch_jobs import BatchJob

    fake_provider.batches.processing_polls = 1000
    job = pl_magic.run_many("greet", inputs=NAMES, batch=True, wait=False)
    fake_provider.batches.processing_polls = 0
    fresh = BatchJob(default_client().engine, job.id)  # nothing in memory but the id
    assert fresh.wait().status == "done"
    assert [r["output"] for r in runs()] == [f"echo: hi {n['name']}" for n in NAMES]


# -- replay, scorers, PromptLayer -----------------------------------------------------------------


def test_replay_serves_recorded_runs_and_submits_only_the_misses(greet, fake_provider):
    pl_magic.run_many("greet", inputs=NAMES[:2])  # recorded live
    fake_provider.reset()
    df = pl_magic.run_many("greet", inputs=NAMES, batch=True, cache="replay")
    assert list(df["output"]) == [f"echo: hi {n['name']}" for n in NAMES]
    assert list(df["cached"]) == [True, True, False]
    (job,) = _batches(fake_provider, "openai")
    assert len(job.requests) == 1  # only Cy's
    assert fake_provider.requests_for("openai.chat") == []


def test_scorers_apply_to_batch_results(greet, fake_provider):
    rows = [{"name": "Ada", "expected": "Ada"}, {"name": "Bo", "expected": "Zed"}]
    df = pl_magic.run_many("greet", inputs=rows, batch=True, scorers=["contains"])
    assert list(df["score.contains"]) == [1.0, 0.0]
    again = pl_magic.run_many("greet", inputs=rows, batch=True, scorers=["contains"])
    assert list(again["score.contains"]) == [1.0, 0.0]


def test_results_logged_before_an_interrupted_scoring_are_scored_at_the_next_wait(
    greet, fake_provider
):
    """The kernel stopping (here: its interrupt) after a provider job's results are logged
    but before they are scored must not leave them unscored for good."""
    stop = {"first": True}

    def long_is_good(output, row):
        if stop.pop("first", False):
            raise KeyboardInterrupt  # as if the kernel stopped while scoring
        return len(output) > 3

    job = pl_magic.run_many(
        "greet", inputs=NAMES[:2], batch=True, wait=False, scorers=[long_is_good]
    )
    with pytest.raises(KeyboardInterrupt):
        job.wait(interruptible=False)
    assert len(runs()) == 2  # logged, not scored
    job.wait()
    df = job.frame()
    assert list(df["score.long_is_good"]) == [1.0, 1.0]


def test_batch_results_are_sent_to_promptlayer(promptlayer_env, openai_env, fake_promptlayer):
    from pl_magic.client import default_client

    fake_promptlayer.add_prompt("greet", GREET, model(), labels=["prod"])
    df = pl_magic.run_many("greet", versions=["prod"], inputs=NAMES[:2], batch=True)
    assert list(df["status"]) == ["ok", "ok"]
    tracker = default_client().tracker
    assert tracker is not None
    tracker.wait_idle(10)
    tracked = fake_promptlayer.requests_for("track.request")
    assert len(tracked) == 2
    body = tracked[0].body
    assert body["function_name"] == "openai.chat.completions.create"
    assert body["request_response"]["choices"][0]["message"]["content"].startswith("echo: hi")
    assert {r["sync_state"] for r in runs()} == {"sent"}


# -- arguments ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"batch": "yes"}, "batch must be True or False"),
        ({"batch": True, "wait": 1}, "wait must be True or False"),
        ({"batch": True, "stream": True}, "a batch is not streamed"),
    ],
)
def test_bad_arguments_are_one_line_errors(greet, kwargs, says):
    with pytest.raises(InvalidInputError, match=says) as info:
        pl_magic.run_many("greet", inputs=NAMES, **kwargs)
    assert "\n" not in str(info.value)


def test_an_unknown_job_is_a_one_line_error(pl_home):
    with pytest.raises(InvalidInputError, match="No batch job 'nope'"):
        pl_magic.wait("nope")
    with pytest.raises(InvalidInputError, match="job must be a batch job's id"):
        pl_magic.cancel(42)


def test_the_progress_view_escapes_what_the_provider_sent():
    from pl_magic.engine.batch_jobs import JobStatus, PartStatus
    from pl_magic.ui.batch_view import batch_html

    hostile = "<img src=x onerror=alert(1)>"
    status = JobStatus(
        "b123",
        f"p{hostile}",
        "running",
        3,
        ok=1,
        parts=[PartStatus("openai", "gpt", hostile, hostile, 3, 1, 0, False)],
        message=hostile,
    )
    shown = batch_html(status)
    assert "<img" not in shown and "&lt;img" in shown
    assert not math.isnan(status.done)


def test_gemini_api_batch_with_inline_requests(gemini_env, fake_provider):
    publish("gem", GREET, model("gemini-2.5-flash", "google", temperature=0.1))
    fake_provider.batches.processing_polls = 1
    df = pl_magic.run_many("gem", inputs=NAMES, batch=True)
    assert list(df["output"]) == ["echo: hi Ada", "echo: hi Bo", "echo: hi Cy"]
    (job,) = _batches(fake_provider, "gemini")
    assert len(job.requests) == 3
    assert fake_provider.requests_for("gemini") == []
    row = runs()[0]
    assert row["provider"] == "google" and row["cost_usd"] == pytest.approx(
        pricing.cost_usd("google", "gemini-2.5-flash", row["input_tokens"], row["output_tokens"])
        / 2
    )


def test_gemini_partial_failures(gemini_env, fake_provider):
    publish("gem", GREET, model("gemini-2.5-flash", "google"))
    df = pl_magic.run_many("gem", inputs=[{"name": "Ada"}, {"name": "batch-err-503"}], batch=True)
    assert list(df["status"]) == ["ok", "error"]
    assert df["error_category"][1] == "server"


def test_gemini_on_vertex_cannot_batch_and_goes_live(vertex_env, fake_provider, capsys):
    publish("gv", GREET, model("gemini-2.5-flash", "google"))
    df = pl_magic.run_many("gv", inputs=NAMES[:2], batch=True)
    assert list(df["output"]) == ["echo: hi Ada", "echo: hi Bo"]
    assert "2 runs go live" in capsys.readouterr().err
    assert len(fake_provider.requests_for("vertex.gemini")) == 2


# -- surfaces: %%plrun --batch and pl-magic batches -------------------------------------------


def test_plrun_batch_submits_shows_progress_and_stores_the_frame(ip, greet, fake_provider, capsys):
    fake_provider.batches.processing_polls = 1
    ip.user_ns["people"] = NAMES
    ip.run_line_magic("plrun", "greet --inputs people --batch --out df")
    df = ip.user_ns["df"]
    assert list(df["output"]) == [f"echo: hi {n['name']}" for n in NAMES]
    out = capsys.readouterr().out
    assert f"batch job {df['batch_id'][0]} done: 3/3 runs ended (3 ok)" in out
    assert len(_batches(fake_provider, "openai")) == 1
    ip.run_line_magic("plrun", "greet --inputs people --batch --out again")
    assert len(_batches(fake_provider, "openai")) == 1  # the same cell again: attached
    assert list(ip.user_ns["again"]["request_id"]) == list(df["request_id"])


def test_plrun_batch_refuses_no_log(ip, greet, fake_provider, capsys):
    with pytest.raises(InvalidInputError, match="a batch job is kept in the run log"):
        ip.run_cell_magic("plrun", "greet --batch --no-log", "name: Ada\n")
    assert "estimate" not in capsys.readouterr().err
    assert fake_provider.batches.submitted() == []


def test_cli_batches_list_wait_and_cancel(greet, fake_provider, capsys, tmp_path):
    from pl_magic.surfaces.cli import main

    assert main(["batches", "list"]) == 0
    assert "No batch jobs yet" in capsys.readouterr().out

    fake_provider.batches.processing_polls = 1000
    job = pl_magic.run_many("greet", inputs=NAMES, batch=True, wait=False)
    second = pl_magic.run_many("greet", inputs=NAMES[:1], batch=True, wait=False)
    capsys.readouterr()
    assert main(["batches", "list"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("JOB") and len(lines) == 3
    assert lines[1].startswith(second.id) and "running" in lines[1]

    assert main(["batches", "wait", job.id, "--timeout", "0.05"]) == 1
    out, err = capsys.readouterr()
    assert "running" in out and "still running" in err

    assert main(["batches", "cancel", second.id]) == 0
    assert "cancel" in capsys.readouterr().out

    fake_provider.batches.processing_polls = 0
    path = tmp_path / "runs.csv"
    assert main(["batches", "wait", job.id[:8], "--csv", str(path)]) == 0
    out, err = capsys.readouterr()
    assert f"batch job {job.id} done: 3/3 runs ended (3 ok)" in out
    assert path.read_text().count("echo: hi") == 3

    assert main(["batches", "wait", "zzzzzzzz"]) == 2
    assert capsys.readouterr().err.startswith("pl-magic: error: No batch job 'zzzzzzzz'")


def test_a_batched_run_has_the_run_key_and_replay_key_a_live_run_has(greet, fake_provider):
    from pl_magic.runlog.sqlite import run_key

    pl_magic.run_many("greet", inputs=NAMES[:1], repeat=2)
    live = sorted(runs(), key=lambda r: r["repeat_index"])
    pl_magic.run_many("greet", inputs=NAMES[:1], repeat=2, batch=True)
    batched = sorted((r for r in runs() if r["batch_id"]), key=lambda r: r["repeat_index"])
    for a, b in zip(live, batched, strict=True):
        assert (a["run_key"], a["cache_key"]) == (b["run_key"], b["cache_key"])
        assert b["run_key"] == run_key(
            "greet",
            1,
            json.loads(b["rendered_input"]),
            "openai",
            "gpt-4o-mini",
            json.loads(b["parameters"]),
            b["repeat_index"],
        )
    assert live[0]["cache_key"] != live[1]["cache_key"]  # repeats are runs of their own


def test_labels_a_batch_ran_by_can_be_pinned(greet, fake_provider, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pl_magic.set_label("greet", "prod", 1)
    pl_magic.run_many("greet", versions=["prod"], inputs=NAMES[:1], batch=True)
    path = pl_magic.pin()
    assert json.loads(Path(path).read_text())["pins"]["greet"] == {"prod": 1}


def test_a_template_url_not_trusted_with_the_key_is_an_error_row(greet, fake_provider):
    publish("elsewhere", GREET, model(), provider_base_url={"url": "https://gateway.example/v1"})
    df = pl_magic.run_many("elsewhere", inputs=NAMES[:1], batch=True)
    assert list(df["status"]) == ["error"]
    assert "not trusted with OPENAI_API_KEY" in df["error"][0]
    assert fake_provider.batches.submitted() == []


def test_a_batch_the_provider_refuses_fails_its_runs_with_its_words(greet, fake_provider, capsys):
    fake_provider.fail_next("err-403")  # the upload is refused
    df = pl_magic.run_many("greet", inputs=NAMES[:2], batch=True)
    assert list(df["status"]) == ["error", "error"]
    assert all("the batch failed" in e and "err-403" in e for e in df["error"])
    assert "the provider refused a batch" in capsys.readouterr().err
    assert pl_magic.batches()["status"][0] == "done"


def test_a_submission_the_kernel_abandoned_is_submitted_again(greet, fake_provider, capsys):
    import sqlite3

    from pl_magic.client import default_client
    from pl_magic.core import config
    from pl_magic.engine.batch_jobs import BatchJob

    fake_provider.batches.processing_polls = 10**9
    job = pl_magic.run_many("greet", inputs=NAMES, batch=True, wait=False)
    # as a kernel that stopped between the provider's answer and the log's record of it
    conn = sqlite3.connect(config.db_path())
    with conn:
        conn.execute(
            "UPDATE batch_parts SET provider_job_id = NULL, status = 'submitting' WHERE job_id = ?",
            (job.id,),
        )
        conn.execute("UPDATE batch_jobs SET status = 'submitting' WHERE id = ?", (job.id,))
    fresh = BatchJob(default_client().engine, job.id)
    assert fresh.poll().status == "submitting"  # another kernel may still be at it: wait
    assert len(fake_provider.batches.submitted()) == 1
    with conn:
        conn.execute(
            "UPDATE batch_jobs SET submitted_at = '2000-01-01T00:00:00+00:00' WHERE id = ?",
            (job.id,),
        )
    conn.close()
    fake_provider.batches.processing_polls = 0
    assert fresh.wait().status == "done"
    assert "was being submitted when the kernel stopped" in capsys.readouterr().err
    assert len(fake_provider.batches.submitted()) == 2
    assert sorted(r["output"] for r in runs()) == [f"echo: hi {n['name']}" for n in NAMES]


def test_every_batched_request_is_the_one_a_live_call_sends(greet, anthropic_env, fake_provider):
    publish(
        "greet", chat(("system", "Be brief."), ("user", "hello {name}")), model(temperature=0.3)
    )
    rows = [*NAMES, {"name": "Dee"}]
    models = ["gpt-4o-mini", "claude-haiku-4-5"]
    pl_magic.run_many("greet", versions=[1, 2], models=models, inputs=rows)
    live = {(r["prompt_version"], r["model"], r["input_variables"]): r for r in runs()}
    live_bodies = [r.body for r in fake_provider.requests if r.kind != "unknown"]
    fake_provider.reset()
    pl_magic.run_many("greet", versions=[1, 2], models=models, inputs=rows, batch=True)
    batched = [r for r in runs() if r["batch_id"]]
    assert len(batched) == len(live) == 16
    for row in batched:
        twin = live[(row["prompt_version"], row["model"], row["input_variables"])]
        assert (row["run_key"], row["cache_key"]) == (twin["run_key"], twin["cache_key"])
        assert row["rendered_input"] == twin["rendered_input"]
    bodies = [r.body for job in fake_provider.batches.submitted() for r in job.requests]

    def canonical(body):
        kept = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
        return json.dumps(kept, sort_keys=True)

    assert sorted(map(canonical, bodies)) == sorted(map(canonical, live_bodies))


def test_a_job_is_followed_only_where_it_was_sent(greet, fake_provider, monkeypatch):
    from pl_magic.core.errors import ConfigurationError

    fake_provider.batches.processing_polls = 10**9
    job = pl_magic.run_many("greet", inputs=NAMES[:1], batch=True, wait=False)
    monkeypatch.delenv("OPENAI_BASE_URL")  # another kernel, pointed at OpenAI itself
    with pytest.raises(ConfigurationError, match=r"set OPENAI_BASE_URL=http://127\.0\.0\.1:"):
        pl_magic.wait(job.id)
    assert len(fake_provider.batches.calls_of("openai", "retrieve")) == 0


def test_a_batched_reply_that_is_not_the_json_asked_for_fails_as_live(claude, fake_provider):
    schema = {
        "type": "object",
        "properties": {"verdict": {"type": "string"}},
        "required": ["verdict"],
    }
    response_format = {"type": "json_schema", "json_schema": {"name": "v", "schema": schema}}
    fake_provider.structured_replies = ["not json at all", {"verdict": "pass"}]
    df = pl_magic.run_many(
        "claude",
        inputs=NAMES[:2],
        batch=True,
        model_parameter_overrides={"response_format": response_format},
    )
    assert list(df["status"]) == ["error", "ok"]
    assert df["error_category"][0] == "invalid_output"
    assert df["output"][0] == "not json at all"  # kept, with its tokens and cost
    assert df["input_tokens"][0] > 0 and df["cost_usd"][0] > 0
    assert df["parsed"][1] == {"verdict": "pass"}


def test_a_provider_jobs_failure_message_is_stored_without_the_key(
    greet, openai_env, fake_provider
):
    import sqlite3

    from pl_magic.core import config

    fake_provider.batches.processing_polls = 10**9
    job = pl_magic.run_many("greet", inputs=NAMES[:1], batch=True, wait=False)
    (fake_job,) = _batches(fake_provider, "openai")
    # the provider's job-level error echoes the key (as "Incorrect API key provided: ..." does)
    fake_job.validation_errors = [
        {"code": "invalid_api_key", "message": f"bad key {openai_env}", "param": None}
    ]
    fake_provider.batches.processing_polls = 0
    pl_magic.wait(job)
    conn = sqlite3.connect(config.db_path())
    dumped = "\n".join(conn.iterdump())
    conn.close()
    assert "bad key" in dumped
    assert openai_env not in dumped
