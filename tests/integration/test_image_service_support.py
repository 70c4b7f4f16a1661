"""Shared helpers of the image service integration suites (no tests here).

``ImageService`` runs the image service in-process on the session's real nats-server with the
very ``setup`` of ``python -m services.image`` and a local blob store in a temporary
directory; ``Images`` talks to it over the bus the way the gateway does (requests plus
:mod:`schemas.bytestream` transfers).
"""

from __future__ import annotations

import asyncio
import io
import tarfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from schemas import images as wire
from schemas import subjects
from schemas.bytestream import StreamReceiver, send_stream
from schemas.client import Bus
from schemas.lxd.operation import is_final
from schemas.messages import Reply, RequestMeta
from services.common.blobs import LocalBlobStore
from services.common.eventstore import EventStore
from services.common.runtime import ServiceRuntime
from services.common.settings import Settings
from services.image.images.context import ImageContext
from services.image.service import NAME, setup


class ImageService:
    """One replica of the image service, started and stopped in the test's event loop."""

    def __init__(self, nats_url: str, warren_dir: Path, node: str = "node1") -> None:
        settings = Settings(warren_dir=warren_dir, nats_url=nats_url, node=node)
        self.runtime = ServiceRuntime(NAME, settings)
        self.blob_dir = warren_dir / "blobs"
        self.ctx: ImageContext | None = None

    async def start(self) -> ImageService:
        await self.runtime.connect()
        self.ctx = await setup(self.runtime, blobs=LocalBlobStore(self.blob_dir))
        await self.runtime.start()
        return self

    async def stop(self) -> None:
        await self.runtime.stop()

    def blob_files(self) -> list[str]:
        """Every file in the blob directory (temporary ones included)."""
        return sorted(
            str(p.relative_to(self.blob_dir)) for p in self.blob_dir.rglob("*") if p.is_file()
        )

    def spool_files(self) -> list[str]:
        assert self.ctx is not None
        return sorted(p.name for p in self.ctx.spool_dir.iterdir())


async def _chunks(data: bytes, size: int = 100_000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


class Images:
    """Requests and transfers on the bus with the metadata the gateway would set."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.store = EventStore(bus.js)

    @classmethod
    async def open(cls, nats_url: str) -> Images:
        return cls(await Bus.open(nats_url, "image-test-client"))

    async def close(self) -> None:
        await self.bus.close()

    @staticmethod
    def meta(project: str = "default", correlation_id: str | None = None) -> RequestMeta:
        return RequestMeta(project=project, requestor="tester", correlation_id=correlation_id)

    async def call(self, subject: str, body: dict[str, Any], project: str = "default") -> Any:
        return await self.bus.request(subject, body, self.meta(project, str(uuid.uuid4())))

    async def begin(self, split: bool = False, project: str = "default", **fields: Any) -> str:
        op_id = str(uuid.uuid4())
        body = wire.UploadBegin(split=split, operation_id=op_id, **fields)
        ticket = await self.bus.request(
            subjects.IMAGES_UPLOAD_BEGIN, body.model_dump(), self.meta(project, op_id)
        )
        return wire.UploadTicket.model_validate(ticket).upload_id

    async def upload(
        self, *parts: bytes, project: str = "default", filename: str = "", **fields: Any
    ) -> dict[str, Any]:
        """Stream an image (one part: unified; two: split) and return the final operation."""
        upload_id = await self.begin(len(parts) == 2, project, filename=filename, **fields)
        reply = Reply()
        for index, data in enumerate(parts):
            trailer = {"filename": filename} if index == 1 else None
            subject = subjects.stream(upload_id, index)
            reply = await send_stream(self.bus.nc, subject, _chunks(data), trailer=trailer)
            reply.unwrap()
        return await self.wait_operation(reply.result["operation"]["id"])

    async def wait_operation(self, op_id: str, timeout: float = 60) -> dict[str, Any]:
        """The operation's final state, read from the log."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            last = await self.store.last(subjects.operation(op_id))
            if last is not None and is_final(int(last.event.payload["status_code"])):
                return last.event.payload
            assert loop.time() < deadline, f"operation {op_id} did not finish"
            await asyncio.sleep(0.05)

    async def export(self, fingerprint: str, project: str = "default") -> list[tuple[str, bytes]]:
        """(file name, content) of each exported file."""
        export_id = str(uuid.uuid4())
        receivers = [
            await StreamReceiver(self.bus.nc, subjects.stream(export_id, i), 30).start()
            for i in range(2)
        ]
        try:
            body = wire.ExportBegin(fingerprint=fingerprint, export_id=export_id)
            ticket = wire.ExportTicket.model_validate(
                await self.bus.request(
                    subjects.IMAGES_EXPORT_BEGIN, body.model_dump(), self.meta(project)
                )
            )
            files = []
            for file, rx in zip(ticket.files, receivers, strict=False):
                data = b"".join([chunk async for chunk in rx])
                await rx.finish(Reply())
                assert len(data) == file.size
                files.append((file.filename, data))
            return files
        finally:
            for rx in receivers:
                await rx.close()


def split_image(unified: bytes) -> tuple[bytes, bytes]:
    """A split pair (metadata tarball, rootfs tarball) with the content of a unified one."""
    meta_out, rootfs_out = io.BytesIO(), io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(unified)) as src,
        tarfile.open(fileobj=meta_out, mode="w:gz") as meta,
        tarfile.open(fileobj=rootfs_out, mode="w:gz") as rootfs,
    ):
        for info in src.getmembers():
            data = src.extractfile(info) if info.isfile() else None
            if info.name == "rootfs" or info.name.startswith("rootfs/"):
                info.name = info.name[len("rootfs/") :] or "."
                rootfs.addfile(info, data)
            else:
                meta.addfile(info, data)
    return meta_out.getvalue(), rootfs_out.getvalue()


def hostile_image() -> bytes:
    """A unified tarball whose rootfs member climbs out with ``..``."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in (
            ("metadata.yaml", b"architecture: x86_64\ncreation_date: 1700000000\n"),
            ("rootfs/../../etc/evil", b"x"),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()
