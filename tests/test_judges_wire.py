"""Judges on the wire: each provider's structured-output request, sent by the real SDK over
HTTP to the fake provider server, which answers with the judgement's JSON.

The judged prompt and its judge run on the same route; the fake's ``structured_replies``
scripts the judge's answers (an entry is consumed only by a structured-output request, so
the judged runs do not use them up).
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

import pl_magic
from pl_magic.core import local_target
from pl_magic.engine.judges import JUDGED_RUN_KEY, JUDGEMENT_SCHEMA
from tests.fakes.provider_server import structured_request
from tests.helpers import chat, model, publish, runs, scores
from tests.test_structured_output import IDS, ROUTES, Route

ROWS = [
    {"q": "The capital is Paris.", "expected": "Paris"},
    {"q": "Lyon.", "expected": "Paris"},
]
JUDGE = chat(("system", "Grade it."), ("user", "want {expected} got {output}"))


def _publish(request: pytest.FixtureRequest, route: Route) -> None:
    """The judged prompt ``echo`` and its judge ``grader``, both on ``route``."""
    if route.env:
        request.getfixturevalue(route.env)
        meta: dict[str, Any] = model(route.model, route.provider, route.api_type)
        extra: dict[str, Any] = {}
    else:  # the local model, sent to the user's own server: the fake
        fake = request.getfixturevalue("fake_provider")
        request.getfixturevalue("monkeypatch").setenv(
            local_target.ENV_BASE_URL, fake.openai_base_url
        )
        meta = local_target.model_metadata()
        extra = {"provider_base_url": local_target.base_url_spec()}
    publish("echo", chat(("user", "{q}")), meta, **extra)
    publish("grader", JUDGE, meta, **extra)


@pytest.mark.parametrize("route", ROUTES, ids=IDS)
def test_each_provider_is_asked_for_the_judgement_schema_and_its_json_is_the_score(
    request, fake_provider, route
):
    _publish(request, route)
    fake_provider.structured_replies = [
        {"score": 1, "reason": "names Paris"},
        {"score": 0.25, "reason": "wrong city"},
    ]
    df = pl_magic.run_many("echo", inputs=ROWS, scorers=["judge:grader"], concurrency=1)

    assert list(df["score.judge:grader"]) == [1.0, 0.25]
    asked = [structured_request(route.kind, r.body) for r in fake_provider.requests_for(route.kind)]
    judge_asks = [a for a in asked if a is not None]
    assert len(judge_asks) == 2 and len(asked) == 4  # the judged runs asked for plain text
    for ask in judge_asks:
        assert ask.schema == JUDGEMENT_SCHEMA
    stored = {(s["value"], s["passed"], s["reason"]) for s in scores()}
    assert stored == {(1.0, 1, "names Paris"), (0.25, 0, "wrong city")}
    judged = {r["request_id"] for r in runs() if r["prompt_name"] == "echo"}
    links = {
        json.loads(r["metadata"])[JUDGED_RUN_KEY] for r in runs() if r["prompt_name"] == "grader"
    }
    assert links == judged


def test_invalid_json_on_the_wire_is_retried_once_then_an_error_row(request, fake_provider):
    _publish(request, ROUTES[0])
    fake_provider.structured_replies = [
        "I think it is right",  # not JSON: asked again
        {"score": 1, "reason": "ok"},
        '{"score": ',  # cut short, twice: an error row
        '{"score": ',
    ]
    df = pl_magic.run_many("echo", inputs=ROWS, scorers=["judge:grader"], concurrency=1)
    first, second = df["score.judge:grader"]
    assert first == 1.0 and math.isnan(second)
    (error,) = [s for s in scores() if s["value"] is None]
    assert error["reason"].startswith("the judge answered not JSON") and "twice" in error["reason"]
    assert sum(r["prompt_name"] == "grader" for r in runs()) == 4  # every judge reply is logged
    assert list(df["status"]) == ["ok", "ok"]
