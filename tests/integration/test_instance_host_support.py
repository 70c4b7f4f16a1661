"""Shared helpers of the instance host-side suites (exec, files, logs; no tests here).

``BusyboxHosts`` makes real busybox containers through the LXC driver and hands out the
``HostInstance`` the instance service would give its handlers, in three rootfs modes:

- ``privileged``: a plain directory, no id map (container ids are host ids);
- ``shifted``: a copy chowned into 1000000.. (what a ``rootfs_shift = "none"`` pool makes);
- ``idmapped``: a plain directory shown shifted through an idmapped bind mount (what the dir
  and btrfs pools hand out: ``rootfs_shift = "idmapped-mount"``), so on disk files stay 0..

``ExecGateway`` plays the gateway's half of :mod:`schemas.exec_io` on a real nats-server;
``Exec`` runs an ExecSession as a real operation with one of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from busybox_rootfs import build_busybox_rootfs, shift_ownership
from nats.aio.client import Client

from schemas import subjects
from schemas.bytestream import StreamReceiver, send_stream
from schemas.client import Bus
from schemas.exec_io import fds_for
from schemas.instances import ExecStart
from schemas.messages import Reply
from schemas.storage import VolumeIdMap
from services.common.operations import OperationRecorder, RunningOperation
from services.instance.drivers import LxcDriver
from services.instance.drivers.spec import IdMap, InstanceSpec, host_name_for
from services.instance.exec_session import ExecSession
from services.instance.instances.host import HostInstance
from services.storage import mounts
from services.storage.idmap import IdMap as MountIdMap
from services.storage.idmap import idmapped_bind

BUSYBOX = Path("/bin/busybox")
SHIFT = 1_000_000
MODES = ("privileged", "shifted", "idmapped")
# A guard against a hang (the failure these suites look for), not a speed requirement.
HANG_GUARD = 60.0


class BusyboxHosts:
    """Containers of one test, each with its own rootfs; everything goes at :meth:`cleanup`."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.driver = LxcDriver(workdir / "instances")
        self.names: list[str] = []
        self.mounts: list[Path] = []

    async def make(
        self, mode: str = "shifted", config: dict[str, str] | None = None
    ) -> HostInstance:
        """A running busybox container in ``mode`` (see the module docstring)."""
        instance_id = str(uuid.uuid4())
        name = host_name_for(instance_id)
        base = self.workdir / "volumes" / name
        rootfs = base / ("rootfs" if mode == "idmapped" else "disk")
        if mode == "idmapped":
            self.mounts.append(rootfs)
        await asyncio.to_thread(self._prepare, base, mode)
        privileged = mode == "privileged"
        spec = InstanceSpec(
            name=name,
            rootfs=rootfs,
            privileged=privileged,
            idmap=None if privileged else IdMap(host_uid=SHIFT, host_gid=SHIFT),
            rootfs_idmapped_mount=False,  # every mode hands LXC a rootfs already as it must be
            hostname="c1",
        )
        self.names.append(name)
        await self.driver.create(spec)
        await self.driver.start(name)
        state_dir = self.workdir / "state" / name
        return HostInstance(
            instance_id=instance_id,
            name=f"c-{name[-8:]}",
            project="default",
            host_name=name,
            rootfs=rootfs,
            idmap=None if privileged else VolumeIdMap(host_base=SHIFT),
            driver=self.driver,
            state_dir=state_dir,
            config=dict(config or {}),
        )

    @staticmethod
    def _prepare(base: Path, mode: str) -> None:
        disk = base / "disk"
        build_busybox_rootfs(disk)
        if mode == "shifted":
            shift_ownership(disk, SHIFT)
        elif mode == "idmapped":
            (base / "rootfs").mkdir()
            idmapped_bind(disk, base / "rootfs", MountIdMap(host_base=SHIFT))

    @staticmethod
    def disk(host: HostInstance) -> Path:
        """The directory holding the files on disk (under the idmapped mount, if any)."""
        return host.rootfs.parent / "disk"

    async def cleanup(self) -> None:
        for name in self.names:
            try:
                if await self.driver.exists(name):
                    await self.driver.stop(name, force=True)
                    await self.driver.delete(name)
            except Exception as exc:  # keep cleaning the others
                print(f"cleanup of {name} failed: {exc!r}")
        for path in self.mounts:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(mounts.umount, path, detach=True)


@contextlib.asynccontextmanager
async def busybox_hosts() -> AsyncIterator[BusyboxHosts]:
    # Not pytest's tmp_path: it is 0700 and an unprivileged container's root must traverse it.
    workdir = Path(tempfile.mkdtemp(prefix="warren-exec-"))
    os.chmod(workdir, 0o755)
    hosts = BusyboxHosts(workdir)
    try:
        yield hosts
    finally:
        await hosts.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


class ExecGateway:
    """The gateway's side of one exec: output receivers, attaches, stdin, control."""

    def __init__(self, bus: Bus, operation_id: str, interactive: bool) -> None:
        self.bus = bus
        self.nc: Client = bus.nc
        self.op = operation_id
        self.interactive = interactive
        self.fds = fds_for(interactive)
        self.outputs = ("1",) if interactive else ("1", "2")
        self.received: dict[str, bytearray] = {fd: bytearray() for fd in self.outputs}
        self.ended: dict[str, asyncio.Event] = {fd: asyncio.Event() for fd in self.outputs}
        self._receivers: dict[str, StreamReceiver] = {}
        self._tasks: list[asyncio.Task[Any]] = []
        self._stdin: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._stdin_task: asyncio.Task[Reply] | None = None
        #: Whether the operation was still running when each output stream ended.
        self.ended_before: dict[str, bool] = {}
        self.finished: asyncio.Event | None = None

    async def attach(self, fds: tuple[str, ...] | None = None, stdin: bool = True) -> None:
        """Listen on the outputs, then attach ``fds`` (default: all of them)."""
        for fd in self.outputs:
            if fd not in self._receivers:
                rx = StreamReceiver(self.nc, subjects.exec_io(self.op, fd), HANG_GUARD)
                self._receivers[fd] = await rx.start()
                self._tasks.append(asyncio.create_task(self._collect(fd, rx)))
        if stdin and self._stdin_task is None:
            self._stdin_task = asyncio.create_task(
                send_stream(self.nc, subjects.exec_io(self.op, "0"), self._stdin_chunks())
            )
        for fd in fds if fds is not None else self.fds:
            await self.bus.request(subjects.exec_attach(self.op), {"fd": fd})

    async def _collect(self, fd: str, rx: StreamReceiver) -> None:
        try:
            async for chunk in rx:
                self.received[fd] += chunk
            if self.finished is not None:
                self.ended_before[fd] = not self.finished.is_set()
            await rx.finish(Reply())
        finally:
            self.ended[fd].set()
            await rx.close()

    async def _stdin_chunks(self) -> AsyncIterator[bytes]:
        while True:
            chunk = await self._stdin.get()
            if chunk is None:
                return
            yield chunk

    def type(self, data: bytes) -> None:
        self._stdin.put_nowait(data)

    def close_stdin(self) -> None:
        self._stdin.put_nowait(None)

    async def control(self, body: dict[str, Any]) -> Any:
        return await self.bus.request(subjects.exec_io(self.op, "control"), body)

    async def wait_output(self, fd: str, needle: bytes, timeout: float = HANG_GUARD) -> None:
        async def seen() -> None:
            while needle not in self.received[fd]:
                await asyncio.sleep(0.02)

        await asyncio.wait_for(seen(), timeout)

    async def wait_ended(self, timeout: float = HANG_GUARD) -> None:
        await asyncio.wait_for(
            asyncio.gather(*(event.wait() for event in self.ended.values())), timeout
        )

    def text(self, fd: str) -> str:
        return self.received[fd].decode("utf-8", "replace")

    async def close(self) -> None:
        if self._stdin_task is not None and not self._stdin_task.done():
            self.close_stdin()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._stdin_task, 5)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task


class Exec:
    """One exec as the lead's handler runs it: session, operation, and our gateway."""

    def __init__(self, node: Bus, gateway: Bus, recorder: OperationRecorder) -> None:
        self.node = node
        self.gateway_bus = gateway
        self.recorder = recorder

    async def start(
        self, host: HostInstance, command: list[str], **fields: Any
    ) -> tuple[ExecSession, RunningOperation, ExecGateway]:
        op_id = str(uuid.uuid4())
        request = ExecStart(name=host.name, command=command, **fields)
        session = ExecSession(self.node.nc, host, request, op_id)
        await session.prepare()
        op = await self.recorder.start(
            session.run,
            description="Executing command",
            op_class=session.op_class,  # type: ignore[arg-type]
            metadata=session.metadata(),
            operation_id=op_id,
        )
        gateway = ExecGateway(self.gateway_bus, op_id, request.interactive)
        gateway.finished = op.finished
        return session, op, gateway

    async def run(
        self, host: HostInstance, command: list[str], stdin: bytes | None = None, **fields: Any
    ) -> tuple[dict[str, Any], ExecGateway]:
        fields.setdefault("wait-for-websocket", True)
        _, op, gateway = await self.start(host, command, **fields)
        try:
            await gateway.attach()
            if stdin is not None:
                gateway.type(stdin)
            gateway.close_stdin()
            final = await asyncio.wait_for(op.wait(), HANG_GUARD)
            await gateway.wait_ended()
        finally:
            await gateway.close()
        return final, gateway

    async def on_terminal(
        self, host: HostInstance, keys: bytes, **fields: Any
    ) -> tuple[dict[str, Any], str]:
        """Type ``keys`` (ending with an exit) into an interactive sh; its outcome and output."""
        _, op, gateway = await self.start(
            host, ["sh"], interactive=True, **{"wait-for-websocket": True}, **fields
        )
        try:
            await gateway.attach()
            gateway.type(keys)
            final = await asyncio.wait_for(op.wait(), HANG_GUARD)
            await gateway.wait_ended()
        finally:
            await gateway.close()
        return final, gateway.text("1")
