"""An exec's fds on the event loop: non-blocking reads and writes, and a terminal's size."""

from __future__ import annotations

import asyncio
import errno
import os
import struct
from collections.abc import AsyncIterator
from typing import Any

#: One read of an output fd (a frame carries at most this much).
READ_SIZE = 64 * 1024
#: Once the command has ended, how long its output may stay quiet before the stream ends
#: (a background child still holding the pipe or pty must not keep the client waiting).
EXIT_GRACE = 0.2


def window_bytes(width: int, height: int) -> bytes:
    """A ``struct winsize`` for TIOCSWINSZ (sizes clamped to what it holds)."""

    def clamp(value: int) -> int:
        return min(max(value, 0), 0xFFFF)

    return struct.pack("HHHH", clamp(height), clamp(width), 0, 0)


async def wait_fd(
    loop: asyncio.AbstractEventLoop,
    fd: int,
    *others: asyncio.Future[Any],
    write: bool = False,
    timeout: float | None = None,
) -> bool:
    """Wait until ``fd`` is readable (or writable), one of ``others`` is done, or the timeout
    passes; True when the fd is ready."""
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    if write:
        loop.add_writer(fd, wake)
    else:
        loop.add_reader(fd, wake)
    try:
        await asyncio.wait({ready, *others}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        return ready.done()
    finally:
        if write:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)
        ready.cancel()


async def read_output(
    fd: int, exited: asyncio.Future[Any], size: int = READ_SIZE
) -> AsyncIterator[bytes]:
    """Chunks of a non-blocking output fd until EOF (a pty: EIO once no secondary end is left)
    or, once ``exited`` is done, until it has been quiet for EXIT_GRACE."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            data = os.read(fd, size)
        except BlockingIOError:
            if exited.done():
                if not await wait_fd(loop, fd, timeout=EXIT_GRACE):
                    return
            else:
                await wait_fd(loop, fd, exited)
            continue
        except OSError as exc:
            if exc.errno == errno.EIO:
                return
            raise
        if not data:
            return
        yield data


async def write_all(fd: int, data: bytes) -> None:
    """Write everything to a non-blocking fd, waiting while it is full."""
    loop = asyncio.get_running_loop()
    view = memoryview(data)
    while view:
        try:
            count = os.write(fd, view)
        except BlockingIOError:
            await wait_fd(loop, fd, write=True)
            continue
        view = view[count:]
