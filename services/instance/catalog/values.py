"""Value checkers for configuration keys, failing with the messages LXD 5.0 gives.

Every checker takes the (non-empty) value and raises :class:`BadRequest` when LXD would
refuse it. Empty values are never checked: LXD treats an empty value as "unset".
"""

from __future__ import annotations

import re
from collections.abc import Callable

from schemas.errors import BadRequest

Check = Callable[[str], None]

_BOOLS = {"true", "false", "1", "0", "yes", "no", "on", "off"}
_SIZE = re.compile(r"^[0-9]+(B|kB|MB|GB|TB|PB|EB|KiB|MiB|GiB|TiB|PiB|EiB)?$")
_CPU_SET = re.compile(r"^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$")
_ALLOWANCE = re.compile(r"^([0-9]+%|[0-9]+ms/[0-9]+ms)$")
_EXPIRY = re.compile(r"^([0-9]+[MHdwmy])( +[0-9]+[MHdwmy])*$")
_CRON_ALIASES = {"@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@annually", "@yearly"}
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,\-]+$")
_COMPRESSION = {"bzip2", "gzip", "lzma", "xz", "none", "zstd"}


def any_value(value: str) -> None:
    """Free-form strings (``user.*``, ``raw.*``, ...)."""


def boolean(value: str) -> None:
    if value.lower() not in _BOOLS:
        raise BadRequest(f'Invalid value for a boolean "{value}"')


def is_true(value: str | None) -> bool:
    """LXD's reading of a boolean config value (unset or empty is false)."""
    return (value or "").lower() in {"true", "1", "yes", "on"}


def is_false(value: str | None) -> bool:
    """LXD's ``IsFalse``: the value says false explicitly (unset or empty does not)."""
    return (value or "").lower() in {"false", "0", "no", "off"}


def integer(value: str) -> None:
    if not re.fullmatch(r"[+-]?[0-9]+", value):
        raise BadRequest(f'Invalid value for an integer "{value}"')


def uint32(value: str) -> None:
    if not re.fullmatch(r"[0-9]+", value):
        raise BadRequest(
            f'Invalid value for uint32 "{value}": strconv.ParseUint: parsing "{value}": '
            "invalid syntax"
        )
    if int(value) > 0xFFFFFFFF:
        raise BadRequest(
            f'Invalid value for uint32 "{value}": strconv.ParseUint: parsing "{value}": '
            "value out of range"
        )


def priority(value: str) -> None:
    """An integer between 0 and 10."""
    integer(value)
    if not 0 <= int(value) <= 10:
        raise BadRequest(f'Invalid value for a limit "{value}". Must be between 0 and 10')


def size(value: str) -> None:
    """A byte size with LXD's unit suffixes (``512MB``, ``1GiB``, ``100``)."""
    if not _SIZE.match(value):
        raise BadRequest(f"Invalid value: {value}")


def memory(value: str) -> None:
    """``limits.memory``: a size or a percentage of the host's memory, never zero."""
    if value.endswith("%"):
        integer(value[:-1])
        return
    size(value)
    if re.fullmatch(r"0+[A-Za-z]*", value):
        raise BadRequest("Memory limit can't be 0")


def cpu(value: str) -> None:
    """``limits.cpu``: a number of CPUs, or a set/range of CPU ids."""
    if not _CPU_SET.match(value):
        raise BadRequest("Invalid CPU limit syntax")


def allowance(value: str) -> None:
    if not _ALLOWANCE.match(value):
        raise BadRequest(f"Invalid allowance: {value}")


def expiry(value: str) -> None:
    if not _EXPIRY.match(value.strip()):
        raise BadRequest("Invalid expiry expression")


def schedule(value: str) -> None:
    """A cron expression (5 fields) or an alias, several separated by commas."""
    for part in value.split(","):
        part = part.strip()
        if part in _CRON_ALIASES:
            continue
        fields = part.split()
        if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
            raise BadRequest(
                "Schedule must be of the form: <minute> <hour> <day-of-month> <month> <day-of-week>"
            )


def one_of(*choices: str) -> Check:
    """A value among ``choices``."""

    def check(value: str) -> None:
        if value not in choices:
            raise BadRequest(f'Invalid value "{value}" (not one of [{" ".join(choices)}])')

    return check


def compression(value: str) -> None:
    if value.split(" ")[0] not in _COMPRESSION:
        raise BadRequest(f'Invalid compression algorithm "{value}"')
