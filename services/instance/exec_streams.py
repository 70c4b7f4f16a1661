"""An exec's side of :mod:`schemas.exec_io` on NATS: output streams to the gateway, and the
bodies of (and answers to) its attach and control requests."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from pydantic import BaseModel, ValidationError

from schemas import codec, subjects
from schemas.bytestream import StreamReceiver, send_stream
from schemas.errors import BadRequest, WarrenError
from schemas.messages import Reply
from services.common.endpoints import validation_message
from services.instance.exec_fds import read_output, write_all

log = logging.getLogger(__name__)

#: A gateway that does not take an output chunk within this long is given up on.
OUTPUT_CHUNK_TIMEOUT = 300.0
OUTPUT_FINAL_TIMEOUT = 30.0


def message_body(model: type[BaseModel], data: bytes) -> Any:
    """A request's body: a :class:`~schemas.messages.Request` envelope or the bare model."""
    raw = codec.unpack(data)
    if isinstance(raw, dict) and isinstance(raw.get("body"), dict) and "meta" in raw:
        raw = raw["body"]
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise BadRequest(validation_message(exc)) from exc


async def respond(msg: Msg, reply: Reply) -> None:
    if msg.reply:
        with contextlib.suppress(Exception):
            await msg.respond(codec.encode(reply))


async def send_output(
    nc: Client,
    operation_id: str,
    name: str,
    fd: int,
    exited: asyncio.Future[Any],
    sent: asyncio.Event,
) -> None:
    """Stream output fd ``name`` to the gateway until it ends (see
    :func:`~services.instance.exec_fds.read_output`); ``sent`` is set once all of it has
    been taken and the end frame goes out (or the stream failed)."""
    try:
        await send_stream(
            nc,
            subjects.exec_io(operation_id, name),
            read_output(fd, exited),
            chunk_timeout=OUTPUT_CHUNK_TIMEOUT,
            final_timeout=OUTPUT_FINAL_TIMEOUT,
            on_end=sent.set,
        )
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        # The gateway went away: keep draining so the command is not blocked on a full
        # pipe, and let it run to its end (as if its output went nowhere).
        log.info("exec %s: output %s ended early: %s", operation_id, name, exc)
        with contextlib.suppress(OSError):
            async for _ in read_output(fd, exited):
                pass
    finally:
        sent.set()


async def relay_stdin(receiver: StreamReceiver, fd: int, operation_id: str) -> None:
    """Write the gateway's stdin stream to ``fd`` until it ends (its end answered) or the
    client goes away; once the command stops reading, what still comes is dropped."""
    broken = False
    try:
        async for chunk in receiver:
            if broken:
                continue  # the command stopped reading: what comes is dropped
            try:
                await write_all(fd, chunk)
            except OSError:
                broken = True
    except WarrenError as exc:  # the client went away (aborted) or went silent
        log.debug("exec %s: stdin ended: %s", operation_id, exc)
    else:
        await receiver.finish(Reply())


async def end_streams(nc: Client, operation_id: str, names: tuple[str, ...]) -> None:
    """End the output streams at once (nothing will come): the client must not hang."""

    async def end(name: str) -> None:
        with contextlib.suppress(Exception):
            await send_stream(
                nc,
                subjects.exec_io(operation_id, name),
                _nothing(),
                final_timeout=OUTPUT_FINAL_TIMEOUT,
            )

    await asyncio.gather(*(end(name) for name in names))


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover - makes this an async generator
