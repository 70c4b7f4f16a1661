"""Driver-level errors: backend failures translated at the driver boundary.

Services only ever see schemas.errors classes (or DriverError, which derives from WarrenError):
nothing from python-lxc or the host leaks out of a driver.
"""

from __future__ import annotations

from schemas.errors import ErrorCode, WarrenError


class DriverError(WarrenError):
    """The host backend failed to do what was asked (an internal error, code 500)."""

    code = ErrorCode.INTERNAL

    def __init__(self, message: str, detail: str | None = None) -> None:
        # The backend's own words (e.g. the tail of the LXC log) help whoever reads the error.
        super().__init__(f"{message}: {detail}" if detail else message)
        self.detail = detail
