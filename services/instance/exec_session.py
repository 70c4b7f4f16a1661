"""One exec operation on the node: the command, its fds, and their bytes over NATS.

The protocol with the gateway is :mod:`schemas.exec_io`. The caller (the instance command
handler) makes the session, records the operation with its metadata, and runs
:meth:`ExecSession.run` as the operation's work::

    session = ExecSession(nc, host, request, operation_id)   # BadRequest for a bad request
    await session.prepare()   # listens for attaches, control and stdin before anyone knows
    session.begin()           # spawns the command behind its gate (optional: run() does too)
    try:
        op = await operations.start(
            session.run,
            description="Executing command",
            op_class=session.op_class,           # "websocket" or "task" (LXD's classes)
            metadata=session.metadata(),         # {"fds": {...}, ...} or {}
            resources={"instances": [f"/1.0/instances/{host.name}"]},
            meta=meta,
            project=meta.project,
            operation_id=operation_id,
        )
    except BaseException:
        await session.close()
        raise

``run`` returns ``{"return": code}`` (plus ``"output"`` with record-output) once the output
streams have ended; it always releases the subscriptions, fds and the child (a cancelled
operation kills the command).

With ``wait-for-websocket`` the command starts once the gateway has attached fds ``0``, ``1``
and ``2`` (interactive: ``0``); ``control`` may come at any time, as in LXD (pylxd never opens
it). The command is spawned gated (``ExecRequest.gate``) as soon as :meth:`ExecSession.begin`
is called, so the attach into the container overlaps the client connecting its websockets;
the gate opens once they are all attached. Without it, the command starts at once, stdin
is /dev/null and output goes to ``exec_<operation>.stdout`` / ``.stderr`` in
``host.state_dir`` with record-output (served by the logs handler), or nowhere.

The pieces: :mod:`~services.instance.exec_env` (the environment LXD gives a command),
:mod:`~services.instance.exec_fds` (non-blocking fds on the loop),
:mod:`~services.instance.exec_pty` (the terminal of an interactive exec) and
:mod:`~services.instance.exec_streams` (the NATS side).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
from pathlib import Path
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg

from schemas import subjects
from schemas.bytestream import StreamReceiver
from schemas.errors import BadRequest, Conflict, Unavailable, WarrenError
from schemas.exec_io import STDIN_IDLE_TIMEOUT, Attach, Control, fds_for
from schemas.instances import ExecStart
from schemas.messages import Reply
from services.instance.drivers.base import ExecProcess
from services.instance.drivers.spec import GATE_OPEN, ExecRequest
from services.instance.exec_env import (
    DEFAULT_PATH,
    check_request,
    command_request,
    exec_environment,
    log_name,
    passwd_entry,
)
from services.instance.exec_fds import window_bytes
from services.instance.exec_pty import open_terminal, resize
from services.instance.exec_streams import (
    end_streams,
    message_body,
    relay_stdin,
    respond,
    send_output,
)
from services.instance.instances.host import HostInstance

# What the callers import from here (the pieces live in the modules named above).
__all__ = [
    "DEFAULT_PATH",
    "ExecSession",
    "exec_environment",
    "log_name",
    "passwd_entry",
    "window_bytes",
]

log = logging.getLogger(__name__)

#: How long the gateway has to attach the fds before the operation fails.
ATTACH_TIMEOUT = 60.0
#: After a cancel kills the command: how long its output streams get to end.
CANCEL_DRAIN = 2.0


class ExecSession:
    """One ``POST /1.0/instances/<name>/exec`` on the node holding the instance."""

    def __init__(
        self, nc: Client, host: HostInstance, request: ExecStart, operation_id: str
    ) -> None:
        self.nc = nc
        self.host = host
        self.request = request
        try:
            subjects.exec_attach(operation_id)  # a valid subject token
        except ValueError as exc:
            raise BadRequest(f"invalid operation id {operation_id!r}") from exc
        self.operation_id = operation_id
        self.interactive = request.interactive
        self.websockets = request.wait_for_websocket
        self.record_output = request.record_output and not self.websockets
        self.secrets: dict[str, str] = (
            {fd: secrets.token_hex(32) for fd in fds_for(self.interactive)}
            if self.websockets
            else {}
        )
        self.environment = exec_environment(host.config, request.environment, request.user)
        check_request(request, self.environment)  # before any operation exists
        self._window = (
            (request.width, request.height) if request.width > 0 and request.height > 0 else None
        )
        self._attached: set[str] = set()
        self._needed = {fd for fd in self.secrets if fd != "control"}
        self._all_attached = asyncio.Event()
        self._subs: list[Any] = []
        self._stdin: StreamReceiver | None = None
        self._process: ExecProcess | None = None
        self._waiter: asyncio.Task[int] | None = None
        self._pty: int | None = None
        self._spawning: asyncio.Task[None] | None = None
        self._gate: int | None = None
        self._stdin_fd: int | None = None
        self._outputs: dict[str, int] = {}
        self._fds: set[int] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    # -- what the caller needs -------------------------------------------------------------

    @property
    def op_class(self) -> str:
        return "websocket" if self.websockets else "task"

    def metadata(self) -> dict[str, Any]:
        """The operation's initial metadata: LXD's fds (one secret each) and the command."""
        if not self.websockets:
            return {}
        return {
            "fds": dict(self.secrets),
            "command": list(self.request.command),
            "environment": dict(self.environment),
            "interactive": self.interactive,
        }

    def log_path(self, fd: str) -> Path:
        return self.host.state_dir / log_name(self.operation_id, fd)

    async def prepare(self) -> None:
        """Listen for the gateway's attaches, control messages and stdin (before the caller
        hands the operation to the client)."""
        if not self.websockets or self._subs:
            return
        op = self.operation_id
        try:
            self._subs.append(await self.nc.subscribe(subjects.exec_attach(op), cb=self._on_attach))
            self._subs.append(
                await self.nc.subscribe(subjects.exec_io(op, "control"), cb=self._on_control)
            )
            self._stdin = await StreamReceiver(
                self.nc, subjects.exec_io(op, "0"), STDIN_IDLE_TIMEOUT
            ).start()
        except BaseException:
            await self.close()
            raise

    def begin(self) -> None:
        """Start spawning the command, gated, while the client connects (idempotent; only
        with websockets). Call it as early as possible; :meth:`run` calls it too."""
        if self.websockets and self._spawning is None and not self._closed:
            self._spawning = self._task(self._spawn_gated())

    async def run(self, op: Any = None) -> dict[str, Any]:
        """The operation's work: run the command to its end; ``{"return": code, ...}``."""
        try:
            if not self.websockets:
                return await self._run_detached()
            await self.prepare()
            self.begin()
            try:
                await self._until_attached()
            except BaseException as exc:
                await self._end_streams()
                if self._stdin is not None and isinstance(exc, WarrenError):
                    await self._stdin.fail(exc)
                raise
            return await self._run_attached()
        finally:
            await self.close()

    async def close(self) -> None:
        """Release everything (idempotent): relays, the child (killed if still running),
        subscriptions and fds."""
        if self._closed:
            return
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        await self._kill()
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self._subs.clear()
        if self._stdin is not None:
            # Input still on its way is refused (a pending end frame answered), so the
            # gateway's sender is not left waiting for an answer that would never come.
            with contextlib.suppress(Exception):
                await self._stdin.fail(Unavailable("the command has ended"))
                for _ in range(3):
                    await asyncio.sleep(0)
            await self._stdin.close()
        for fd in list(self._fds):
            self._close_fd(fd)

    # -- running ---------------------------------------------------------------------------

    async def _exec_request(self, **fds: int | None) -> ExecRequest:
        return await command_request(self.host, self.request, self.environment, **fds)

    async def _spawn(self, request: ExecRequest) -> ExecProcess:
        try:
            process = await self.host.driver.spawn(self.host.host_name, request)
        except BadRequest as exc:
            # "instance w-<hex> is frozen": the client knows the instance by its name.
            raise BadRequest(exc.message.replace(self.host.host_name, self.host.name)) from exc
        self._process = process
        self._waiter = asyncio.ensure_future(process.wait())
        return process

    async def _run_detached(self) -> dict[str, Any]:
        out = err = None
        if self.record_output:
            out, err = await asyncio.to_thread(self._open_logs)
        try:
            await self._spawn(await self._exec_request(stdin=None, stdout=out, stderr=err))
        finally:
            for fd in (out, err):
                if fd is not None:
                    self._close_fd(fd)
        assert self._waiter is not None
        code = await self._waiter
        result: dict[str, Any] = {"return": code}
        if self.record_output:
            base = f"/1.0/instances/{self.host.name}/logs"
            result["output"] = {fd: f"{base}/{log_name(self.operation_id, fd)}" for fd in "12"}
        return result

    def _open_logs(self) -> tuple[int, int]:
        self.host.state_dir.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW
        out = self._keep(os.open(self.log_path("1"), flags, 0o640))
        err = self._keep(os.open(self.log_path("2"), flags, 0o640))
        return out, err

    async def _spawn_gated(self) -> None:
        """Make the command's fds and spawn it behind a gate (``_open_gate`` lets it run)."""
        gate_r, self._gate = (self._keep(fd) for fd in os.pipe())
        if self.interactive:
            pty = await open_terminal(self.host)
            main, secondary = self._keep(pty.main), self._keep(pty.secondary)
            self._pty = main
            if self._window is not None:
                resize(main, *self._window)
            os.set_blocking(main, False)
            request = await self._exec_request(stdin=secondary, stdout=secondary, stderr=secondary)
            self._stdin_fd, self._outputs = main, {"1": main}
            parent_ends = [secondary, gate_r]
        else:
            in_r, in_w = (self._keep(fd) for fd in os.pipe())
            out_r, out_w = (self._keep(fd) for fd in os.pipe())
            err_r, err_w = (self._keep(fd) for fd in os.pipe())
            for fd in (in_w, out_r, err_r):
                os.set_blocking(fd, False)
            request = await self._exec_request(stdin=in_r, stdout=out_w, stderr=err_w)
            self._stdin_fd, self._outputs = in_w, {"1": out_r, "2": err_r}
            parent_ends = [in_r, out_w, err_w, gate_r]
        request.gate = gate_r
        spawn = asyncio.ensure_future(self._spawn(request))
        try:
            await asyncio.shield(spawn)
        except asyncio.CancelledError:
            # The attach goes on in its thread: let it end (close() then kills the child)
            # before the fds it is handing over are closed under it.
            with contextlib.suppress(BaseException):
                await spawn
            raise
        finally:
            # The child has its copies: ours would keep the streams from ever ending.
            for fd in parent_ends:
                self._close_fd(fd)

    async def _until_attached(self) -> None:
        """Wait for the gateway's attaches; a failed spawn ends the wait at once."""
        assert self._spawning is not None
        attached = asyncio.ensure_future(self._all_attached.wait())
        try:
            await asyncio.wait(
                {attached, self._spawning},
                timeout=ATTACH_TIMEOUT,
                return_when=asyncio.FIRST_EXCEPTION,
            )
        finally:
            attached.cancel()
        spawning = self._spawning
        if spawning.done() and not spawning.cancelled() and spawning.exception() is not None:
            await spawning  # raises its failure
        if not self._all_attached.is_set():
            raise BadRequest("Timed out waiting for websockets")

    def _open_gate(self) -> None:
        gate, self._gate = self._gate, None
        if gate is not None:
            os.write(gate, GATE_OPEN)
            self._close_fd(gate)

    async def _run_attached(self) -> dict[str, Any]:
        assert self._spawning is not None
        try:
            await self._spawning
        except BaseException as exc:
            await self._end_streams()
            if self._stdin is not None and isinstance(exc, WarrenError):
                await self._stdin.fail(exc)
            raise
        self._open_gate()
        assert self._waiter is not None and self._stdin_fd is not None
        waiter = self._waiter
        sent = {name: asyncio.Event() for name in self._outputs}
        relays = [
            self._task(self._send_output(name, fd, waiter, sent[name]))
            for name, fd in self._outputs.items()
        ]
        self._task(self._relay_stdin(self._stdin_fd))
        try:
            code = await asyncio.shield(waiter)
        except asyncio.CancelledError:
            await self._kill()
            with contextlib.suppress(BaseException):
                await asyncio.wait(relays, timeout=CANCEL_DRAIN)
            raise
        # Every output stream has been taken to its end before the outcome is recorded. Its
        # end frame's answer is not waited for: the gateway relays what it holds even after
        # the operation ended (and the client waits for both).
        await asyncio.gather(*(event.wait() for event in sent.values()))
        return {"return": code}

    async def _send_output(
        self, name: str, fd: int, exited: asyncio.Future[Any], sent: asyncio.Event
    ) -> None:
        try:
            await send_output(self.nc, self.operation_id, name, fd, exited, sent)
        finally:
            if fd != self._pty:
                self._close_fd(fd)

    async def _relay_stdin(self, fd: int) -> None:
        if self._stdin is None:
            return
        await relay_stdin(self._stdin, fd, self.operation_id)
        if self.interactive:
            # The terminal's user is gone: hang up, as closing a terminal does.
            self._signal(signal.SIGHUP)
        else:
            self._close_fd(fd)  # EOF for the command

    # -- control ---------------------------------------------------------------------------

    async def _on_attach(self, msg: Msg) -> None:
        try:
            attach = message_body(Attach, msg.data)
            if attach.fd not in self.secrets:
                raise BadRequest(f"exec {self.operation_id} has no fd {attach.fd!r}")
            if attach.fd in self._attached:
                raise Conflict(f"fd {attach.fd} of exec {self.operation_id} is already attached")
            self._attached.add(attach.fd)
            if self._needed <= self._attached:
                self._all_attached.set()
            reply = Reply()
        except WarrenError as exc:
            reply = Reply.failure(exc)
        except Exception as exc:
            reply = Reply.failure(BadRequest(f"malformed attach request: {exc}"))
        await respond(msg, reply)

    async def _on_control(self, msg: Msg) -> None:
        try:
            control = message_body(Control, msg.data)
            window = control.window()
            if window is not None:
                if window[0] > 0 and window[1] > 0:
                    self._window = window
                    if self._pty is not None:
                        resize(self._pty, *window)
            elif control.command == "signal":
                if not 0 < control.signal < signal.NSIG:
                    raise BadRequest(f"invalid signal {control.signal}")
                self._signal(control.signal)
            reply = Reply()
        except WarrenError as exc:
            reply = Reply.failure(exc)
        except Exception as exc:
            reply = Reply.failure(BadRequest(f"malformed control request: {exc}"))
        await respond(msg, reply)

    def _signal(self, signum: int) -> None:
        """Signal the command; before its gate opened there is no command yet to signal."""
        if self._gate is not None:
            return
        if self._process is not None and self._waiter is not None and not self._waiter.done():
            self._process.signal(signum)

    # -- helpers ---------------------------------------------------------------------------

    async def _end_streams(self) -> None:
        """End the output streams at once (nothing will come): the client must not hang."""
        await end_streams(self.nc, self.operation_id, ("1",) if self.interactive else ("1", "2"))

    async def _kill(self) -> None:
        waiter = self._waiter
        if self._process is None or waiter is None or waiter.done():
            return
        self._process.signal(signal.SIGKILL)
        # Reap it (the wait runs in a thread); a cancelled caller does not stop this.
        with contextlib.suppress(BaseException):
            await asyncio.wait({waiter}, timeout=10)

    def _task(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _keep(self, fd: int) -> int:
        self._fds.add(fd)
        return fd

    def _close_fd(self, fd: int) -> None:
        if fd in self._fds:
            self._fds.discard(fd)
            with contextlib.suppress(OSError):
                os.close(fd)
