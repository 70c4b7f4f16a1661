"""A byte stream over core NATS with flow control, used by the gateway and the services.

Protocol (one stream = one subject, e.g. ``subjects.stream(<id>, <part>)``):

- the sender sends :class:`Frame` s as *requests*, one at a time, ``seq`` counting from 0;
- the receiver answers each data frame with an empty :class:`~schemas.messages.Reply` once the
  chunk is queued for its consumer (at most one chunk waits): the sender never runs ahead,
  so memory stays bounded on both sides and order is guaranteed;
- a frame with empty ``data`` is the end of the stream; its reply is the final answer of the
  whole transfer (a result or an error), given by the consumer when it is done;
- a frame with ``abort`` set tells the receiver the sender gave up (client gone); it is
  published without waiting for an answer;
- a receiver that hears nothing for ``idle_timeout`` seconds gives up, so an abandoned
  transfer is cleaned up; a sender whose request finds nobody (receiver died) fails at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from pydantic import BaseModel

from schemas import codec
from schemas.errors import BadRequest, Unavailable, WarrenError
from schemas.messages import Reply

log = logging.getLogger(__name__)

#: Largest chunk a frame carries (well under NATS's default 1 MiB max payload).
CHUNK_SIZE = 512 * 1024


class Frame(BaseModel):
    """One message of a stream."""

    seq: int
    data: bytes = b""
    abort: str | None = None
    #: Small string metadata the sender learnt while sending (end frame only).
    trailer: dict[str, str] | None = None


def pack_frame(frame: Frame) -> bytes:
    """msgpack of a frame with ``data`` kept binary (a JSON dump would mangle it)."""
    fields = {"seq": frame.seq, "data": frame.data, "abort": frame.abort, "trailer": frame.trailer}
    return codec.pack(fields)


class StreamAborted(Unavailable):
    """The other side of a stream went away or gave up."""


_EOF = object()


async def _request(nc: Client, subject: str, frame: Frame, timeout: float) -> Reply:
    try:
        msg = await nc.request(subject, pack_frame(frame), timeout=timeout)
    except nats.errors.NoRespondersError as exc:
        raise StreamAborted("the receiving side of the transfer went away") from exc
    except nats.errors.TimeoutError as exc:
        raise StreamAborted(f"the transfer stalled (no answer within {timeout:g}s)") from exc
    return codec.decode(Reply, msg.data)


async def send_stream(
    nc: Client,
    subject: str,
    chunks: AsyncIterable[bytes],
    *,
    chunk_timeout: float = 60.0,
    final_timeout: float = 120.0,
    trailer: dict[str, str] | None = None,
    on_end: Callable[[], None] | None = None,
) -> Reply:
    """Send ``chunks`` on ``subject``; return the receiver's final reply (not unwrapped).

    ``trailer`` rides on the end frame (e.g. a file name only known once sending began);
    ``on_end`` is called as it is sent (every chunk is answered by then).
    Errors the receiver reports mid-stream are raised. If sending stops early for any other
    reason (the source failed, the caller was cancelled) an abort frame is published.
    """
    seq = 0
    finished = False
    try:
        async for chunk in chunks:
            view = memoryview(chunk)
            for start in range(0, len(view), CHUNK_SIZE):
                piece = bytes(view[start : start + CHUNK_SIZE])
                reply = await _request(nc, subject, Frame(seq=seq, data=piece), chunk_timeout)
                reply.unwrap()
                seq += 1
        finished = True
        end = Frame(seq=seq, trailer=trailer)
        if on_end is not None:
            on_end()
        return await _request(nc, subject, end, final_timeout)
    finally:
        if not finished:
            await abort_stream(nc, subject, seq)


async def abort_stream(
    nc: Client, subject: str, seq: int = 0, reason: str = "sender gave up"
) -> None:
    """Tell the receiver of ``subject`` the stream will not come (best effort, no answer)."""
    with contextlib.suppress(Exception):
        await nc.publish(subject, pack_frame(Frame(seq=seq, abort=reason)))


class StreamReceiver:
    """The receiving end of one stream: subscribe first, then iterate, then :meth:`finish`."""

    def __init__(self, nc: Client, subject: str, idle_timeout: float = 60.0) -> None:
        self.nc = nc
        self.subject = subject
        self.idle_timeout = idle_timeout
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=1)
        self._next = 0
        self._eof_msg: Msg | None = None
        self._failed: WarrenError | None = None
        self._sub: Any = None
        #: The end frame's trailer, once the stream has ended.
        self.trailer: dict[str, str] = {}

    async def start(self) -> StreamReceiver:
        self._sub = await self.nc.subscribe(self.subject, cb=self._on_msg)
        return self

    async def _on_msg(self, msg: Msg) -> None:
        try:
            frame = codec.decode(Frame, msg.data)
        except Exception:
            await self._answer(msg, Reply.failure(BadRequest("malformed stream frame")))
            return
        if frame.abort is not None:
            self._fail(StreamAborted(f"the transfer was abandoned: {frame.abort}"))
            await self._put(StreamAborted(f"the transfer was abandoned: {frame.abort}"))
            return
        if self._failed is not None:
            await self._answer(msg, Reply.failure(self._failed))
            return
        if frame.seq != self._next:
            error = BadRequest(f"stream frame {frame.seq} arrived, {self._next} expected")
            self._fail(error)
            await self._answer(msg, Reply.failure(error))
            await self._put(error)
            return
        self._next += 1
        if not frame.data:
            self._eof_msg = msg
            self.trailer = dict(frame.trailer or {})
            await self._put(_EOF)
            return
        await self._put(frame.data)
        await self._answer(msg, Reply())

    async def _put(self, item: Any) -> None:
        # Waits while the consumer still holds the previous chunk: that is the flow control.
        # A failed consumer drains the queue, so this never waits for nobody.
        if self._failed is not None and item is not _EOF and not isinstance(item, Exception):
            return
        await self._queue.put(item)

    def _fail(self, error: WarrenError) -> None:
        if self._failed is None:
            self._failed = error
        while not self._queue.empty():
            self._queue.get_nowait()

    async def _answer(self, msg: Msg, reply: Reply) -> None:
        if msg.reply:
            with contextlib.suppress(Exception):
                await msg.respond(codec.encode(reply))

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            try:
                item = await asyncio.wait_for(self._queue.get(), self.idle_timeout)
            except TimeoutError:
                error = StreamAborted(
                    f"the transfer was abandoned (nothing received for {self.idle_timeout:g}s)"
                )
                self._fail(error)
                raise error from None
            if item is _EOF:
                return
            if isinstance(item, Exception):
                raise item
            yield item

    async def fail(self, error: WarrenError) -> None:
        """The consumer gave up: refuse further frames (and answer the end, if it came)."""
        self._fail(error)
        await self.finish(Reply.failure(error))

    async def finish(self, reply: Reply) -> None:
        """Answer the end-of-stream frame with the transfer's outcome."""
        msg, self._eof_msg = self._eof_msg, None
        if msg is not None:
            await self._answer(msg, reply)

    async def close(self) -> None:
        if self._sub is not None:
            sub, self._sub = self._sub, None
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
