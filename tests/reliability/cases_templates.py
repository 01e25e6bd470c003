"""Bad-input rows of the templates area: bounded rendering, plain-data inputs, YAML without
aliases, and ``run_many``'s arguments (checked as ``run()`` checks its own)."""

from __future__ import annotations

from tests.reliability.case import Case
from tests.reliability.case import chat_template as _chat
from tests.reliability.case import model_metadata as _model

PROMPTS = [
    (
        "wide-center",
        _chat(("user", "{{ name|center(900000000) }}"), fmt="jinja2"),
        _model("openai", "gpt-4o-mini"),
        [],
    ),
]

#: A YAML alias bomb: nine levels of nine aliases each, 9**8 strings once expanded.
ALIAS_BOMB = "\n".join(
    [
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *(
            f"{b}: &{b} [{','.join(['*' + a] * 9)}]"
            for a, b in zip("abcdefgh", "bcdefghi", strict=True)
        ),
        "name: Ada",
    ]
)

_RAISE_SIZE = "raise PL_MAGIC_TEMPLATE_MAX_CHARS"


def _publish(name: str, text: str, fmt: str = "f-string") -> str:
    """Python that publishes a one-message template ``text`` (an OpenAI model)."""
    message = f'{{"role": "user", "content": {text!r}, "template_format": "{fmt}"}}'
    return (
        f'pl_magic.publish({{"prompt_name": "{name}", "prompt_template": {{"type": "chat", '
        f'"messages": [{message}]}}, "metadata": {{"model": {{"provider": "openai", '
        f'"name": "gpt-4o-mini"}}}}}}); '
    )


def _run_many(args: str) -> str:
    return f'pl_magic.run_many("greet", {args})'


CASES = [
    # -- run_many(): the same checks as run(), and unknown keywords refused -----------------
    Case(
        "run-many-concurrency-text",
        "run()",
        "wrong type",
        _run_many('input_variables={"name": "Ada"}, concurrency="4"'),
        "InvalidInputError",
        "concurrency must be a whole number ≥ 1",
    ),
    Case(
        "run-many-concurrency-zero",
        "run()",
        "wrong type",
        _run_many('input_variables={"name": "Ada"}, concurrency=0'),
        "InvalidInputError",
        "concurrency must be a whole number ≥ 1",
    ),
    Case(
        "run-many-models-a-number",
        "run()",
        "wrong type",
        _run_many('input_variables={"name": "Ada"}, models=4'),
        "InvalidInputError",
        "models must be a list or a comma-separated string",
    ),
    Case(
        "run-many-models-a-dict",
        "run()",
        "wrong type",
        _run_many('input_variables={"name": "Ada"}, models={"openai": "gpt-4o-mini"}'),
        "InvalidInputError",
        "models must be a list or a comma-separated string",
    ),
    Case(
        "run-many-versions-a-float",
        "run()",
        "wrong type",
        _run_many('input_variables={"name": "Ada"}, versions=2.5'),
        "InvalidInputError",
        "versions must be a list or a comma-separated string",
    ),
    Case(
        "run-many-repeat-text",
        "run()",
        "wrong type",
        _run_many('input_variables={"name": "Ada"}, repeat="3"'),
        "InvalidInputError",
        "repeat must be a whole number ≥ 1",
    ),
    Case(
        "run-many-inputs-a-number",
        "run()",
        "wrong type",
        _run_many("inputs=5"),
        "InvalidInputError",
        "inputs must be a DataFrame or a list of dicts",
    ),
    Case(
        "run-many-inputs-strings",
        "run()",
        "wrong type",
        _run_many('inputs=["Ada", "Grace"]'),
        "InvalidInputError",
        "inputs must be a DataFrame or a list of dicts",
    ),
    Case(
        "run-many-variables-a-list",
        "run()",
        "wrong type",
        _run_many('input_variables=["Ada"]'),
        "InvalidInputError",
        "input_variables must be a dict",
    ),
    Case(
        "run-many-misspelled-tags",
        "run()",
        "unknown option",
        _run_many('input_variables={"name": "Ada"}, tag="demo"'),
        "InvalidInputError",
        "did you mean tags?",
    ),
    Case(
        "run-many-model-keyword",
        "run()",
        "unknown option",
        _run_many('input_variables={"name": "Ada"}, model="gpt-4o"'),
        "InvalidInputError",
        "pass models=['provider/model']",
    ),
    Case(
        "run-many-tags-a-string",
        "run()",
        "wrong type",
        _run_many('input_variables={"name": "Ada"}, tags="demo"'),
        "InvalidInputError",
        "tags must be a list of strings",
    ),
    Case(
        "run-many-lone-surrogate-row",
        "run()",
        "unusual Unicode",
        _run_many('inputs=[{"name": "Ada"}, {"name": "\\udc80"}]'),
        "InvalidInputError",
        "cannot be encoded as UTF-8",
    ),
    # -- inputs are plain data ------------------------------------------------------------
    Case(
        "run-object-input",
        "run()",
        "wrong type",
        'pl_magic.run("greet", input_variables={"name": object()})',
        "InvalidInputError",
        "pass text, numbers, lists or dicts",
    ),
    Case(
        "run-dataframe-input",
        "run()",
        "wrong type",
        'pl_magic.run("greet", input_variables={"name": __import__("pandas").DataFrame()})',
        "InvalidInputError",
        "df.to_markdown()",
    ),
    Case(
        "run-self-containing-input",
        "run()",
        "wrong type",
        'd = {}; d["d"] = d; pl_magic.run("greet", input_variables={"name": d})',
        "InvalidInputError",
        "pass a copy without the cycle",
    ),
    Case(
        "run-path-input-method",
        "run()",
        "sandbox escape",
        _publish("touch", "{{ doc.write_text('owned') }}", "jinja2")
        + 'pl_magic.run("touch", input_variables={"doc": __import__("pathlib").Path("f")})',
        "TemplateSyntaxError",
        "has no attribute 'write_text'",
        doc="publish a jinja2 template `{{ doc.write_text('owned') }}`, run it with a Path",
    ),
    # -- bounded rendering ----------------------------------------------------------------
    Case(
        "run-jinja-huge-center",
        "run()",
        "huge value",
        _publish("center", "{{ name|center(900000000) }}", "jinja2")
        + 'pl_magic.run("center", input_variables={"name": "Ada"})',
        "TemplateLimitError",
        _RAISE_SIZE,
        doc="publish a jinja2 template `{{ name|center(900000000) }}`, run it",
    ),
    Case(
        "run-jinja-huge-lipsum",
        "run()",
        "huge value",
        _publish("lorem", "{{ lipsum(n=2000000) }}", "jinja2") + 'pl_magic.run("lorem")',
        "TemplateLimitError",
        _RAISE_SIZE,
        doc="publish a jinja2 template `{{ lipsum(n=2000000) }}`, run it",
    ),
    Case(
        "run-jinja-nested-loops",
        "run()",
        "huge value",
        _publish(
            "loops",
            "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}",
            "jinja2",
        )
        + 'pl_magic.run("loops")',
        "TemplateLimitError",
        "simplify its loops",
        doc="publish a jinja2 template with two nested `range(99999)` loops, run it",
    ),
    Case(
        "run-fstring-many-wide-fields",
        "run()",
        "huge value",
        _publish("fields", "{name:>999999}" * 1500)
        + 'pl_magic.run("fields", input_variables={"name": "Ada"})',
        "TemplateLimitError",
        _RAISE_SIZE,
        doc="publish a template of 1,500 `{name:>999999}` fields, run it",
    ),
    Case(
        "plrun-template-too-wide",
        "%%plrun",
        "huge value",
        "%%plrun wide-center\nname: Ada",
        "TemplateLimitError",
        _RAISE_SIZE,
        kernel=True,
    ),
    # -- YAML without anchors and aliases ---------------------------------------------------
    Case(
        "plrun-yaml-alias",
        "%%plrun",
        "malformed YAML",
        "%%plrun greet@prod\nname: &n Ada\nagain: *n",
        "InvalidInputError",
        "write each value out in full",
        kernel=True,
    ),
    Case(
        "plrun-yaml-alias-bomb",
        "%%plrun",
        "huge value",
        "%%plrun greet@prod\n" + ALIAS_BOMB,
        "InvalidInputError",
        "write each value out in full",
        doc=f"`%%plrun greet@prod` with a {len(ALIAS_BOMB)}-byte YAML alias bomb as its body",
    ),
    Case(
        "plrun-yaml-too-deep",
        "%%plrun",
        "malformed YAML",
        "%%plrun greet@prod\nname: " + "[" * 5000 + "]" * 5000,
        "InvalidInputError",
        "nested too deeply",
        doc="`%%plrun greet@prod` with `name: [[[…]]]` nested 5,000 deep",
    ),
    Case(
        "plrun-yaml-huge-integer",
        "%%plrun",
        "huge value",
        "%%plrun greet@prod\nname: " + "1" * 5000,
        "InvalidInputError",
        "quote it to keep it as text",
        doc="`%%plrun greet@prod` with `name: 111…` (a 5,000-digit number) as its body",
    ),
    Case(
        "run-huge-integer",
        "run()",
        "huge value",
        'pl_magic.run("greet", input_variables={"name": [10**5000]})',
        "InvalidInputError",
        "raise sys.set_int_max_str_digits()",
        doc='`pl_magic.run("greet", input_variables={"name": [10**5000]})`',
    ),
    Case(
        "cli-push-yaml-alias",
        "cli",
        "malformed YAML",
        "pl-magic prompts push alias.yaml",
        "InvalidInputError",
        "write each value out in full",
        files=(("alias.yaml", "prompt_name: p\ntemplate: &t hi\nsystem: *t\n"),),
    ),
]
