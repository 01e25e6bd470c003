"""Bad-input rows for what people type into ``runs()``, ``publish()``, overrides, ``--vars``
and the comparison options (gathered by :mod:`tests.reliability.catalogue`)."""

from __future__ import annotations

from tests.reliability.case import Case

_CIRCULAR = 'd = {"name": "Ada"}; d["me"] = d; '
_DEEP = 'v = "x"\nfor _ in range(5000): v = [v]\n'

CASES: list[Case] = [
    # -- runs() ------------------------------------------------------------------------------
    Case(
        "runs-since-garbage",
        "run()",
        "wrong type",
        'pl_magic.runs(since="garbage")',
        "InvalidInputError",
        "give e.g. since='2026-11-01'",
    ),
    Case(
        "runs-since-a-number",
        "run()",
        "wrong type",
        "pl_magic.runs(since=5)",
        "InvalidInputError",
        "e.g. since='2026-11-01'",
    ),
    Case(
        "runs-prompt-a-list",
        "run()",
        "wrong type",
        'pl_magic.runs(prompt=["a"])',
        "InvalidInputError",
        "e.g. runs(prompt='greet')",
    ),
    Case(
        "runs-group-a-string",
        "run()",
        "wrong type",
        'pl_magic.runs(group_id="1")',
        "InvalidInputError",
        "a whole number from create_group()",
    ),
    Case(
        "runs-limit-true",
        "run()",
        "wrong type",
        "pl_magic.runs(limit=True)",
        "InvalidInputError",
        "e.g. limit=20",
    ),
    # -- publish() ---------------------------------------------------------------------------
    Case(
        "publish-content-a-number",
        "run()",
        "wrong type",
        'pl_magic.publish({"prompt_name": "p", "prompt_template": {"type": "chat", '
        '"messages": [{"role": "user", "content": 5}]}})',
        "InvalidTemplateError",
        "use text or a list of blocks",
        doc="publish a chat message whose content is `5`",
    ),
    Case(
        "publish-block-type-weird",
        "run()",
        "wrong type",
        'pl_magic.publish({"prompt_name": "p", "prompt_template": {"type": "chat", '
        '"messages": [{"role": "user", "content": [{"type": "weird", "text": "hi"}]}]}})',
        "InvalidTemplateError",
        "use one of text, image_url, media",
        doc="publish a content block of type `weird`",
    ),
    Case(
        "publish-model-a-list",
        "run()",
        "wrong type",
        'pl_magic.publish({"prompt_name": "p", "prompt_template": {"type": "chat", '
        '"messages": [{"role": "user", "content": "hi"}]}, '
        '"metadata": {"model": ["openai", "gpt-4o"]}})',
        "InvalidTemplateError",
        "use a dict like {'provider': 'openai'",
        doc='publish with `metadata={"model": ["openai", "gpt-4o"]}`',
    ),
    Case(
        "publish-parameters-a-string",
        "run()",
        "wrong type",
        'pl_magic.publish({"prompt_name": "p", "prompt_template": {"type": "chat", '
        '"messages": [{"role": "user", "content": "hi"}]}, "metadata": {"model": '
        '{"provider": "openai", "name": "gpt-4o", "parameters": "temperature=0"}}})',
        "InvalidTemplateError",
        "use a dict like {'temperature': 0.2}",
        doc='publish with `parameters: "temperature=0"`',
    ),
    Case(
        "publish-labels-a-string",
        "run()",
        "wrong type",
        'pl_magic.publish({"prompt_name": "p", "prompt_template": {"type": "chat", '
        '"messages": [{"role": "user", "content": "hi"}]}, "release_labels": "prod"})',
        "InvalidInputError",
        "release_labels must be a list of strings, e.g. ['prod']",
        doc='publish with `release_labels: "prod"`',
    ),
    # -- overrides ---------------------------------------------------------------------------
    Case(
        "run-override-model",
        "run()",
        "wrong type",
        'pl_magic.run("greet", input_variables={"name": "Ada"}, '
        'model_parameter_overrides={"model": "gpt-4o"})',
        "InvalidInputError",
        "pass model='gpt-4o' instead",
    ),
    Case(
        "run-override-stream",
        "run()",
        "wrong type",
        'pl_magic.run("greet", input_variables={"name": "Ada"}, '
        'model_parameter_overrides={"stream": True})',
        "InvalidInputError",
        "pass stream=True or stream=False instead",
    ),
    Case(
        "run-override-messages",
        "run()",
        "wrong type",
        'pl_magic.run("greet", input_variables={"name": "Ada"}, '
        'model_parameter_overrides={"messages": [{"role": "user", "content": "hi"}]})',
        "InvalidInputError",
        "publish a new version of the template instead",
    ),
    # -- input data that cannot be walked ----------------------------------------------------
    Case(
        "run-variables-circular",
        "run()",
        "wrong type",
        _CIRCULAR + 'pl_magic.run("greet", input_variables=d)',
        "InvalidInputError",
        "contains itself",
        doc="input variables holding themselves: `d['me'] = d`",
    ),
    Case(
        "run-variables-too-deep",
        "run()",
        "huge value",
        _DEEP + 'pl_magic.run("greet", input_variables={"name": v})',
        "InvalidInputError",
        "more than 100 levels deep",
        doc="an input variable nested 5,000 lists deep",
    ),
    # -- the magics --------------------------------------------------------------------------
    Case(
        "plrun-vars-circular",
        "%%plrun",
        "wrong type",
        _CIRCULAR + "\n%plrun greet@prod --vars d",
        "InvalidInputError",
        "contains itself",
        kernel=True,
        doc="`d['me'] = d`, then `%plrun greet@prod --vars d`",
    ),
    Case(
        "plrun-concurrency-zero",
        "%%plrun",
        "wrong type",
        "%%plrun greet --models gpt-4o-mini,gpt-4o --concurrency 0\nname: Ada",
        "UsageError",
        "'0' must be 1 or more",
    ),
    Case(
        "plrun-param-model",
        "%%plrun",
        "wrong type",
        "%%plrun greet@prod --param model=gpt-4o\nname: Ada",
        "InvalidInputError",
        "(--model in %%plrun and pl-magic)",
        kernel=True,
    ),
    Case(
        "plrun-param-stream",
        "%%plrun",
        "wrong type",
        "%%plrun greet@prod --param stream=false\nname: Ada",
        "InvalidInputError",
        "(--no-stream in %%plrun and pl-magic)",
    ),
    Case(
        "plruns-since-garbage",
        "%%plrun",
        "wrong type",
        "%plruns --since garbage",
        "InvalidInputError",
        "give e.g. since='2026-11-01'",
    ),
    Case(
        "plprompt-template-content-a-number",
        "%%plprompt",
        "wrong type",
        "%%plprompt p\nprompt_template: {type: chat, messages: [{role: user, content: 5}]}",
        "InvalidTemplateError",
        "use text or a list of blocks",
    ),
    # -- the widget and the CLI --------------------------------------------------------------
    Case(
        "widget-extras-model",
        "widget",
        "wrong type",
        'form = pl_magic.form("greet"); form.variables.children[0].value = "Ada"; '
        'form.extras.value = "model=gpt-4o"; form.run()',
        "InvalidInputError",
        "pass model='gpt-4o' instead",
    ),
    Case(
        "cli-param-model",
        "cli",
        "wrong type",
        "pl-magic run greet --var name=Ada --param model=gpt-4o",
        "InvalidInputError",
        "pass model='gpt-4o' instead",
    ),
    Case(
        "cli-push-content-a-number",
        "cli",
        "wrong type",
        "pl-magic prompts push content.yaml",
        "InvalidTemplateError",
        "use text or a list of blocks",
        files=(
            (
                "content.yaml",
                "prompt_name: p\nprompt_template:\n  type: chat\n  messages:\n"
                "    - {role: user, content: 5}\n",
            ),
        ),
    ),
]
