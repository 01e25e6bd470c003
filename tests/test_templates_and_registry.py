"""Template rendering rules and the embedded registry (no network)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import pl_magic
from pl_magic.core import blueprint, templates
from pl_magic.core.errors import InvalidInputError, MissingVariablesError
from pl_magic.registry.local import LocalRegistry
from tests.helpers import chat, publish

CASSETTES = Path(__file__).resolve().parents[2] / "shared" / "compat" / "promptlayer-cassettes"


def test_fstring_doubled_braces_escape_and_unused_variables_are_ignored():
    t = chat(("user", 'JSON: {{"name": "{name}"}}'))
    out = blueprint.render(t, {"name": "Ada", "unused": 1}, "p")
    assert out["messages"][0]["content"][0]["text"] == 'JSON: {"name": "Ada"}'


def test_fstring_never_does_attribute_access():
    assert templates.variables("{user.__class__}") == {"user.__class__"}
    with pytest.raises(MissingVariablesError):
        blueprint.render(chat(("user", "{user.__class__}")), {"user": "x"}, "p")


def test_jinja2_renders_in_a_sandbox_with_loops():
    t = chat(("user", "{% for i in items %}[{{ i }}]{% endfor %} {{ name | upper }}"), fmt="jinja2")
    assert blueprint.input_variables(t) == ["items", "name"]
    out = blueprint.render(t, {"items": [1, 2], "name": "ada"}, "p")
    assert out["messages"][0]["content"][0]["text"] == "[1][2] ADA"


def test_publish_fills_input_variables_and_versions_count_up():
    first = publish("p", chat(("user", "Hi {name}")), commit_message="first", tags=["a"])
    second = publish("p", chat(("user", "Hello {name} {x}")))
    assert (first["version_number"], second["version_number"]) == (1, 2)
    record = pl_magic.get_template("p", version=1)
    assert record["prompt_template"]["input_variables"] == ["name"]
    assert record["commit_message"] == "first" and record["tags"] == ["a"]
    assert pl_magic.get_template("p")["version"] == 2


def test_labels_set_move_delete_and_list():
    reg = LocalRegistry()
    for n in (1, 2, 3):
        publish("p", chat(("user", f"v{n}")))
    reg.set_label("p", "prod", 1)
    reg.set_label("p", "staging", 3)
    reg.set_label("p", "prod", 2)
    assert reg.labels("p") == {"prod": 2, "staging": 3}
    assert reg.get("p", label="prod")["release_labels"] == ["prod"]
    reg.delete_label("p", "staging")
    (summary,) = pl_magic.prompts()
    assert summary["versions"] == [1, 2, 3] and summary["labels"] == {"prod": 2}
    with pytest.raises(InvalidInputError):
        reg.set_label("p", "bad label!", 1)


def _cassette_templates() -> list[dict]:
    """Every prompt template inside PromptLayer's recorded responses."""
    import json

    found = []
    for path in sorted(CASSETTES.glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        for interaction in data.get("interactions", []):
            body = interaction["response"]["body"].get("string") or ""
            try:
                payload = json.loads(body)
            except (ValueError, TypeError):
                continue
            items = payload.get("items") if isinstance(payload, dict) else None
            for rec in items or [payload]:
                if isinstance(rec, dict) and isinstance(rec.get("prompt_template"), dict):
                    found.append(rec)
    return found


@pytest.mark.skipif(not CASSETTES.exists(), reason="shared/compat cassettes not beside the repo")
def test_cassette_templates_import_unchanged_and_export_as_promptlayer_json():
    records = _cassette_templates()
    assert len(records) >= 3
    reg = LocalRegistry()
    for rec in records:
        rec = {**rec, "prompt_name": f"{rec.get('prompt_name') or 'p'}-{rec.get('id')}"}
        published = reg.import_templates([rec])[0]
        (exported,) = reg.export(published["prompt_name"], published["version_number"])
        original = rec["prompt_template"]
        # everything PromptLayer sent is kept as is (input_variables may be added)
        for key, value in original.items():
            if key != "input_variables":
                assert exported["prompt_template"][key] == value
        assert exported["metadata"] == rec.get("metadata")
