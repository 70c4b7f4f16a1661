"""``/1.0/instances/<name>/files`` on the node: the instance's files, read and written on the
host through :mod:`services.instance.rootfs_files` (paths resolved inside the instance's root).

- get (``INSTANCE_FILE_GET``, :class:`~schemas.instances.FileGet`): the reply is a
  :class:`~schemas.instances.FileInfo`; a regular file's content then streams on
  ``subjects.stream(stream_id, 0)`` (the gateway's receiver listens before it asks);
- put (``INSTANCE_FILE_PUT``, :class:`~schemas.instances.FilePut`): a directory or a symlink is
  made in the reply (``None``); a file gets a :class:`~schemas.instances.FilePutTicket` once a
  receiver listens on ``subjects.stream(stream_id, 0)``, and that stream's final reply is the
  outcome (overwrite lands in one rename at the end; a failed transfer leaves the old file);
- delete (``INSTANCE_FILE_DELETE``, :class:`~schemas.instances.FileDelete`): ``None``.

Each change or read is recorded (``instance-file-pushed``, ``-retrieved``, ``-deleted``, with
the path) as LXD emits its lifecycle events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from nats.aio.client import Client

from schemas import events, subjects
from schemas import instances as wire
from schemas.bytestream import StreamAborted, StreamReceiver, send_stream
from schemas.errors import BadRequest, Unavailable, WarrenError
from schemas.messages import Reply, RequestMeta
from services.common.endpoints import EndpointGroup
from services.instance.instances.host import HostInstance, Locate, Record
from services.instance.rootfs_files import FileReader, FileWriter, RootFS, clean_path

log = logging.getLogger(__name__)

#: A push whose sender goes quiet this long is abandoned (the old file stays).
PUSH_IDLE_TIMEOUT = 60.0
#: After refusing a push mid-stream, how long the receiver stays to tell the sender why.
FAILURE_LINGER = 5.0


def rootfs(host: HostInstance) -> RootFS:
    return RootFS(host.rootfs, host.idmap)


class FileHandlers:
    """The file endpoints of this node."""

    def __init__(self, locate: Locate, record: Record, nc: Client, node: str) -> None:
        self.locate = locate
        self.record = record
        self.nc = nc
        self.node = node
        self.tasks: set[asyncio.Task[None]] = set()

    def register(self, group: EndpointGroup) -> None:
        # Concurrent: finding an instance may wait for its volume to mount, and one slow
        # request must not hold up the others.
        for verb, model, handler in (
            (subjects.INSTANCE_FILE_GET, wire.FileGet, self.get),
            (subjects.INSTANCE_FILE_PUT, wire.FilePut, self.put),
            (subjects.INSTANCE_FILE_DELETE, wire.FileDelete, self.delete),
        ):
            group.add(subjects.instance_node(verb, self.node), model, handler, concurrent=True)

    async def stop(self) -> None:
        """Cancel the transfers still running (a push in flight leaves the old file)."""
        for task in list(self.tasks):
            task.cancel()
        for task in list(self.tasks):
            with contextlib.suppress(BaseException):
                await task

    # -- handlers --------------------------------------------------------------------------

    async def get(self, body: wire.FileGet, meta: RequestMeta) -> tuple[Any, int]:
        subject = subjects.stream(_stream_id(body.stream_id), 0)
        host = await self.locate(meta, body.name)
        info, reader = await rootfs(host).open_read(body.path)
        try:
            seq = await self.record(
                host, events.INSTANCE_FILE_RETRIEVED, {"path": clean_path(body.path)}, meta
            )
        except BaseException:
            if reader is not None:
                await reader.close()
            raise
        if reader is not None:
            self._spawn(self._send(subject, reader))
        return info.model_dump(), seq

    async def put(self, body: wire.FilePut, meta: RequestMeta) -> tuple[Any, int]:
        path = clean_path(body.path)
        subject = subjects.stream(_stream_id(body.stream_id), 0) if body.type == "file" else ""
        host = await self.locate(meta, body.name)
        fs = rootfs(host)
        if body.type == "directory":
            if not await fs.mkdir(path, uid=body.uid, gid=body.gid, mode=body.mode):
                return None, 0  # there already: nothing happened (LXD records nothing either)
        elif body.type == "symlink":
            if not body.target:
                raise BadRequest("A symlink needs a target")
            await fs.symlink(path, body.target, uid=body.uid, gid=body.gid)
        else:
            writer = await fs.open_write(
                path,
                uid=body.uid,
                gid=body.gid,
                mode=body.mode,
                append=body.write == "append",
            )
            try:
                receiver = await StreamReceiver(self.nc, subject, PUSH_IDLE_TIMEOUT).start()
            except BaseException:
                await writer.abort()
                raise
            self._spawn(self._receive(host, path, meta, writer, receiver))
            return wire.FilePutTicket(stream_id=body.stream_id).model_dump(), 0
        seq = await self.record(host, events.INSTANCE_FILE_PUSHED, {"path": path}, meta)
        return None, seq

    async def delete(self, body: wire.FileDelete, meta: RequestMeta) -> tuple[Any, int]:
        path = clean_path(body.path)
        host = await self.locate(meta, body.name)
        await rootfs(host).delete(path)
        seq = await self.record(host, events.INSTANCE_FILE_DELETED, {"path": path}, meta)
        return None, seq

    # -- transfers -------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _send(self, subject: str, reader: FileReader) -> None:
        try:
            reply = await send_stream(self.nc, subject, reader.chunks())
            reply.unwrap()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The gateway went away or gave up: nothing to undo on this side.
            log.info("file %s: sending ended early: %s", reader.path, exc)
        finally:
            await reader.close()

    async def _receive(
        self,
        host: HostInstance,
        path: str,
        meta: RequestMeta,
        writer: FileWriter,
        receiver: StreamReceiver,
    ) -> None:
        committed = False
        ended = False  # the sender is done (end frame, abort or silence)
        try:
            try:
                async for chunk in receiver:
                    await writer.write(chunk)
                ended = True
                await writer.commit()
                committed = True
                seq = await self.record(host, events.INSTANCE_FILE_PUSHED, {"path": path}, meta)
                await receiver.finish(Reply(seq=seq))
            except StreamAborted:
                ended = True
                raise
            except WarrenError as exc:
                await receiver.fail(exc)
                raise
            except asyncio.CancelledError:
                await receiver.fail(Unavailable("the instance service stopped during the push"))
                raise
            except Exception as exc:
                log.exception("file %s of %s: the push failed", path, host.name)
                await receiver.fail(WarrenError(f"writing {path} failed: {exc}"))
                raise
            finally:
                if not committed:
                    await writer.abort()
        except Exception as exc:
            log.info("file %s of %s: push failed: %s", path, host.name, exc)
            if not ended:
                # Refused mid-stream: the sender learns why on its next frame (a closed
                # receiver would only say it went away), and stops there.
                await asyncio.sleep(FAILURE_LINGER)
        finally:
            await receiver.close()


def _stream_id(stream_id: str) -> str:
    try:
        subjects.stream(stream_id, 0)
    except ValueError as exc:
        raise BadRequest(f"invalid stream id {stream_id!r}") from exc
    return stream_id
