"""The bad-input catalogue: what people get wrong, on every surface, and what they are told.

One row per bad input. ``input`` is exactly what is typed — Python for ``run()`` and the
widget, the cell for ``%%plrun``/``%%plprompt``, the command line for the CLI — and
``tests/reliability/test_bad_inputs.py`` runs it as is against the prompts of
:data:`PROMPTS`, checking that it fails with ``error`` (a class of ``pl_magic.core.errors``,
or a usage error), as one line containing ``fix``, with no provider call and nothing
logged as a success.

``docs/errors.md`` is generated from this table (a test checks it is up to date)::

    python -m tests.reliability.catalogue --markdown > docs/errors.md
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from tests.reliability.case import KINDS, SURFACES, Case
from tests.reliability.case import chat_template as _chat
from tests.reliability.case import model_metadata as _model

#: The registry every case runs against: (name, template, model, release labels), published
#: in order (``greet`` gets versions 1 and 2; prod → 2, staging → 1).
PROMPTS: list[tuple[str, dict, dict, list[str]]] = []

PROMPTS += [
    ("greet", _chat(("user", "hi {name}")), _model("openai", "gpt-4o-mini"), ["staging"]),
    ("greet", _chat(("user", "hello {name}")), _model("openai", "gpt-4o-mini"), ["prod"]),
    (
        "escape",
        _chat(("user", "{{ name.__class__.__mro__[1].__subclasses__() }}"), fmt="jinja2"),
        _model("openai", "gpt-4o-mini"),
        [],
    ),
    (
        "history",
        {
            "type": "chat",
            "messages": [
                {"role": "placeholder", "name": "history", "content": []},
                {"role": "user", "content": [{"type": "text", "text": "{question}"}]},
            ],
        },
        _model("openai", "gpt-4o-mini"),
        [],
    ),
    ("claude", _chat(("user", "hi {name}")), _model("anthropic", "claude-sonnet-4-5"), []),
    ("gemini", _chat(("user", "hi {name}")), _model("google", "gemini-2.5-flash"), []),
    ("vertex-gemini", _chat(("user", "hi {name}")), _model("vertexai", "gemini-2.5-flash"), []),
    (
        "vertex-claude",
        _chat(("user", "hi {name}")),
        _model("vertexai", "claude-sonnet-4-5@20250929"),
        [],
    ),
]


_NO_OPENAI = (("OPENAI_API_KEY", None), ("OPENAI_BASE_URL", None))
_HUGE_NAME = "x" * 100_000

CASES: list[Case] = [
    # -- run() -----------------------------------------------------------------------------
    Case(
        "run-unknown-prompt",
        "run()",
        "unknown name",
        'pl_magic.run("gret", input_variables={"name": "Ada"})',
        "PromptNotFoundError",
        "did you mean greet?",
    ),
    Case(
        "run-unknown-version",
        "run()",
        "bad version",
        'pl_magic.run("greet", prompt_version=7, input_variables={"name": "Ada"})',
        "VersionNotFoundError",
        "existing versions are 1, 2",
    ),
    Case(
        "run-version-zero",
        "run()",
        "bad version",
        'pl_magic.run("greet", prompt_version=0, input_variables={"name": "Ada"})',
        "InvalidInputError",
        "versions start at 1",
    ),
    Case(
        "run-version-a-label",
        "run()",
        "bad version",
        'pl_magic.run("greet", prompt_version="prod", input_variables={"name": "Ada"})',
        "InvalidInputError",
        "use prompt_release_label for labels",
    ),
    Case(
        "run-unknown-label",
        "run()",
        "bad label",
        'pl_magic.run("greet", prompt_release_label="dev", input_variables={"name": "Ada"})',
        "LabelNotFoundError",
        "existing labels are prod, staging",
    ),
    Case(
        "run-missing-variable",
        "run()",
        "missing variable",
        'pl_magic.run("greet")',
        "MissingVariablesError",
        "needs input variables that were not given: name",
    ),
    Case(
        "run-misspelled-variable",
        "run()",
        "extra variable",
        'pl_magic.run("greet", input_variables={"nmae": "Ada"})',
        "MissingVariablesError",
        "did you mean name instead of 'nmae'?",
    ),
    Case(
        "run-unknown-argument",
        "run()",
        "unknown option",
        'pl_magic.run("greet", input_variables={"name": "Ada"}, temperature=0)',
        "InvalidInputError",
        "see help(pl_magic.run)",
    ),
    Case(
        "run-variables-not-a-dict",
        "run()",
        "wrong type",
        'pl_magic.run("greet", input_variables=["Ada"])',
        "InvalidInputError",
        "pass e.g. {'name': 'Ada'}",
    ),
    Case(
        "run-tags-a-string",
        "run()",
        "wrong type",
        'pl_magic.run("greet", input_variables={"name": "Ada"}, tags="demo")',
        "InvalidInputError",
        "tags must be a list of strings",
    ),
    Case(
        "run-overrides-not-a-dict",
        "run()",
        "wrong type",
        'pl_magic.run("greet", input_variables={"name": "Ada"}, '
        'model_parameter_overrides="temperature=0")',
        "InvalidInputError",
        "model_parameter_overrides must be a dict",
    ),
    Case(
        "run-placeholder-not-a-list",
        "run()",
        "wrong type",
        'pl_magic.run("history", input_variables={"history": "hi", "question": "?"})',
        "InvalidInputError",
        "must be a list of messages",
    ),
    Case(
        "run-unknown-provider",
        "run()",
        "unknown name",
        'pl_magic.run("greet", input_variables={"name": "Ada"}, provider="cohere")',
        "UnknownProviderError",
        "use one of anthropic, google, openai, vertexai",
    ),
    Case(
        "run-empty-name",
        "run()",
        "empty cell",
        'pl_magic.run("")',
        "InvalidInputError",
        "prompt_name must be the name of a registry prompt",
    ),
    Case(
        "run-sandbox-escape",
        "run()",
        "sandbox escape",
        'pl_magic.run("escape", input_variables={"name": "Ada"})',
        "SandboxViolationError",
        "use only variables, filters and loops",
    ),
    Case(
        "run-huge-format-width",
        "run()",
        "huge value",
        'pl_magic.publish({"prompt_name": "wide", "prompt_template": {"type": "chat", '
        '"messages": [{"role": "user", "content": "{name:>999999999}"}]}, '
        '"metadata": {"model": {"provider": "openai", "name": "gpt-4o-mini"}}}); '
        'pl_magic.run("wide", input_variables={"name": "Ada"})',
        "TemplateLimitError",
        "use a smaller width or precision",
        doc="publish a template `{name:>999999999}`, run it",
    ),
    Case(
        "run-jinja-division-by-zero",
        "run()",
        "template syntax",
        'pl_magic.publish({"prompt_name": "div", "prompt_template": {"type": "chat", '
        '"messages": [{"role": "user", "content": "{{ 1 / n }}", "template_format": "jinja2"}]}, '
        '"metadata": {"model": {"provider": "openai", "name": "gpt-4o-mini"}}}); '
        'pl_magic.run("div", input_variables={"n": 0})',
        "TemplateError",
        "ZeroDivisionError: division by zero): fix the template",
        doc="publish a jinja2 template `{{ 1 / n }}`, run it with n=0",
    ),
    Case(
        "run-jinja-huge-repeat",
        "run()",
        "sandbox escape",
        'pl_magic.publish({"prompt_name": "big", "prompt_template": {"type": "chat", '
        '"messages": [{"role": "user", "content": "{{ name * 10**9 }}", '
        '"template_format": "jinja2"}]}, '
        '"metadata": {"model": {"provider": "openai", "name": "gpt-4o-mini"}}}); '
        'pl_magic.run("big", input_variables={"name": "Ada"})',
        "TemplateLimitError",
        "raise PL_MAGIC_TEMPLATE_MAX_CHARS",
        doc="publish a jinja2 template `{{ name * 10**9 }}`, run it",
    ),
    Case(
        "run-fstring-attribute",
        "run()",
        "sandbox escape",
        'pl_magic.publish({"prompt_name": "attr", "prompt_template": {"type": "chat", '
        '"messages": [{"role": "user", "content": "{name.__class__}"}]}, '
        '"metadata": {"model": {"provider": "openai", "name": "gpt-4o-mini"}}}); '
        'pl_magic.run("attr", input_variables={"name": "Ada"})',
        "MissingVariablesError",
        "name.__class__",
        doc="publish a template `{name.__class__}`, run it",
    ),
    Case(
        "publish-fstring-syntax",
        "run()",
        "template syntax",
        'pl_magic.publish({"prompt_name": "p", "prompt_template": {"type": "chat", '
        '"messages": [{"role": "user", "content": "Hi {name"}]}})',
        "TemplateSyntaxError",
        "write literal braces as {{ and }}",
        doc="publish a template `Hi {name`",
    ),
    Case(
        "publish-jinja-syntax",
        "run()",
        "template syntax",
        'pl_magic.publish({"prompt_name": "p", "prompt_template": {"type": "chat", '
        '"messages": [{"role": "user", "content": "{% if %}", "template_format": "jinja2"}]}})',
        "TemplateSyntaxError",
        "fix the template text",
        doc="publish a jinja2 template `{% if %}`",
    ),
    Case(
        "run-huge-version",
        "run()",
        "huge value",
        'pl_magic.run("greet", prompt_version=10**30, input_variables={"name": "Ada"})',
        "VersionNotFoundError",
        "existing versions are 1, 2",
    ),
    Case(
        "run-huge-group-id",
        "run()",
        "huge value",
        'pl_magic.run("greet", input_variables={"name": "Ada"}, group_id=10**30)',
        "InvalidInputError",
        "pl_magic.create_group()",
    ),
    Case(
        "run-huge-name",
        "run()",
        "huge value",
        f'pl_magic.run("x" * {len(_HUGE_NAME)})',
        "PromptNotFoundError",
        "list prompts with pl_magic.prompts()",
    ),
    Case(
        "run-zero-width-name",
        "run()",
        "unusual Unicode",
        'pl_magic.run("gre\\u200bet", input_variables={"name": "Ada"})',
        "PromptNotFoundError",
        "did you mean greet?",
    ),
    Case(
        "run-lone-surrogate",
        "run()",
        "unusual Unicode",
        'pl_magic.run("greet", input_variables={"name": "Ada \\udc80"})',
        "InvalidInputError",
        "cannot be encoded as UTF-8",
    ),
    Case(
        "run-nul-in-label",
        "run()",
        "unusual Unicode",
        'pl_magic.run("greet", prompt_release_label="prod\\x00", input_variables={"name": "A"})',
        "LabelNotFoundError",
        "existing labels are prod, staging",
    ),
    Case(
        "run-no-openai-key",
        "run()",
        "missing key",
        'pl_magic.run("greet", input_variables={"name": "Ada"})',
        "MissingApiKeyError",
        "set the environment variable OPENAI_API_KEY",
        env=_NO_OPENAI,
    ),
    Case(
        "run-no-anthropic-key",
        "run()",
        "missing key",
        'pl_magic.run("claude", input_variables={"name": "Ada"})',
        "MissingApiKeyError",
        "set the environment variable ANTHROPIC_API_KEY",
    ),
    Case(
        "run-no-gemini-key",
        "run()",
        "missing key",
        'pl_magic.run("gemini", input_variables={"name": "Ada"})',
        "MissingApiKeyError",
        "GOOGLE_API_KEY or GEMINI_API_KEY",
    ),
    Case(
        "run-no-vertex-project",
        "run()",
        "missing key",
        'pl_magic.run("gemini", input_variables={"name": "Ada"})',
        "MissingApiKeyError",
        "GOOGLE_CLOUD_PROJECT",
        env=(("GOOGLE_GENAI_USE_VERTEXAI", "true"),),
    ),
    Case(
        "run-no-vertexai-settings",
        "run()",
        "missing key",
        'pl_magic.run("vertex-gemini", input_variables={"name": "Ada"})',
        "MissingApiKeyError",
        "GOOGLE_APPLICATION_CREDENTIALS",
    ),
    Case(
        "run-no-claude-vertex-project",
        "run()",
        "missing key",
        'pl_magic.run("vertex-claude", input_variables={"name": "Ada"})',
        "MissingApiKeyError",
        "ANTHROPIC_VERTEX_PROJECT_ID",
    ),
    # -- %%plrun ---------------------------------------------------------------------------
    Case(
        "plrun-no-name",
        "%%plrun",
        "empty cell",
        "%%plrun\nname: Ada",
        "InvalidInputError",
        "Name the prompt to run",
        kernel=True,
    ),
    Case(
        "plrun-empty-body",
        "%%plrun",
        "empty cell",
        "%%plrun greet@prod\n",
        "UsageError",
        "Did you mean the line magic %plrun (single %)?",
    ),
    Case(
        "plrun-comment-only-body",
        "%%plrun",
        "empty cell",
        "%%plrun greet@prod\n# name: Ada",
        "MissingVariablesError",
        "(give each one a value)",
        kernel=True,
    ),
    Case(
        "plrun-unknown-prompt",
        "%%plrun",
        "unknown name",
        "%%plrun gret@prod\nname: Ada",
        "PromptNotFoundError",
        "did you mean greet?",
    ),
    Case(
        "plrun-bad-target",
        "%%plrun",
        "bad label",
        "%%plrun greet@\nname: Ada",
        "InvalidInputError",
        "write NAME, NAME@label or NAME:3",
    ),
    Case(
        "plrun-unknown-label",
        "%%plrun",
        "bad label",
        "%%plrun greet@dev\nname: Ada",
        "LabelNotFoundError",
        "set one with pl_magic.set_label",
        kernel=True,
    ),
    Case(
        "plrun-version-not-a-number",
        "%%plrun",
        "bad version",
        "%%plrun greet --version two\nname: Ada",
        "UsageError",
        "see %plrun? for the options",
    ),
    Case(
        "plrun-bad-yaml",
        "%%plrun",
        "malformed YAML",
        "%%plrun greet\nname: [Ada",
        "InvalidInputError",
        "write input variables as `name: value` lines",
        kernel=True,
    ),
    Case(
        "plrun-yaml-list",
        "%%plrun",
        "malformed YAML",
        "%%plrun greet\n- Ada\n- Bo",
        "InvalidInputError",
        "must be a mapping of input variables",
    ),
    Case(
        "plrun-bad-json",
        "%%plrun",
        "malformed JSON",
        '%%plrun greet\n{"name": "Ada"',
        "InvalidInputError",
        "write input variables as `name: value` lines",
    ),
    Case(
        "plrun-unknown-option",
        "%%plrun",
        "unknown option",
        "%%plrun greet --temperature 0\nname: Ada",
        "UsageError",
        "see %plrun? for the options",
        kernel=True,
    ),
    Case(
        "plrun-unclosed-quote",
        "%%plrun",
        "unknown option",
        '%%plrun greet --tag "demo\nname: Ada',
        "UsageError",
        "close the quote",
        kernel=True,
    ),
    Case(
        "plrun-var-without-value",
        "%%plrun",
        "wrong type",
        "%plrun greet --var name",
        "InvalidInputError",
        "must look like key=value",
    ),
    Case(
        "plrun-vars-undefined",
        "%%plrun",
        "unknown name",
        "%plrun greet --vars nothere",
        "InvalidInputError",
        "define it first",
    ),
    Case(
        "plrun-repeat-zero",
        "%%plrun",
        "wrong type",
        "%%plrun greet --repeat 0\nname: Ada",
        "InvalidInputError",
        "repeat must be a whole number ≥ 1",
    ),
    Case(
        "plrun-huge-repeat",
        "%%plrun",
        "huge value",
        "%%plrun greet --repeat 1000000000\nname: Ada",
        "InvalidInputError",
        "lower --repeat or split it into smaller comparisons",
    ),
    Case(
        "plrun-model-without-provider",
        "%%plrun",
        "unknown name",
        "%%plrun greet --models llama-3\nname: Ada",
        "InvalidInputError",
        "write it as provider/model",
    ),
    Case(
        "plrun-sandbox-escape",
        "%%plrun",
        "sandbox escape",
        "%%plrun escape\nname: Ada",
        "SandboxViolationError",
        "use only variables, filters and loops",
        kernel=True,
    ),
    Case(
        "plrun-huge-label",
        "%%plrun",
        "huge value",
        "%%plrun greet@" + "L" * 5000 + "\nname: Ada",
        "LabelNotFoundError",
        "set one with pl_magic.set_label",
    ),
    Case(
        "plrun-rtl-variable",
        "%%plrun",
        "unusual Unicode",
        "%%plrun greet\nname\u202e: Ada",
        "MissingVariablesError",
        "did you mean name instead of",
    ),
    Case(
        "plrun-no-anthropic-key",
        "%%plrun",
        "missing key",
        "%%plrun claude\nname: Ada",
        "MissingApiKeyError",
        "set the environment variable ANTHROPIC_API_KEY",
        kernel=True,
    ),
    # -- %%plprompt ------------------------------------------------------------------------
    Case(
        "plprompt-bad-yaml",
        "%%plprompt",
        "malformed YAML",
        "%%plprompt p\nmessages:\n  - user: [hi",
        "InvalidInputError",
        "fix the YAML",
        kernel=True,
    ),
    Case(
        "plprompt-unknown-key",
        "%%plprompt",
        "malformed YAML",
        "%%plprompt p\nmesages:\n  - user: hi",
        "InvalidInputError",
        "did you mean messages?",
    ),
    Case(
        "plprompt-no-messages",
        "%%plprompt",
        "malformed YAML",
        "%%plprompt p\nmodel: openai/gpt-4o-mini",
        "InvalidInputError",
        "needs either messages: (a chat) or template: (a completion)",
    ),
    Case(
        "plprompt-bad-role",
        "%%plprompt",
        "malformed YAML",
        "%%plprompt p\nmessages:\n  - usr: hi",
        "InvalidInputError",
        "use one of system, developer, user",
    ),
    Case(
        "plprompt-fstring-syntax",
        "%%plprompt",
        "template syntax",
        "%%plprompt p\nmessages:\n  - user: 'Hi {name'",
        "TemplateSyntaxError",
        "write literal braces as {{ and }}",
        kernel=True,
    ),
    Case(
        "plprompt-jinja-syntax",
        "%%plprompt",
        "template syntax",
        "%%plprompt p\ntemplate_format: jinja2\nmessages:\n  - user: '{% for %}'",
        "TemplateSyntaxError",
        "fix the template text",
    ),
    Case(
        "plprompt-bad-model",
        "%%plprompt",
        "unknown name",
        "%%plprompt p\nmessages:\n  - user: hi\nmodel: llama-3",
        "InvalidInputError",
        "write it as provider/model",
    ),
    Case(
        "plprompt-unknown-provider",
        "%%plprompt",
        "unknown name",
        "%%plprompt p\nmessages:\n  - user: hi\nmodel: cohere/command-r",
        "UnknownProviderError",
        "use one of anthropic, google, openai, vertexai",
    ),
    Case(
        "plprompt-bad-label",
        "%%plprompt",
        "bad label",
        '%%plprompt p --label "new prod"\nmessages:\n  - user: hi',
        "InvalidInputError",
        "use letters, digits, '-', '_' or '.'",
    ),
    Case(
        "plprompt-parameters-without-model",
        "%%plprompt",
        "wrong type",
        "%%plprompt p\nmessages:\n  - user: hi\nparameters: {temperature: 0}",
        "InvalidInputError",
        "need a model:",
    ),
    Case(
        "plprompt-scalar-body",
        "%%plprompt",
        "wrong type",
        "%%plprompt p\njust some text",
        "InvalidInputError",
        "must be a mapping with messages:",
    ),
    Case(
        "plprompt-unknown-option",
        "%%plprompt",
        "unknown option",
        "%%plprompt p --labels prod\nmessages:\n  - user: hi",
        "UsageError",
        "see %plprompt? for the options",
    ),
    Case(
        "plprompt-empty-body",
        "%%plprompt",
        "empty cell",
        "%%plprompt p\n",
        "UsageError",
        "Did you mean the line magic %plprompt (single %)?",
    ),
    Case(
        "plprompt-show-unknown",
        "%%plprompt",
        "unknown name",
        "%plprompt gret",
        "PromptNotFoundError",
        "did you mean greet?",
    ),
    Case(
        "plprompt-diff-unknown",
        "%%plprompt",
        "bad version",
        "%plprompt greet --diff 9",
        "VersionNotFoundError",
        "existing versions are 1, 2",
    ),
    # -- the widget ------------------------------------------------------------------------
    Case(
        "widget-empty-variable",
        "widget",
        "missing variable",
        'form = pl_magic.form("greet"); form.run()',
        "MissingVariablesError",
        "(give each one a value)",
    ),
    Case(
        "widget-unknown-prompt",
        "widget",
        "unknown name",
        'form = pl_magic.form("gret")',
        "PromptNotFoundError",
        "did you mean greet?",
    ),
    Case(
        "widget-bad-extras",
        "widget",
        "wrong type",
        'form = pl_magic.form("greet"); form.variables.children[0].value = "Ada"; '
        'form.extras.value = "temperature"; form.run()',
        "InvalidInputError",
        "must look like key=value",
    ),
    Case(
        "widget-bad-metadata",
        "widget",
        "wrong type",
        'form = pl_magic.form("greet"); form.variables.children[0].value = "Ada"; '
        'form.metadata.value = "=x"; form.run()',
        "InvalidInputError",
        "must look like key=value",
    ),
    Case(
        "widget-no-gemini-key",
        "widget",
        "missing key",
        'form = pl_magic.form("greet"); form.variables.children[0].value = "Ada"; '
        'form.provider.value = "google"; form.run()',
        "MissingApiKeyError",
        "GOOGLE_API_KEY or GEMINI_API_KEY",
    ),
    Case(
        "widget-sandbox-escape",
        "widget",
        "sandbox escape",
        'form = pl_magic.form("escape"); form.variables.children[0].value = "Ada"; form.run()',
        "SandboxViolationError",
        "use only variables, filters and loops",
    ),
    Case(
        "widget-no-anthropic-key",
        "widget",
        "missing key",
        'form = pl_magic.form("greet"); form.variables.children[0].value = "Ada"; '
        'form.provider.value = "anthropic"; form.run()',
        "MissingApiKeyError",
        "set the environment variable ANTHROPIC_API_KEY",
    ),
    Case(
        "widget-lone-surrogate",
        "widget",
        "unusual Unicode",
        'form = pl_magic.form("greet"); form.variables.children[0].value = "\\ud800"; form.run()',
        "InvalidInputError",
        "cannot be encoded as UTF-8",
    ),
    # -- the CLI ---------------------------------------------------------------------------
    Case(
        "cli-unknown-prompt",
        "cli",
        "unknown name",
        "pl-magic run gret --var name=Ada",
        "PromptNotFoundError",
        "did you mean greet?",
    ),
    Case(
        "cli-version-not-a-number",
        "cli",
        "bad version",
        "pl-magic run greet --version two --var name=Ada",
        "UsageError",
        "see pl-magic run --help",
    ),
    Case(
        "cli-label-and-version",
        "cli",
        "bad version",
        "pl-magic run greet --label prod --version 1 --var name=Ada",
        "UsageError",
        "see pl-magic run --help",
    ),
    Case(
        "cli-unknown-label",
        "cli",
        "bad label",
        "pl-magic labels delete greet dev",
        "LabelNotFoundError",
        "existing labels are prod, staging",
    ),
    Case(
        "cli-missing-variable",
        "cli",
        "missing variable",
        "pl-magic run greet --label prod",
        "MissingVariablesError",
        "(give each one a value)",
    ),
    Case(
        "cli-var-without-value",
        "cli",
        "wrong type",
        "pl-magic run greet --var name",
        "InvalidInputError",
        "e.g. --var name=Ada",
    ),
    Case(
        "cli-unknown-option",
        "cli",
        "unknown option",
        "pl-magic run greet --temperature 0",
        "UsageError",
        "see pl-magic --help",
    ),
    Case(
        "cli-unknown-command",
        "cli",
        "unknown option",
        "pl-magic promtps list",
        "UsageError",
        "see pl-magic --help",
    ),
    Case(
        "cli-push-bad-yaml",
        "cli",
        "malformed YAML",
        "pl-magic prompts push bad.yaml",
        "InvalidInputError",
        "fix the YAML",
        files=(("bad.yaml", "prompt_name: p\nmessages: [\n"),),
    ),
    Case(
        "cli-push-missing-file",
        "cli",
        "unknown name",
        "pl-magic prompts push nothere.yaml",
        "InvalidInputError",
        "No such file or directory",
    ),
    Case(
        "cli-import-bad-json",
        "cli",
        "malformed JSON",
        "pl-magic prompts import bad.json",
        "InvalidInputError",
        "pl-magic prompts export",
        files=(("bad.json", '[{"prompt_name": "p",'),),
    ),
    Case(
        "cli-import-wrong-shape",
        "cli",
        "malformed JSON",
        "pl-magic prompts import list.json",
        "InvalidInputError",
        "a record or a list of records",
        files=(("list.json", "[1, 2, 3]"),),
    ),
    Case(
        "cli-push-jinja-syntax",
        "cli",
        "template syntax",
        "pl-magic prompts push p.yaml",
        "TemplateSyntaxError",
        "fix the template text",
        files=(("p.yaml", "prompt_name: p\ntemplate_format: jinja2\ntemplate: '{{ x '\n"),),
    ),
    Case(
        "cli-labels-huge-version",
        "cli",
        "huge value",
        "pl-magic labels set greet prod 99999999999999999999999",
        "VersionNotFoundError",
        "existing versions are 1, 2",
    ),
    Case(
        "cli-runs-limit-zero",
        "cli",
        "wrong type",
        "pl-magic runs --limit 0",
        "UsageError",
        "must be 1 or more",
    ),
    Case(
        "cli-emoji-name",
        "cli",
        "unusual Unicode",
        "pl-magic run gr\U0001f600eet --var name=Ada",
        "PromptNotFoundError",
        "did you mean greet?",
    ),
    Case(
        "cli-control-characters",
        "cli",
        "unusual Unicode",
        "pl-magic run greet '--x\r\x1b[2J'",
        "UsageError",
        "see pl-magic --help",
    ),
    Case(
        "cli-no-openai-key",
        "cli",
        "missing key",
        "pl-magic run greet --var name=Ada",
        "MissingApiKeyError",
        "set the environment variable OPENAI_API_KEY",
        env=_NO_OPENAI,
    ),
]


# Rows of the other areas: each ``cases_*.py`` beside this file defines ``CASES`` and may add
# ``PROMPTS`` (published after these) and ``KINDS`` (kinds of bad input new to it).
for _module_path in sorted(Path(__file__).parent.glob("cases_*.py")):
    _area = importlib.import_module(f"tests.reliability.{_module_path.stem}")
    PROMPTS += getattr(_area, "PROMPTS", [])
    CASES += _area.CASES
    KINDS += tuple(k for k in getattr(_area, "KINDS", ()) if k not in KINDS)


def _cell(text: str, code: bool = True) -> str:
    text = text.replace("|", "\\|").replace("\n", "⏎")
    if code:  # (inside a code span a backtick would end it)
        text = text.replace("`", "'")
    # invisible or direction-changing characters are shown as escapes
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text)


def _shown(text: str, limit: int = 110) -> str:
    text = text.replace("x" * len(_HUGE_NAME), "x" * 8 + "…")
    for long in ("L" * 5000,):
        text = text.replace(long, long[:8] + "…")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _input(case: Case) -> str:
    if case.doc:
        return _cell(case.doc, code=False)
    return f"`{_cell(_shown(case.input))}`"


def markdown() -> str:
    """``docs/errors.md``: the catalogue as a table."""
    lines = [
        "# Errors: bad input and what pl_magic says",
        "",
        "<!-- Generated by `python -m tests.reliability.catalogue --markdown > docs/errors.md`",
        "     from tests/reliability/catalogue.py; tests/reliability/test_bad_inputs.py runs",
        "     every row and checks this file is up to date. -->",
        "",
        "Every error pl_magic raises on purpose is a subclass of `pl_magic.errors.PlMagicError`",
        "(argument parsing in the magics and the CLI gives a usage error instead). Its message is",
        "one line that names the problem and the fix; in a notebook it shows as one red line",
        "(`%config PlMagic.short_errors = False` shows the full traceback), in the form as the",
        "status line, in the CLI as `pl-magic: error: …` on stderr with exit code 2 (what was",
        "typed is wrong) or 1 (the rest). A bad input fails before any provider call and is",
        "never logged as a successful run.",
        "",
        f"{len(CASES)} bad inputs on {len(SURFACES)} surfaces, each run by the test suite:",
        "",
        "| id | surface | kind | input (⏎ = new line) | error | the message says |",
        "|---|---|---|---|---|---|",
    ]
    for case in CASES:
        lines.append(
            f"| `{case.id}` | {_cell(case.surface)} | {case.kind} | {_input(case)} "
            f"| `{case.error}` | {_cell(case.fix)} |"
        )
    env_cases = [c for c in CASES if c.env]
    if env_cases:
        lines += ["", "Environment for the rows that need one:", ""]
        for case in env_cases:
            changes = ", ".join(
                f"`{k}` unset" if v is None else f"`{k}={_cell(v)}`" for k, v in case.env
            )
            lines.append(f"- `{case.id}`: {changes}")
    lines += [
        "",
        "The prompts these rows run against: "
        + ", ".join(f"`{name}`" for name in dict.fromkeys(p[0] for p in PROMPTS))
        + " (see `PROMPTS` in the catalogue); only `OPENAI_API_KEY` is set unless said otherwise.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if argv != ["--markdown"]:
        print("usage: python -m tests.reliability.catalogue --markdown", file=sys.stderr)
        return 2
    sys.stdout.write(markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
