"""Driver-level errors: host failures (netlink, nft, dnsmasq) translated at the boundary."""

from __future__ import annotations

from schemas.errors import ErrorCode, WarrenError


class DriverError(WarrenError):
    """The host refused or failed what a network driver asked of it (code 500)."""

    code = ErrorCode.INTERNAL
