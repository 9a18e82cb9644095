"""Strong entity tags and the conditional-request checks that use them."""

from __future__ import annotations

import hashlib


def strong_etag(body: bytes, version: int | None = None) -> str:
    """A strong ETag: a digest of the exact bytes, after the resource's version if it has one."""
    digest = hashlib.sha256(body).hexdigest()[:32]
    return f'"{digest}"' if version is None else f'"{version}-{digest}"'


NOT_MODIFIED: dict[int | str, dict[str, str]] = {
    304: {"description": "Not Modified: `If-None-Match` names the current representation."}
}


def _tags(header: str) -> list[str]:
    return [tag.strip() for tag in header.split(",") if tag.strip()]


def none_match(header: str | None, etag: str) -> bool:
    """True when `If-None-Match` names this representation (weak comparison, RFC 9110)."""
    if header is None:
        return False
    candidates = _tags(header)
    return "*" in candidates or any(tag.removeprefix("W/") == etag for tag in candidates)


def matches(header: str, etag: str) -> bool:
    """True when `If-Match` allows a change to this representation (strong comparison)."""
    candidates = _tags(header)
    return "*" in candidates or etag in candidates


def names_version(header: str, version: int) -> bool:
    """True when `If-Match` holds a strong tag of any representation of `version`."""
    return any(tag.startswith(f'"{version}-') for tag in _tags(header))
