"""The offline safety net (reference/provider-wire.md §0.7), shared by the tests and the
benchmarks: any request that escapes towards a real host fails at once with "connection
refused", google-auth never probes the GCE metadata server, and no credential or endpoint
leaks in from the machine running them. Apply it before any SDK is imported: google-auth
reads NO_GCE_CHECK at import time."""

from __future__ import annotations

import os
import tempfile

_CLOSED = "http://127.0.0.1:9"
_CLEARED_PREFIXES = ("GOOGLE_", "GEMINI_", "VERTEX_AI_", "ANTHROPIC_", "OPENAI_", "PROMPTLAYER_")
_CLEARED = ("CLOUD_ML_REGION",)


def apply_offline_environment() -> None:
    """Drop real credentials and endpoints from ``os.environ``; point proxies at a closed port."""
    for name in list(os.environ):
        if name.startswith(_CLEARED_PREFIXES) or name in _CLEARED or name.endswith("_API_KEY"):
            del os.environ[name]
    os.environ.update(
        {
            "HTTP_PROXY": _CLOSED,
            "HTTPS_PROXY": _CLOSED,
            "ALL_PROXY": _CLOSED,
            "http_proxy": _CLOSED,
            "https_proxy": _CLOSED,
            "all_proxy": _CLOSED,
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            "NO_GCE_CHECK": "true",
            "GCE_METADATA_HOST": "127.0.0.1:9",
            "GCE_METADATA_IP": "127.0.0.1:9",
            "CLOUDSDK_CONFIG": tempfile.mkdtemp(prefix="pl_magic_gcloud_"),
        }
    )
