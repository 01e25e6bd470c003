"""Google credentials, found without the network: what the Vertex AI routes need.

Both Vertex routes (Gemini through google-genai, Claude through ``anthropic.AnthropicVertex``)
take a project and a region from the environment and a token from Google's application
default credentials (ADC). This module checks before any call that they can be found, and
applies the key rule of :mod:`pl_magic.core.keys` to the Google token.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..core.errors import ConfigurationError, MissingApiKeyError
from ..core.keys import may_send_key, vertex_host
from .base import env_value


class MissingSettingsError(MissingApiKeyError):
    """Several settings are needed and some are missing: names every missing one.

    Each group lists a variable and its accepted alternatives, e.g.
    ``("ANTHROPIC_VERTEX_PROJECT_ID", "VERTEX_AI_PROJECT_ID")``.
    """

    def __init__(
        self, provider: str, missing: Sequence[Sequence[str]], why: str = "", note: str = ""
    ) -> None:
        self.provider = provider
        self.groups = [list(group) for group in missing]
        self.variables = [name for group in self.groups for name in group]
        extra = f" ({why})" if why else ""
        if len(self.groups) == 1:
            what = "the environment variable " + " or ".join(self.groups[0])
        else:
            shown = [
                group[0] + (f" (or {' or '.join(group[1:])})" if len(group) > 1 else "")
                for group in self.groups
            ]
            what = "the environment variables " + ", ".join(shown[:-1]) + " and " + shown[-1]
        tail = f"; {note}" if note else ""
        ConfigurationError.__init__(self, f"No credentials for {provider}{extra}: set {what}{tail}")


def require_google_cloud(provider: str, *groups: Sequence[str], why: str = "") -> list[str]:
    """One value per group of alternative variables, with Google credentials present (see
    :func:`google_credentials_problem`); else one error naming every missing variable."""
    values = [env_value(*group) for group in groups]
    missing = [group for group, value in zip(groups, values, strict=True) if value is None]
    problem = google_credentials_problem()
    note = ""
    if problem == "GOOGLE_APPLICATION_CREDENTIALS":
        missing.append((problem,))
    elif problem:
        note = problem
    if missing:
        raise MissingSettingsError(provider, missing, why, note)
    if note:
        extra = f" ({why})" if why else ""
        raise ConfigurationError(f"No credentials for {provider}{extra}: {note}")
    return [value for value in values if value is not None]


def google_credentials_problem() -> str | None:
    """Why Google credentials (ADC) cannot be found offline, or None when they can.

    Accepted, in google-auth's own order: ``GOOGLE_APPLICATION_CREDENTIALS`` naming an
    existing file; the gcloud CLI's ``application_default_credentials.json``
    (``gcloud auth application-default login``); running on Google Cloud (detected from
    the machine's DMI product name, the check google-auth makes without the network).
    Returns the name of the variable to set, or a one-line explanation.
    """
    path = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if path:
        if Path(path).expanduser().is_file():
            return None
        return (
            "GOOGLE_APPLICATION_CREDENTIALS names a file that does not exist "
            f"({path}): point it at a service-account JSON key file"
        )
    if _gcloud_adc_file().is_file() or _on_google_cloud():
        return None
    return "GOOGLE_APPLICATION_CREDENTIALS"


def _gcloud_adc_file() -> Path:
    """Where ``gcloud auth application-default login`` writes its credentials."""
    config = os.environ.get("CLOUDSDK_CONFIG")
    if config:
        base = Path(config)
    elif os.name == "nt":  # pragma: no cover - Windows
        base = Path(os.environ.get("APPDATA", "")) / "gcloud"
    else:
        base = Path.home() / ".config" / "gcloud"
    return base / "application_default_credentials.json"


def _on_google_cloud() -> bool:
    """True on a Google Cloud VM (Vertex AI Workbench, GCE, GKE): their metadata server
    gives credentials. Read from DMI, never probed over the network."""
    try:
        name = Path("/sys/class/dmi/id/product_name").read_text().strip()
    except OSError:
        return False
    return name.startswith("Google")


def vertex_keyless(
    provider: str, template_url: str | None, env_url_variables: Sequence[str]
) -> bool:
    """True when a template's Vertex AI URL is on this machine: it gets no Google token.

    The rule of :func:`pl_magic.core.keys.may_send_key`: Vertex AI's own hosts, the origin of
    one of ``env_url_variables`` and trusted origins get the token; a URL elsewhere is
    refused (:class:`~pl_magic.core.errors.UntrustedBaseUrlError`) before any call.
    """
    return bool(template_url) and not may_send_key(
        provider, str(template_url), "Google credentials", env_url_variables, vertex_host
    )
