"""``POST /1.0/instances/<name>/exec`` and the operation websockets its client connects.

The node holding the instance owns the exec operation; its metadata carries one secret per fd.
A client opens ``/1.0/operations/<id>/websocket?secret=<s>`` once per fd, on any gateway, and
the gateway bridges that websocket to the node over NATS as :mod:`schemas.exec_io` says:

- ``0``: the client's binary messages go to the node as a byte stream; an empty message, a
  text message (LXD's "message barrier") or the socket's close ends it. Interactive, the same
  socket also carries the terminal's output (stream ``1``) back;
- ``1``, ``2``: the node's byte streams become binary messages; their end becomes LXD's
  barrier (an empty text message) and the socket closes;
- ``control``: each JSON message is a request to the node.

Once a socket is bridged (for output, once its receiver listens) the node hears an
``Attach``. Sockets still open when the operation ends are closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from aiohttp import WSMsgType, web
from pydantic import ValidationError

from gateway import context
from gateway.routes.instances import node_command, operation_meta, operation_reply, route
from gateway.state import GatewayState, state
from schemas import exec_io, subjects
from schemas.bytestream import StreamReceiver, send_stream
from schemas.errors import BadRequest, Forbidden, NotFound, Unavailable, WarrenError
from schemas.exec_io import Attach, Control
from schemas.instances import ExecStart
from schemas.lxd.operation import is_final
from schemas.messages import Reply, RequestMeta

log = logging.getLogger(__name__)

EXTENSIONS: tuple[str, ...] = (
    "container_exec_recording",  # record-output (without websockets): passed to the node
    "container_exec_signal_handling",  # signals over the control socket
    "container_exec_user_group_cwd",  # user, group and cwd of the command
)

routes = web.RouteTableDef()
#: Output still in flight when the operation ends gets this long to reach the client.
OUTPUT_GRACE = 5.0
#: Largest message a client may send (stdin arrives in small pieces; this bounds memory).
MAX_MESSAGE = 16 * 1024 * 1024
ATTACH_TIMEOUT = 10.0


@route(routes, "POST", "/{name}/exec")
async def exec_instance(request: web.Request) -> web.Response:
    data = await context.json_body(request)
    body = context.validate(ExecStart, {**data, "name": request.match_info["name"]})
    reply = await node_command(request, subjects.INSTANCE_EXEC, body, operation_meta(request))
    return await operation_reply(request, reply)


# -- the websocket endpoint ---------------------------------------------------------------


async def _operation(st: GatewayState, op_id: str) -> dict[str, Any]:
    """The operation; one this replica has not read yet is looked for up to the log's end."""
    await st.reader.wait_ready()
    record = st.operations.get(op_id)
    if record is None:
        try:
            info = await st.bus.js.stream_info(subjects.EVENTS_STREAM)
        except Exception as exc:
            raise Unavailable(f"the event log is not readable: {exc}") from exc
        await st.reader.wait_for(int(info.state.last_seq))
        record = st.operations.get(op_id)
    if record is None:
        raise NotFound("Operation not found")
    return record.op


def _fd_of(secrets: dict[str, str], secret: str) -> str | None:
    for fd, expected in secrets.items():
        if secret and hmac.compare_digest(expected.encode(), secret.encode()):
            return fd
    return None


@routes.get("/1.0/operations/{id}/websocket")
async def operation_websocket(request: web.Request) -> web.StreamResponse:
    st = state(request)
    op = await _operation(st, request.match_info["id"])
    secrets = exec_io.secrets_of(op.get("metadata"))
    fd = _fd_of(secrets, request.query.get("secret", ""))
    if fd is None:
        raise Forbidden("not authorized")
    if is_final(int(op.get("status_code", 0))):
        raise BadRequest("Only running operations can be connected")
    bridge = ExecBridge(st, str(op["id"]), fd, "1" not in secrets, context.meta(request))
    ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE, autoping=True)
    await ws.prepare(request)
    try:
        await bridge.run(ws)
    except WarrenError as exc:  # the node refused the attach, say
        log.warning("exec websocket %s of operation %s: %s", fd, bridge.op_id, exc)
    except Exception:
        log.exception("exec websocket %s of operation %s failed", fd, bridge.op_id)
    finally:
        await ws.close()
    return ws


class ExecBridge:
    """One client websocket of an exec operation, bridged to the node."""

    def __init__(
        self, st: GatewayState, op_id: str, fd: str, interactive: bool, meta: RequestMeta
    ) -> None:
        self.st = st
        self.op_id = op_id
        self.fd = fd
        self.interactive = interactive
        self.meta = meta.model_copy(update={"correlation_id": op_id})
        #: Set when the client's socket closed (rather than ending its input with a barrier).
        self.client_gone = False

    async def run(self, ws: web.WebSocketResponse) -> None:
        if self.fd == "control":
            work, grace = self._control(ws), 0.0
        elif self.fd == "0" and self.interactive:
            work, grace = self._terminal(ws), OUTPUT_GRACE
        elif self.fd == "0":
            work, grace = self._stdin(ws), 0.0
        else:
            work, grace = self._output(ws, self.fd), OUTPUT_GRACE
        await self._until_operation_ends(work, grace)

    async def _until_operation_ends(self, work: Coroutine[Any, Any, None], grace: float) -> None:
        """Run ``work``; stop it ``grace`` seconds after the operation ended, if still on."""
        task = asyncio.create_task(work)
        ended = asyncio.create_task(self.st.operations.wait_final(self.op_id, None))
        try:
            await asyncio.wait({task, ended}, return_when=asyncio.FIRST_COMPLETED)
            if not task.done():
                await asyncio.wait({task}, timeout=grace)
        finally:
            for pending in (task, ended):
                pending.cancel()
            for pending in (task, ended):
                with contextlib.suppress(asyncio.CancelledError):
                    await pending
        failure = None if task.cancelled() else task.exception()
        if failure is not None:
            raise failure

    async def _attach(self, fd: str) -> None:
        await self.st.bus.request(
            subjects.exec_attach(self.op_id), Attach(fd=fd).model_dump(), self.meta, ATTACH_TIMEOUT
        )

    # -- fds ------------------------------------------------------------------------------

    async def _output(self, ws: web.WebSocketResponse, fd: str) -> None:
        """Stream ``1`` or ``2`` to the client; the client's messages are ignored."""
        rx = await self._receiver(fd)
        try:
            await self._attach(fd)
            relay = asyncio.create_task(self._relay(rx, ws))
            watch = asyncio.create_task(self._drain(ws))
            await asyncio.wait({relay, watch}, return_when=asyncio.FIRST_COMPLETED)
            await self._stop_relay(relay, watch, rx)
        finally:
            await rx.close()

    async def _stdin(self, ws: web.WebSocketResponse) -> None:
        """The client's input to the node; then wait for the client to go."""
        await self._attach("0")
        await self._send_input(ws)
        if not self.client_gone:
            await self._drain(ws)

    async def _terminal(self, ws: web.WebSocketResponse) -> None:
        """Interactive: input to stream ``0``, the terminal's output (stream ``1``) back."""
        rx = await self._receiver("1")
        try:
            await self._attach("0")
            relay = asyncio.create_task(self._relay(rx, ws))
            typing = asyncio.create_task(self._typing(ws))
            await asyncio.wait({relay, typing}, return_when=asyncio.FIRST_COMPLETED)
            await self._stop_relay(relay, typing, rx)
        finally:
            await rx.close()

    async def _typing(self, ws: web.WebSocketResponse) -> None:
        await self._send_input(ws)
        if not self.client_gone:
            await self._drain(ws)

    async def _control(self, ws: web.WebSocketResponse) -> None:
        await self._attach("control")
        subject = subjects.exec_io(self.op_id, "control")
        async for msg in ws:
            if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                break
            try:
                data = json.loads(msg.data)
                if isinstance(data, dict):  # Go clients send unset fields as null ("args")
                    data = {key: value for key, value in data.items() if value is not None}
                control = Control.model_validate(data)
            except (ValueError, ValidationError) as exc:
                log.info("ignoring a malformed control message of %s: %s", self.op_id, exc)
                continue
            try:
                await self.st.bus.request(subject, control.model_dump(), self.meta)
            except WarrenError as exc:
                log.info("control message %s of %s: %s", control.command, self.op_id, exc)

    # -- pieces ---------------------------------------------------------------------------

    async def _receiver(self, fd: str) -> StreamReceiver:
        subject = subjects.exec_io(self.op_id, fd)
        return await StreamReceiver(self.st.bus.nc, subject, exec_io.STDIN_IDLE_TIMEOUT).start()

    async def _relay(self, rx: StreamReceiver, ws: web.WebSocketResponse) -> None:
        """The node's stream to the client, then LXD's end of stream (an empty text frame)."""
        async for chunk in rx:
            await ws.send_bytes(chunk)
        await ws.send_str("")
        await rx.finish(Reply())

    async def _stop_relay(
        self, relay: asyncio.Task[None], other: asyncio.Task[None], rx: StreamReceiver
    ) -> None:
        """The relay ended (done) or the client went (the node is told on its next frame)."""
        for task in (relay, other):
            task.cancel()
        for task in (relay, other):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if relay.cancelled() or relay.exception() is not None:
            with contextlib.suppress(Exception):
                await rx.fail(Unavailable("the client of the exec stream went away"))

    async def _client_input(self, ws: web.WebSocketResponse) -> AsyncIterator[bytes]:
        async for msg in ws:
            if msg.type is WSMsgType.BINARY and msg.data:
                yield msg.data
            elif msg.type in (WSMsgType.BINARY, WSMsgType.TEXT):
                return  # an empty message or LXD's barrier: the end of the input
            else:
                break
        self.client_gone = True

    async def _send_input(self, ws: web.WebSocketResponse) -> None:
        subject = subjects.exec_io(self.op_id, "0")
        try:
            reply = await send_stream(
                self.st.bus.nc,
                subject,
                self._client_input(ws),
                chunk_timeout=exec_io.STDIN_IDLE_TIMEOUT,
                final_timeout=exec_io.STDIN_IDLE_TIMEOUT,
            )
            reply.unwrap()
        except WarrenError as exc:
            # The command no longer reads its input (it ended, or closed it): nothing to do.
            log.debug("stdin of %s ended early: %s", self.op_id, exc)

    async def _drain(self, ws: web.WebSocketResponse) -> None:
        """Read (and drop) what the client sends until it closes its socket."""
        async for _msg in ws:
            pass
        self.client_gone = True
