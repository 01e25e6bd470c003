"""The shapes that cross pl_magic's layers: ``run()``'s arguments, its result and stream
chunks, and a prompt blueprint (PromptLayer's ``prompt_blueprint``).

These are ``TypedDict``s: types for readers, IDEs and mypy only. At run time each is a
plain ``dict`` (nothing is checked or converted, so using them costs nothing); the keys
are PromptLayer's, so a result reads the same as one from PromptLayer's SDK.
"""

from typing import Any, NotRequired, TypedDict


class ModelMetadata(TypedDict):
    """PromptLayer's ``metadata.model``: what a template runs on."""

    provider: str
    name: str
    parameters: dict[str, Any]
    #: OpenAI's ``chat-completions`` or ``responses`` (absent: the provider's default).
    api_type: NotRequired[str | None]


class BlueprintMetadata(TypedDict, total=False):
    """A blueprint's ``metadata``."""

    model: ModelMetadata
    #: pl_magic: parameters the model that ran has no equivalent for (a provider override).
    dropped_parameters: list[str]


class PromptTemplate(TypedDict, total=False):
    """PromptLayer's ``prompt_template``: a chat (``messages``) or a completion
    (``content``). Messages and content blocks stay plain dicts: PromptLayer has many
    kinds of each (see ``core/blueprint.py`` for the ones pl_magic reads)."""

    type: str
    messages: list[dict[str, Any]]
    content: list[dict[str, Any]]
    input_variables: list[str]
    template_format: str
    tools: list[dict[str, Any]] | None
    tool_choice: Any
    functions: list[dict[str, Any]] | None
    function_call: Any


class Blueprint(TypedDict):
    """A run's ``prompt_blueprint``: the rendered template with the reply appended, and the
    model that ran. PromptLayer's answers carry more keys (``commit_message``...)."""

    prompt_template: PromptTemplate
    metadata: BlueprintMetadata
    # pl_magic's module-level API keeps these; the drop-in clients leave them out, as
    # PromptLayer's SDK has none.
    prompt_name: NotRequired[str]
    prompt_version: NotRequired[int]
    release_label: NotRequired[str | None]


class RunResult(TypedDict):
    """What ``run()`` returns (PromptLayer's ``run()`` contract)."""

    #: pl_magic's local id (a hex string), or PromptLayer's (a number) once the run is
    #: logged there.
    request_id: str | int
    #: The provider SDK's own response object.
    raw_response: Any
    prompt_blueprint: Blueprint


class RunChunk(TypedDict):
    """One item of ``run(stream=True)``: ``prompt_blueprint`` holds the reply so far. Only
    the last chunk carries the ``request_id`` (None before); it is the whole result."""

    request_id: str | int | None
    #: The provider SDK's own stream event.
    raw_response: Any
    prompt_blueprint: Blueprint


class RunArgs(TypedDict, total=False):
    """The arguments of ``run()`` after ``prompt_name``, named, typed and ordered as in
    PromptLayer's SDK. The one list of them: the public ``run()`` functions forward their
    arguments by these names (see :data:`RUN_ARGUMENTS`)."""

    prompt_version: int | None
    prompt_release_label: str | None
    input_variables: dict[str, Any] | None
    model_parameter_overrides: dict[str, Any] | None
    tags: list[str] | None
    metadata: dict[str, Any] | None
    group_id: int | None
    stream: bool
    provider: str | None
    model: str | None


#: Every argument of ``run()``, in PromptLayer's order.
RUN_ARGUMENTS: tuple[str, ...] = ("prompt_name", *RunArgs.__annotations__)
