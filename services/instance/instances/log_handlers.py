"""``/1.0/instances/<name>/logs`` and the console log, on the node holding the instance.

- logs (``INSTANCE_LOGS``, :class:`~schemas.instances.LogQuery`): ``file`` None lists the log
  files (sorted names, as LXD lists them: the driver's logs that exist, ``lxc.log``, without
  the console log, plus the ``exec_<operation>.stdout|stderr`` records of exec's
  record-output in ``host.state_dir``); ``file="console"`` is the console log; any other name
  gives :class:`~schemas.instances.LogContent` (the last :data:`LOG_TAIL_BYTES`);
- delete (``INSTANCE_LOG_DELETE``, :class:`~schemas.instances.LogDelete`): only the exec
  records may go (LXD refuses to delete ``lxc.log``); ``None``.

An unknown name, or one with a ``/``, is NotFound. Reading a log file and deleting one are
recorded (``instance-log-retrieved`` / ``-deleted`` with the file name), as LXD emits them.
"""

from __future__ import annotations

import asyncio
import os
import re
import stat
from pathlib import Path
from typing import Any

from schemas import events, subjects
from schemas import instances as wire
from schemas.errors import BadRequest, NotFound
from schemas.messages import RequestMeta
from services.common.endpoints import EndpointGroup
from services.instance.instances.host import HostInstance, Locate, Record

#: What one reply carries at most: the tail of a log, under NATS's default 1 MiB payload.
LOG_TAIL_BYTES = 960 * 1024
CONSOLE = "console"
CONSOLE_LOG = "console.log"
#: exec's record-output files (see services.instance.exec_session.log_name).
EXEC_LOG = re.compile(r"^exec_[A-Za-z0-9_-]+\.(stdout|stderr)$")


def valid_name(name: str) -> bool:
    return bool(name) and "/" not in name and "\0" not in name and name not in (".", "..")


def read_tail(path: Path, limit: int) -> bytes:
    """The last ``limit`` bytes of a file as UTF-8 (the bus carries text: a byte that is not
    UTF-8 becomes U+FFFD), never more than ``limit`` bytes; empty when it is missing."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return b""
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotFound(f"log file {path.name} not found")
        os.lseek(fd, max(0, st.st_size - limit), os.SEEK_SET)
        parts, left = [], limit
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            parts.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    return as_text(b"".join(parts), limit, cut=st.st_size > limit)


def as_text(data: bytes, limit: int, cut: bool = False) -> bytes:
    """``data`` made valid UTF-8 and cut to at most ``limit`` bytes, keeping its end (``cut``:
    its start was cut off, maybe inside a character, whose remains are dropped)."""
    for _ in range(3 if cut else 0):
        if data and 0x80 <= data[0] < 0xC0:
            data = data[1:]
    text = data.decode("utf-8", "replace").encode()
    if len(text) > limit:
        text = text[-limit:].decode("utf-8", "ignore").encode()
    return text


def _exec_logs(state_dir: Path) -> list[str]:
    try:
        entries = list(os.scandir(state_dir))
    except FileNotFoundError:
        return []
    return [
        entry.name
        for entry in entries
        if EXEC_LOG.match(entry.name) and entry.is_file(follow_symlinks=False)
    ]


def _is_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


class LogHandlers:
    """The log endpoints of this node."""

    def __init__(
        self, locate: Locate, record: Record, node: str, *, max_bytes: int = LOG_TAIL_BYTES
    ) -> None:
        self.locate = locate
        self.record = record
        self.node = node
        self.max_bytes = max_bytes

    def register(self, group: EndpointGroup) -> None:
        group.add(
            subjects.instance_node(subjects.INSTANCE_LOGS, self.node),
            wire.LogQuery,
            self.logs,
            concurrent=True,
        )
        group.add(
            subjects.instance_node(subjects.INSTANCE_LOG_DELETE, self.node),
            wire.LogDelete,
            self.delete,
            concurrent=True,
        )

    async def logs(self, body: wire.LogQuery, meta: RequestMeta) -> tuple[Any, int]:
        if body.file is not None and not valid_name(body.file):
            raise NotFound(f"log file {body.file!r} not found")
        host = await self.locate(meta, body.name)
        if body.file is None:
            return await self.names(host), 0
        path = await self._path(host, body.file)
        content = await asyncio.to_thread(read_tail, path, self.max_bytes)
        seq = 0
        if body.file != CONSOLE:
            seq = await self.record(host, events.INSTANCE_LOG_RETRIEVED, {"file": body.file}, meta)
        return wire.LogContent(content=content).model_dump(), seq

    async def delete(self, body: wire.LogDelete, meta: RequestMeta) -> tuple[Any, int]:
        if not valid_name(body.file):
            raise NotFound(f"log file {body.file!r} not found")
        host = await self.locate(meta, body.name)
        if not EXEC_LOG.match(body.file):
            if body.file == CONSOLE or body.file in await self._driver_logs(host):
                raise BadRequest(f"{body.file} may not be deleted")
            raise NotFound(f"log file {body.file!r} not found")
        path = host.state_dir / body.file
        try:
            await asyncio.to_thread(_unlink_file, path)
        except FileNotFoundError:
            raise NotFound(f"log file {body.file!r} not found") from None
        seq = await self.record(host, events.INSTANCE_LOG_DELETED, {"file": body.file}, meta)
        return None, seq

    async def names(self, host: HostInstance) -> list[str]:
        logs = await self._driver_logs(host)

        def existing() -> list[str]:
            names = [name for name, path in logs.items() if name != CONSOLE_LOG and _is_file(path)]
            return names + _exec_logs(host.state_dir)

        return sorted(set(await asyncio.to_thread(existing)))

    async def _driver_logs(self, host: HostInstance) -> dict[str, Path]:
        return await host.driver.log_files(host.host_name)

    async def _path(self, host: HostInstance, name: str) -> Path:
        if EXEC_LOG.match(name):
            path = host.state_dir / name
            if not await asyncio.to_thread(_is_file, path):
                raise NotFound(f"log file {name!r} not found")
            return path
        logs = await self._driver_logs(host)
        if name == CONSOLE:
            if CONSOLE_LOG not in logs:
                raise NotFound("this instance has no console log")
            return logs[CONSOLE_LOG]  # missing until the instance first wrote to it: empty
        if name not in logs or not await asyncio.to_thread(_is_file, logs[name]):
            raise NotFound(f"log file {name!r} not found")
        return logs[name]


def _unlink_file(path: Path) -> None:
    if not stat.S_ISREG(os.lstat(path).st_mode):
        raise NotFound(f"log file {path.name!r} not found")
    os.unlink(path)
