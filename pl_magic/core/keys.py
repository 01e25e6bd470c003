"""Where a provider key may go, and which keys are sent at all.

One rule for every provider: the real key goes only to the provider's own host, to the base
URL the user set in the environment (``OPENAI_BASE_URL``, ...), or to a template URL whose
origin the user trusts (``PL_MAGIC_TRUSTED_BASE_URLS`` or ``%config
PlMagic.trusted_base_urls``). Any other template URL on this machine (loopback) gets no
key and works; the rest are refused before the call. A registry template can
therefore never hand a key to a server by itself.

Hosts are read as the HTTP client reads them (httpx's URL parser, then the C library's
numeric address parser, which accepts ``127.1``, ``2130706433`` or ``0x7f.1``) and judged
with :mod:`ipaddress`; a host the two URL parsers read differently counts as remote.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from . import config
from .errors import (
    ConfigurationError,
    InvalidTemplateError,
    MalformedKeyError,
    UntrustedBaseUrlError,
)

_DEFAULT_PORTS = {"http": 80, "https": 443}

#: What a server on this machine gets instead of a real key: the SDKs insist on one, and
#: OpenAI-, Anthropic- and Gemini-compatible local servers ignore it.
LOCAL_SERVER_KEY = "no-key-needed"


def openai_host(host: str) -> bool:
    """OpenAI's own API host (reached over https)."""
    return host == "api.openai.com"


def anthropic_host(host: str) -> bool:
    """Anthropic's own API host (reached over https)."""
    return host == "api.anthropic.com"


def gemini_host(host: str) -> bool:
    """The Gemini API's own host (reached over https)."""
    return host == "generativelanguage.googleapis.com"


def vertex_host(host: str) -> bool:
    """Vertex AI's hosts, global and regional (``REGION-aiplatform.googleapis.com``)."""
    return host == "aiplatform.googleapis.com" or host.endswith("-aiplatform.googleapis.com")


def _host_and_port(url: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of an http(s) URL as the HTTP client reads it, or None when
    it is not one or when urllib and httpx disagree about it (ambiguous)."""
    try:
        import httpx2

        parsed = httpx2.URL(url)
        split = urlsplit(url)
        split_host, split_port = split.hostname, split.port
    except Exception:  # any parser's refusal: not a URL a request could go to
        return None
    scheme = parsed.scheme.lower()
    host = parsed.host.lower()
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    port = parsed.port or _DEFAULT_PORTS[scheme]
    if split_host is None or split_host.lower() != host or (split_port or port) != port:
        return None
    return scheme, host, port


def _numeric_addresses(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The addresses a numeric host stands for, parsed by the C library as a connection would
    (no DNS: ``AI_NUMERICHOST``); empty for a name."""
    try:
        infos = socket.getaddrinfo(host, None, flags=socket.AI_NUMERICHOST)
    except (OSError, UnicodeError, ValueError):
        return []
    out = []
    for info in infos:
        text = str(info[4][0]).split("%", 1)[0]  # an IPv6 zone (fe80::1%lo)
        try:
            out.append(ipaddress.ip_address(text))
        except ValueError:
            return []
    return out


def _is_local_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped
        if mapped is not None:
            address = mapped
        elif int(address) >> 32 == 0 and int(address) > 1:  # IPv4-compatible ::127.0.0.1
            address = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    # 0.0.0.0 and :: reach this machine too when connected to
    return address.is_loopback or address.is_unspecified


def is_loopback_host(host: str) -> bool:
    """True when a connection to ``host`` stays on this machine: ``localhost`` (with or
    without its trailing dot) and every spelling of a loopback or unspecified address."""
    name = host.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if name.endswith(".") and not name.endswith(".."):
        name = name[:-1]  # the DNS root: the same host
    if name == "localhost":
        return True
    addresses = _numeric_addresses(name)
    return bool(addresses) and all(_is_local_address(a) for a in addresses)


def is_loopback_url(url: str | None) -> bool:
    """True for an http(s) URL whose host is on this machine (see :func:`is_loopback_host`);
    False for anything else, including what cannot be read unambiguously."""
    if not url:
        return False
    parts = _host_and_port(url)
    return parts is not None and is_loopback_host(parts[1])


def origin(url: str) -> str | None:
    """``scheme://host[:port]`` of an http(s) URL (lower case, default port left out), or
    None when the URL cannot be read unambiguously."""
    parts = _host_and_port(url)
    if parts is None:
        return None
    scheme, host, port = parts
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}" if _DEFAULT_PORTS[scheme] == port else f"{scheme}://{host}:{port}"


def trusted_origins() -> set[str]:
    """The origins the user trusts with provider keys; a malformed entry is an error naming
    its setting."""
    out = set()
    for setting, entry in config.trusted_base_urls():
        found = origin(entry)
        if found is None:
            raise ConfigurationError(
                f"{setting} has {entry!r}, which is not an http(s) origin: write origins like "
                "https://gateway.example.com, separated by commas"
            )
        out.add(found)
    return out


def may_send_key(
    provider: str,
    template_url: str,
    key_variable: str,
    env_url_variables: Sequence[str] = (),
    own_host: Callable[[str], bool] = lambda host: False,
) -> bool:
    """Whether a template's base URL may get the real key: True for the provider's own host,
    the origin of the environment's base URL or a trusted origin (where the user sends keys);
    False for any other URL on this machine (it gets none); :class:`UntrustedBaseUrlError`
    (raised before any call) for the rest."""
    found = origin(template_url)
    if found is not None:
        parts = _host_and_port(template_url)
        if parts is not None and parts[0] == "https" and parts[2] == 443 and own_host(parts[1]):
            return True
        env_origins = {origin(os.environ.get(name) or "") for name in env_url_variables}
        if found in env_origins or found in trusted_origins():
            return True
    if is_loopback_url(template_url):
        return False
    shown = found or template_url[:80]
    raise UntrustedBaseUrlError(provider, shown, key_variable, "PL_MAGIC_TRUSTED_BASE_URLS")


#: SDK call arguments that change where a request goes or the credentials it carries (genai's
#: per-request ``http_options`` replaces the client's base URL and headers). They would let a
#: registry template route around the rule above, so a template never sets them.
ROUTING_PARAMETERS = frozenset(
    {
        "http_options",
        "extra_headers",
        "extra_query",
        "base_url",
        "api_key",
        "default_headers",
        "default_query",
        "http_client",
    }
)


def refuse_routing_parameters(provider: str, parameters: Mapping[str, Any]) -> None:
    """:class:`InvalidTemplateError` (before any call) when a template's model parameters or
    ``model_parameter_overrides`` hold one of :data:`ROUTING_PARAMETERS`."""
    for name in parameters:
        if name in ROUTING_PARAMETERS:
            raise InvalidTemplateError(
                f"The {provider} model parameter {name!r} could send the request or its key "
                "to another server: remove it, and set provider_base_url on the template "
                "instead (see PL_MAGIC_TRUSTED_BASE_URLS)"
            )


def checked_key(variable: str, value: str) -> str:
    """``value`` if it is a usable key; :class:`MalformedKeyError` when it holds whitespace
    or control characters (a pasted or file-read newline), which never belong in a key. The
    message never shows the key."""
    if value.endswith(("\n", "\r")):
        raise MalformedKeyError(variable, "ends with a newline", "strip it")
    if value != value.strip():
        where = "starts" if value[:1].isspace() else "ends"
        raise MalformedKeyError(variable, f"{where} with whitespace", "strip it")
    for index, char in enumerate(value):
        if char.isspace() or not char.isprintable():
            what = "whitespace" if char.isspace() else "a control character"
            raise MalformedKeyError(
                variable,
                f"contains {what} (U+{ord(char):04X} at position {index + 1})",
                "set it to the key alone",
            )
    return value


def env_key(*variables: str) -> str | None:
    """The first key set among ``variables``, checked by :func:`checked_key`; None if unset."""
    for name in variables:
        value = os.environ.get(name)
        if value:
            return checked_key(name, value)
    return None
