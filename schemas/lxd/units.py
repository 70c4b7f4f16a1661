"""LXD's byte sizes (``limits.memory``, ``limits.disk``, ...): a number and an optional unit,
decimal (``kB``, ``MB``, ...) or binary (``KiB``, ``MiB``, ...)."""

from __future__ import annotations

import re

UNITS = {
    "": 1,
    "B": 1,
    "kB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "PB": 10**15,
    "EB": 10**18,
    "KiB": 2**10,
    "MiB": 2**20,
    "GiB": 2**30,
    "TiB": 2**40,
    "PiB": 2**50,
    "EiB": 2**60,
}
_SIZE = re.compile(r"^\s*(\d+)\s*([A-Za-z]*)\s*$")


def parse_size(value: str) -> int | None:
    """Bytes of an LXD size (``64MB`` is 64000000, ``1GiB`` 2**30); None if it is not one."""
    match = _SIZE.match(value)
    if match is None or match.group(2) not in UNITS:
        return None
    return int(match.group(1)) * UNITS[match.group(2)]
