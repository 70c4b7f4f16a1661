"""A command attached into an LXC container: the driver's ExecProcess."""

from __future__ import annotations

import asyncio
import contextlib
import os

from services.instance.drivers.base import ExecProcess
from services.instance.drivers.errors import DriverError


class LxcProcess(ExecProcess):
    """An attached process: our child on the host, waited for in a thread."""

    def __init__(self, pid: int, instance: str) -> None:
        self.pid = pid
        self._instance = instance
        self._code: int | None = None

    async def wait(self) -> int:
        if self._code is None:
            self._code = await asyncio.to_thread(self._wait)
        return self._code

    def _wait(self) -> int:
        try:
            _, status = os.waitpid(self.pid, 0)
        except ChildProcessError as exc:
            raise DriverError(
                f"exec in {self._instance}: the process was reaped elsewhere"
            ) from exc
        # A signal death reads as 128+N, as in a shell.
        if os.WIFSIGNALED(status):
            return 128 + os.WTERMSIG(status)
        return os.waitstatus_to_exitcode(status)

    def signal(self, signum: int) -> None:
        if self._code is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)
