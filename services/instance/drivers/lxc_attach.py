"""The LXC driver's side of the attach helper (see lxc_attach_server): start it, send it
attach requests, and hand each attached command's exit code to whoever awaits it.

Blocking calls (``attach``) are made from the driver's worker threads; a reader thread takes
the helper's messages. If the helper cannot be started or dies, :meth:`attach` raises
:class:`AttachHelperGone` and the driver attaches in-process instead, so exec keeps working.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import itertools
import json
import logging
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SERVER = Path(__file__).with_name("lxc_attach_server.py")
_MAX_MESSAGE = 1 << 20
#: An attach that is not answered in this long means the helper is stuck: give up on it.
ATTACH_TIMEOUT = 30.0


class AttachHelperGone(Exception):
    """The helper is not running (it died, or could not start)."""


class AttachRefused(Exception):
    """The container is frozen or not running (the helper's word: ``frozen``, ...)."""


class _Exit:
    """One attached command's end: its code once known, and who waits for it."""

    def __init__(self) -> None:
        self.code: int | None = None
        self.future: asyncio.Future[int] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None


def _resolve(future: asyncio.Future[int], code: int) -> None:
    if not future.done():
        future.set_result(code)


class AttachHelper:
    """One helper process per driver, started on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._ids = itertools.count(1)
        self._replies: dict[int, tuple[threading.Event, list[dict[str, Any]]]] = {}
        self._exits: dict[int, _Exit] = {}

    # -- the process -----------------------------------------------------------------------

    def _ensure(self) -> socket.socket:
        with self._lock:
            if self._sock is not None and self._proc is not None and self._proc.poll() is None:
                return self._sock
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                self._proc = subprocess.Popen(
                    # -P: the script's own directory (the driver's lxc.py) must not shadow
                    # python-lxc.
                    [sys.executable, "-P", str(SERVER), str(theirs.fileno())],
                    pass_fds=(theirs.fileno(),),
                    stdin=subprocess.DEVNULL,
                    close_fds=True,
                )
            except OSError as exc:
                ours.close()
                raise AttachHelperGone(f"cannot start the attach helper: {exc}") from exc
            finally:
                theirs.close()
            self._sock = ours
            threading.Thread(target=self._read, args=(ours,), daemon=True).start()
            return ours

    def _read(self, sock: socket.socket) -> None:
        while True:
            try:
                data = sock.recv(_MAX_MESSAGE)
            except OSError:
                data = b""
            if not data:
                self._gone(sock)
                return
            message = json.loads(data)
            if "exit" in message:
                self._deliver(int(message["exit"]), int(message["code"]))
                continue
            waiter = self._replies.pop(int(message.get("id") or 0), None)
            if waiter is not None:
                waiter[1].append(message)
                waiter[0].set()

    def _gone(self, sock: socket.socket) -> None:
        """The helper died: fail the requests in flight (its commands' ends are unknown)."""
        with self._lock:
            if self._sock is sock:
                self._sock = None
        for event, box in list(self._replies.values()):
            box.append({"error": "the attach helper died"})
            event.set()
        self._replies.clear()
        for pid, exit_ in list(self._exits.items()):
            if exit_.code is None:
                log.warning("attach helper died: exit code of command %d unknown", pid)
                self._deliver(pid, -1)

    def close(self) -> None:
        with self._lock:
            sock, self._sock = self._sock, None
            proc, self._proc = self._proc, None
        if sock is not None:
            sock.close()
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)

    # -- requests --------------------------------------------------------------------------

    def _deliver(self, pid: int, code: int) -> None:
        with self._lock:
            exit_ = self._exits.setdefault(pid, _Exit())
            exit_.code = code
            future, loop = exit_.future, exit_.loop
        if future is not None and loop is not None:
            loop.call_soon_threadsafe(_resolve, future, code)

    def attach(self, request: dict[str, Any], fds: tuple[int, ...]) -> int:
        """Attach a command (blocking; from a worker thread); its host pid. ``fds``: stdin,
        stdout, stderr and optionally a gate (the helper's ``exec_when_opened``)."""
        sock = self._ensure()
        request_id = next(self._ids)
        event, box = threading.Event(), []
        self._replies[request_id] = (event, box)
        payload = json.dumps({**request, "id": request_id}).encode()
        rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())]
        try:
            sock.sendmsg([payload], rights)
        except OSError as exc:
            self._replies.pop(request_id, None)
            raise AttachHelperGone(f"the attach helper is gone: {exc}") from exc
        if not event.wait(ATTACH_TIMEOUT):
            self._replies.pop(request_id, None)
            raise AttachHelperGone("the attach helper did not answer")
        reply = box[0]
        if "refused" in reply:
            raise AttachRefused(str(reply["refused"]))
        if "pid" not in reply:
            raise RuntimeError(str(reply.get("error", "lxc attach failed")))
        return int(reply["pid"])

    async def exited(self, pid: int) -> int:
        """Wait for an attached command's end; its exit code (-1 if the helper died)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            exit_ = self._exits.setdefault(pid, _Exit())
            if exit_.code is None and exit_.future is None:
                exit_.loop, exit_.future = loop, loop.create_future()
            future, code = exit_.future, exit_.code
        try:
            return code if code is not None else await asyncio.shield(future)  # type: ignore[arg-type]
        finally:
            with self._lock:
                if self._exits.get(pid) is exit_ and exit_.code is not None:
                    del self._exits[pid]
