"""Fake Google service-account credentials whose token endpoint is the fake provider server.

google-auth signs a JWT with the key and POSTs it to the JSON's ``token_uri`` (plain
``http://`` is accepted), so the real ``GOOGLE_APPLICATION_CREDENTIALS`` code path of
AnthropicVertex and genai Vertex runs fully offline against ``FakeProviderServer``.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def write_fake_service_account(
    path: str | os.PathLike[str], token_uri: str, project_id: str = "p1"
) -> Path:
    """Write a service-account JSON with a freshly generated RSA key and return its path.

    A real key is needed because google-auth actually signs the token request; nothing on
    the fake server checks the signature.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    ).decode()
    info = {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": f"fake-sa@{project_id}.iam.gserviceaccount.com",
        "client_id": "100000000000000000001",
        "token_uri": token_uri,
    }
    out = Path(path)
    out.write_text(json.dumps(info, indent=2))
    return out
