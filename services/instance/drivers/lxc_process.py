"""A command attached into an LXC container: the driver's ExecProcess."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable

from services.instance.drivers.base import ExecProcess
from services.instance.drivers.errors import DriverError


class LxcProcess(ExecProcess):
    """An attached process on the host: our child, or the attach helper's.

    Its end is awaited on a pidfd in the event loop, never in a worker thread: a thread per
    running command (an idle interactive shell holds one for hours) would soon exhaust the
    pool every other host call of the service needs.
    """

    def __init__(
        self,
        pid: int,
        instance: str,
        reported: Callable[[int], Awaitable[int]] | None = None,
    ) -> None:
        self.pid = pid
        self._instance = instance
        #: Set when another process (the attach helper) is the parent: it reports the end.
        self._reported = reported
        self._code: int | None = None
        self._waiting: asyncio.Future[int] | None = None

    async def wait(self) -> int:
        if self._code is not None:
            return self._code
        if self._waiting is None:
            self._waiting = asyncio.ensure_future(self._wait())
        self._code = await asyncio.shield(self._waiting)
        return self._code

    async def _wait(self) -> int:
        if self._reported is not None:
            return await self._reported(self.pid)
        loop = asyncio.get_running_loop()
        try:
            pidfd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            pidfd = None  # gone already: a zombie to reap, or reaped elsewhere
        if pidfd is not None:
            ended = loop.create_future()
            loop.add_reader(pidfd, lambda: ended.done() or ended.set_result(None))
            try:
                await ended
            finally:
                loop.remove_reader(pidfd)
                os.close(pidfd)
        return self._reap()

    def _reap(self) -> int:
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
