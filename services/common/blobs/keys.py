"""Blob keys: the only names a blob store accepts, checked before any driver sees them.

A key is one or more ``/``-separated segments of letters, digits, ``.``, ``_`` and ``-`` that
do not start with a dot (``images/<sha256>``, ``backups/<project>/<name>.tar.gz``). That rules
out ``..``, absolute paths and empty segments everywhere, and keeps dot-names free for the
drivers' own temporary objects, which therefore never show up in a listing.
"""

from __future__ import annotations

import re

from schemas.errors import BadRequest

MAX_KEY_LENGTH = 1024
# 200, not 255: the local driver's temporary names add about 40 characters to a segment.
_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,199}")


def check_key(key: object) -> str:
    """Return ``key`` if it is a valid blob key; raise BadRequest saying why otherwise."""
    if not isinstance(key, str) or not key:
        raise BadRequest("blob key must be a non-empty string")
    if len(key) > MAX_KEY_LENGTH:
        raise BadRequest(f"blob key longer than {MAX_KEY_LENGTH} characters")
    for segment in key.split("/"):
        if not _SEGMENT.fullmatch(segment):
            raise BadRequest(f"invalid blob key {key!r}: bad segment {segment!r}")
    return key


def check_prefix(prefix: object) -> str:
    """Return ``prefix`` if it can start a valid key ("" and a trailing "/" allowed)."""
    if not isinstance(prefix, str):
        raise BadRequest("blob prefix must be a string")
    if prefix:
        *whole, last = prefix.split("/")
        # Every complete segment must be valid; the last one may be partial or empty.
        if last:
            whole.append(last)
        check_key("/".join(whole))
    return prefix
