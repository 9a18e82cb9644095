"""What an API key looks like and how it is stored: a leaf, so checking one needs no domain."""

from __future__ import annotations

import hashlib

KEY_PREFIX = "csk_"
SCOPES = (
    "consent:read",
    "consent:write",
    "events:write",
    "integrations:read",
    "integrations:write",
    "privacy:admin",
)


def hash_key(key: str) -> str:
    """The SHA-256 under which a key is stored and looked up."""
    return hashlib.sha256(key.encode()).hexdigest()
