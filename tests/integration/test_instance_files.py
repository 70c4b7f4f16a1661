"""Instance files (FileHandlers over a real nats-server) inside real busybox containers.

Every rootfs mode is covered: privileged, shifted (a chowned copy) and idmapped (shown
shifted through an idmapped mount, where host root cannot create files: the handlers create
them as the container's root). Paths resolve inside the container's root whatever ``..`` and
symlinks say; ids are the container's.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from test_instance_host_support import (
    BUSYBOX,
    HANG_GUARD,
    MODES,
    SHIFT,
    BusyboxHosts,
    busybox_hosts,
)

from schemas import events, subjects
from schemas.bytestream import StreamReceiver, abort_stream, send_stream
from schemas.client import Bus
from schemas.errors import BadRequest, Conflict, NotFound
from schemas.instances import FileInfo
from schemas.messages import Reply, RequestMeta
from services.common.endpoints import EndpointGroup
from services.instance.drivers.spec import ExecRequest
from services.instance.instances.file_handlers import FileHandlers
from services.instance.instances.host import HostInstance

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(os.geteuid() != 0, reason="containers need root"),
    pytest.mark.skipif(not BUSYBOX.exists(), reason="busybox-static is not installed"),
]

NODE = "node-files"
META = RequestMeta(requestor="tester")


class Node:
    """FileHandlers of one node serving the test's instances, and the events they record."""

    def __init__(self) -> None:
        self.hosts: dict[str, HostInstance] = {}
        self.recorded: list[tuple[str, str, dict[str, Any]]] = []

    async def locate(self, meta: RequestMeta, name: str) -> HostInstance:
        if name not in self.hosts:
            raise NotFound(f"Instance {name} not found")
        return self.hosts[name]

    async def record(
        self, host: HostInstance, event_type: str, payload: dict[str, Any], meta: RequestMeta
    ) -> int:
        self.recorded.append((host.name, event_type, payload))
        return len(self.recorded)


class Files:
    """The gateway's side: requests plus byte streams."""

    def __init__(self, bus: Bus, host: HostInstance) -> None:
        self.bus = bus
        self.host = host

    def subject(self, verb: str) -> str:
        return subjects.instance_node(verb, NODE)

    async def get(self, path: str) -> tuple[FileInfo, bytes | None]:
        stream_id = uuid.uuid4().hex
        rx = await StreamReceiver(self.bus.nc, subjects.stream(stream_id, 0), HANG_GUARD).start()
        try:
            result = await self.bus.request(
                self.subject(subjects.INSTANCE_FILE_GET),
                {"name": self.host.name, "path": path, "stream_id": stream_id},
                META,
            )
            info = FileInfo.model_validate(result)
            if info.type != "file":
                return info, None
            content = bytearray()
            async for chunk in rx:
                content += chunk
            await rx.finish(Reply())
            return info, bytes(content)
        finally:
            await rx.close()

    async def push(self, path: str, chunks: list[bytes] | bytes, **fields: Any) -> Any:
        stream_id = uuid.uuid4().hex
        body = {"name": self.host.name, "path": path, "stream_id": stream_id, **fields}
        ticket = await self.bus.request(self.subject(subjects.INSTANCE_FILE_PUT), body, META)
        assert ticket == {"stream_id": stream_id}
        parts = [chunks] if isinstance(chunks, bytes) else chunks

        async def source() -> AsyncIterator[bytes]:
            for part in parts:
                yield part

        reply = await send_stream(self.bus.nc, subjects.stream(stream_id, 0), source())
        return reply.unwrap()

    async def make(self, path: str, type_: str, **fields: Any) -> Any:
        body = {"name": self.host.name, "path": path, "type": type_, **fields}
        return await self.bus.request(self.subject(subjects.INSTANCE_FILE_PUT), body, META)

    async def delete(self, path: str) -> Any:
        body = {"name": self.host.name, "path": path}
        return await self.bus.request(self.subject(subjects.INSTANCE_FILE_DELETE), body, META)

    async def run(self, *command: str) -> str:
        """A command inside the container; its stdout."""
        out_r, out_w = os.pipe()
        try:
            request = ExecRequest(command=list(command), stdout=out_w)
            code = await asyncio.wait_for(
                self.host.driver.exec(self.host.host_name, request), HANG_GUARD
            )
        finally:
            os.close(out_w)
        with os.fdopen(out_r, "rb") as out:
            text = out.read().decode()
        assert code == 0, (command, text)
        return text


@pytest.fixture
async def node(nats_server) -> AsyncIterator[tuple[Node, Bus]]:
    bus = await Bus.open(nats_server.url, "test-files")
    served = Node()
    handlers = FileHandlers(served.locate, served.record, bus.nc, NODE)
    group = EndpointGroup(f"instance-files-{uuid.uuid4().hex[:8]}")
    handlers.register(group)
    await group.start(bus.nc)
    try:
        yield served, bus
    finally:
        await group.stop()
        await handlers.stop()
        await bus.close()


@pytest.fixture
async def hosts() -> AsyncIterator[BusyboxHosts]:
    async with busybox_hosts() as made:
        yield made


@pytest.fixture(params=MODES)
async def files(request, node, hosts: BusyboxHosts) -> Files:
    served, bus = node
    host = await hosts.make(request.param)
    served.hosts[host.name] = host
    return Files(bus, host)


def host_id(host: HostInstance, container_id: int) -> int:
    return container_id + (host.idmap.host_base if host.idmap else 0)


def disk_id(host: HostInstance, container_id: int) -> int:
    """The id on disk: shown shifted through the idmapped mount, really unshifted."""
    mounted = host.rootfs != BusyboxHosts.disk(host)
    return container_id if mounted else host_id(host, container_id)


async def test_info_and_content_as_the_container_sees_them(files: Files, node):
    info, content = await files.get("/etc/passwd")
    assert (info.type, info.uid, info.gid, info.mode) == ("file", 0, 0, 0o644)
    assert content == (BusyboxHosts.disk(files.host) / "etc/passwd").read_bytes()
    assert info.size == len(content) and b"alice" in content

    info, content = await files.get("/etc")
    assert info.type == "directory" and content is None
    assert info.entries == sorted(info.entries) and {"passwd", "shadow", "group"} <= set(
        info.entries
    )
    assert (info.uid, info.gid, info.mode) == (0, 0, 0o755)

    info, _ = await files.get("/home/alice")
    assert (info.type, info.uid, info.gid) == ("directory", 1000, 1000)

    info, content = await files.get("/bin/sh")
    assert (info.type, info.target, content) == ("symlink", "/bin/busybox", None)
    info, _ = await files.get("/tmp")
    assert info.mode == 0o777  # permission bits, as LXD reports them

    served, _ = node
    assert (files.host.name, events.INSTANCE_FILE_RETRIEVED, {"path": "/etc/passwd"}) in (
        served.recorded
    )
    with pytest.raises(NotFound):
        await files.get("/etc/nope")
    with pytest.raises(NotFound):
        await files.get("/etc/passwd/x")  # a file taken for a directory


async def test_push_creates_and_replaces_files_with_container_ids(files: Files, node):
    host = files.host
    payload = os.urandom(3 * 1024 * 1024 + 17)
    pieces = [payload[i : i + 100_000] for i in range(0, len(payload), 100_000)]
    await files.push("/tmp/new", pieces, uid=1000, gid=1000, mode=0o600)
    st = os.stat(BusyboxHosts.disk(host) / "tmp/new")
    assert (st.st_uid, st.st_gid) == (disk_id(host, 1000), disk_id(host, 1000))
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert os.stat(host.rootfs / "tmp/new").st_uid == host_id(host, 1000)
    # What the container sees.
    assert (await files.run("stat", "-c", "%u %g %a %s", "/tmp/new")).split() == [
        "1000",
        "1000",
        "600",
        str(len(payload)),
    ]
    assert (await files.run("md5sum", "/tmp/new")).split()[0] == hashlib.md5(payload).hexdigest()
    info, content = await files.get("/tmp/new")
    assert (info.uid, info.gid, info.mode, content) == (1000, 1000, 0o600, payload)

    # Defaults: root's, 0644. An existing file keeps its ids and mode unless given.
    await files.push("/root/plain", b"one\n")
    info, _ = await files.get("/root/plain")
    assert (info.uid, info.gid, info.mode) == (0, 0, 0o644)
    await files.push("/tmp/new", b"replaced\n")
    info, content = await files.get("/tmp/new")
    assert (info.uid, info.gid, info.mode, content) == (1000, 1000, 0o600, b"replaced\n")
    await files.push("/tmp/new", b"more\n", write="append")
    assert (await files.get("/tmp/new"))[1] == b"replaced\nmore\n"
    await files.push("/tmp/appended", b"fresh\n", write="append", mode=0o640)
    info, content = await files.get("/tmp/appended")
    assert (info.mode, content) == (0o640, b"fresh\n")
    await files.push("/tmp/new", b"x", gid=65534, mode=0o4755)
    assert (await files.run("stat", "-c", "%u %g %a", "/tmp/new")).split() == [
        "1000",
        "65534",
        "4755",
    ]
    served, _ = node
    pushed = [p for n, t, p in served.recorded if t == events.INSTANCE_FILE_PUSHED]
    assert {"path": "/tmp/new"} in pushed and {"path": "/root/plain"} in pushed


async def test_a_failed_push_leaves_the_old_file(files: Files, node):
    host = files.host
    await files.push("/tmp/keep", b"old content\n", uid=1000)
    stream_id = uuid.uuid4().hex
    body = {"name": host.name, "path": "/tmp/keep", "stream_id": stream_id}
    await files.bus.request(files.subject(subjects.INSTANCE_FILE_PUT), body, META)

    async def interrupted() -> AsyncIterator[bytes]:
        yield b"new content that never completes"
        raise RuntimeError("the client went away")

    with pytest.raises(RuntimeError):
        await send_stream(files.bus.nc, subjects.stream(stream_id, 0), interrupted())
    for _ in range(200):  # the abort is handled in the background
        leftovers = [n for n in os.listdir(BusyboxHosts.disk(host) / "tmp") if "warren" in n]
        if not leftovers:
            break
        await asyncio.sleep(0.02)
    assert leftovers == []
    assert (await files.get("/tmp/keep"))[1] == b"old content\n"

    # A push into a missing directory, over a directory, or with ids out of range: refused
    # before any byte moves.
    with pytest.raises(NotFound):
        await files.push("/no/such/dir/file", b"x")
    with pytest.raises(BadRequest):
        await files.push("/tmp", b"x")
    if host.idmap is not None:
        with pytest.raises(BadRequest, match="outside"):
            await files.push("/tmp/x", b"x", uid=70000)
    await abort_stream(files.bus.nc, subjects.stream(stream_id, 0))


async def test_directories_symlinks_and_deletes(files: Files):
    host = files.host
    assert await files.make("/tmp/d", "directory", uid=1000, gid=1000, mode=0o750) is None
    assert (await files.run("stat", "-c", "%u %g %a", "/tmp/d")).split() == ["1000", "1000", "750"]
    assert os.stat(BusyboxHosts.disk(host) / "tmp/d").st_uid == disk_id(host, 1000)
    await files.make("/tmp/d", "directory")  # already there: fine
    await files.make("/tmp/d/sub", "directory")
    info, _ = await files.get("/tmp/d/sub")
    assert (info.uid, info.gid, info.mode) == (0, 0, 0o755)
    with pytest.raises(BadRequest):
        await files.make("/etc/passwd", "directory")

    await files.make("/tmp/l", "symlink", target="../etc/passwd")
    info, _ = await files.get("/tmp/l")
    assert (info.type, info.target) == ("symlink", "/etc/passwd")
    assert (await files.run("readlink", "/tmp/l")) == "../etc/passwd\n"
    assert (await files.run("cat", "/tmp/l")).startswith("root:")
    await files.make("/tmp/l", "symlink", target="/etc/group")  # a symlink is replaced
    assert (await files.run("readlink", "/tmp/l")) == "/etc/group\n"
    assert os.lstat(BusyboxHosts.disk(host) / "tmp/l").st_uid == disk_id(host, 0)
    with pytest.raises(BadRequest):
        await files.make("/tmp/d", "symlink", target="/x")

    with pytest.raises(BadRequest, match="not empty"):
        await files.delete("/tmp/d")
    await files.delete("/tmp/d/sub")
    await files.delete("/tmp/d")
    await files.delete("/tmp/l")  # the link, not its target
    assert (BusyboxHosts.disk(host) / "etc/group").exists()
    await files.push("/tmp/f", b"x")
    await files.delete("/tmp/f")
    for gone in ("/tmp/d", "/tmp/l", "/tmp/f"):
        with pytest.raises(NotFound):
            await files.get(gone)
    with pytest.raises(NotFound):
        await files.delete("/tmp/never")
    with pytest.raises(BadRequest):
        await files.delete("/")


async def test_escapes_stay_inside_the_root(files: Files):
    host = files.host
    container_passwd = (BusyboxHosts.disk(host) / "etc/passwd").read_bytes()
    host_shadow = await asyncio.to_thread(Path("/etc/shadow").read_bytes)
    assert container_passwd != await asyncio.to_thread(Path("/etc/passwd").read_bytes)

    for path in ("../../etc/passwd", "/../../../etc/passwd", "/tmp/../../etc/./passwd"):
        assert (await files.get(path))[1] == container_passwd
    assert (await files.get("etc/passwd"))[1] == container_passwd  # relative: from / (LXD)

    # Symlinks made by the container itself.
    await files.run("ln", "-s", "/etc/shadow", "/tmp/evil")
    await files.run("ln", "-s", "/etc", "/tmp/evil-dir")
    await files.run("ln", "-s", "../../..", "/tmp/up")
    info, _ = await files.get("/tmp/evil")
    assert (info.type, info.target) == ("symlink", "/etc/shadow")
    assert (await files.get("/tmp/evil-dir/shadow"))[1] == b"root:container-secret:19000::::::\n"
    assert (await files.get("/tmp/up/etc/shadow"))[1] == b"root:container-secret:19000::::::\n"
    assert (await files.get("/tmp/up"))[0].target == "/"

    # Writing through them writes the container's files, never the host's.
    await files.push("/tmp/evil", b"root:overwritten::::::\n")
    assert (await files.run("cat", "/etc/shadow")) == "root:overwritten::::::\n"
    await files.push("/tmp/up/tmp/through-up", b"inside\n")
    assert (await files.run("cat", "/tmp/through-up")) == "inside\n"
    await files.make("/tmp/up/etc/newdir", "directory")
    await files.make("/tmp/up/../../tmp/link-made", "symlink", target="/etc/shadow")
    assert (await files.run("ls", "-d", "/etc/newdir", "/tmp/link-made")).split() == [
        "/etc/newdir",
        "/tmp/link-made",
    ]
    for outside in ("/etc/newdir", "/tmp/link-made"):
        assert not await asyncio.to_thread(os.path.lexists, outside)
    assert await asyncio.to_thread(Path("/etc/shadow").read_bytes) == host_shadow
    await files.delete("/tmp/up/tmp/through-up")
    assert (await files.get("/tmp/evil"))[0].type == "symlink"  # the link survived

    # Magic links (/proc/<pid>/root and the like) are refused outright.
    with pytest.raises(NotFound):
        await files.get("/proc/self/root/etc/passwd")  # /proc is empty on the host side
    with pytest.raises(BadRequest):
        await files.get("/etc/pass\0wd")


async def test_unknown_instances_and_bad_requests(files: Files):
    bus = files.bus
    with pytest.raises(NotFound):
        await bus.request(
            files.subject(subjects.INSTANCE_FILE_GET),
            {"name": "nope", "path": "/etc/passwd", "stream_id": "s1"},
            META,
        )
    with pytest.raises(BadRequest):
        await files.make("/tmp/x", "symlink")  # no target
    with pytest.raises(BadRequest):
        await bus.request(
            files.subject(subjects.INSTANCE_FILE_PUT),
            {"name": files.host.name, "path": "/tmp/x", "stream_id": "bad.id"},
            META,
        )
    with pytest.raises((Conflict, BadRequest)):
        await files.make("/etc/passwd", "symlink", target="/x")


@pytest.mark.parametrize("mode", ["idmapped"])
async def test_shift_range_edges(mode, node, hosts: BusyboxHosts):
    served, bus = node
    host = await hosts.make(mode)
    served.hosts[host.name] = host
    files = Files(bus, host)
    await files.push("/tmp/top", b"x", uid=65535, gid=65535)
    info, _ = await files.get("/tmp/top")
    assert (info.uid, info.gid) == (65535, 65535)
    assert os.stat(host.rootfs / "tmp/top").st_uid == SHIFT + 65535
