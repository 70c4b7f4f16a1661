"""Instance logs (LogHandlers over a real nats-server) of a real busybox container: the driver's
lxc.log, the console log, and exec's record-output files."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from test_instance_host_support import BUSYBOX, HANG_GUARD, busybox_hosts

from schemas import events, subjects
from schemas.client import Bus
from schemas.errors import BadRequest, NotFound
from schemas.instances import ExecStart, LogContent
from schemas.messages import RequestMeta
from services.common.endpoints import EndpointGroup
from services.instance.drivers.spec import ExecRequest
from services.instance.exec_session import ExecSession
from services.instance.instances.host import HostInstance
from services.instance.instances.log_handlers import LogHandlers

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(os.geteuid() != 0, reason="containers need root"),
    pytest.mark.skipif(not BUSYBOX.exists(), reason="busybox-static is not installed"),
]

NODE = "node-logs"
META = RequestMeta(requestor="tester")


class Served:
    def __init__(self, host: HostInstance) -> None:
        self.host = host
        self.recorded: list[tuple[str, dict[str, Any]]] = []

    async def locate(self, meta: RequestMeta, name: str) -> HostInstance:
        if name != self.host.name:
            raise NotFound(f"Instance {name} not found")
        return self.host

    async def record(
        self, host: HostInstance, event_type: str, payload: dict[str, Any], meta: RequestMeta
    ) -> int:
        self.recorded.append((event_type, payload))
        return len(self.recorded)


@pytest.fixture
async def setup(nats_server) -> AsyncIterator[tuple[Served, Bus]]:
    async with busybox_hosts() as hosts:
        host = await hosts.make("idmapped")
        served = Served(host)
        bus = await Bus.open(nats_server.url, "test-logs")
        group = EndpointGroup(f"instance-logs-{uuid.uuid4().hex[:8]}")
        LogHandlers(served.locate, served.record, NODE, max_bytes=64 * 1024).register(group)
        await group.start(bus.nc)
        try:
            yield served, bus
        finally:
            await group.stop()
            await bus.close()


async def _logs(bus: Bus, name: str, file: str | None = None) -> Any:
    subject = subjects.instance_node(subjects.INSTANCE_LOGS, NODE)
    return await bus.request(subject, {"name": name, "file": file}, META)


async def _delete(bus: Bus, name: str, file: str) -> Any:
    subject = subjects.instance_node(subjects.INSTANCE_LOG_DELETE, NODE)
    return await bus.request(subject, {"name": name, "file": file}, META)


async def _recorded_exec(bus: Bus, host: HostInstance, script: str) -> str:
    op_id = str(uuid.uuid4())
    request = ExecStart(name=host.name, command=["sh", "-c", script], **{"record-output": True})
    session = ExecSession(bus.nc, host, request, op_id)
    await session.prepare()
    result = await asyncio.wait_for(session.run(), HANG_GUARD)
    assert result["return"] == 0
    return op_id


async def test_list_read_and_delete(setup):
    served, bus = setup
    host = served.host
    assert await _logs(bus, host.name) == ["lxc.log"]  # no exec record yet, no console.log

    op_id = await _recorded_exec(bus, host, "echo out; echo err >&2")
    names = await _logs(bus, host.name)
    assert names == sorted(["lxc.log", f"exec_{op_id}.stdout", f"exec_{op_id}.stderr"])
    content = LogContent.model_validate(await _logs(bus, host.name, f"exec_{op_id}.stdout"))
    assert content.content == b"out\n"
    assert (events.INSTANCE_LOG_RETRIEVED, {"file": f"exec_{op_id}.stdout"}) in served.recorded
    lxc_log = LogContent.model_validate(await _logs(bus, host.name, "lxc.log"))
    assert isinstance(lxc_log.content, bytes)

    with pytest.raises(BadRequest):
        await _delete(bus, host.name, "lxc.log")
    with pytest.raises(BadRequest):
        await _delete(bus, host.name, "console")
    assert await _delete(bus, host.name, f"exec_{op_id}.stdout") is None
    assert (events.INSTANCE_LOG_DELETED, {"file": f"exec_{op_id}.stdout"}) in served.recorded
    assert await _logs(bus, host.name) == sorted(["lxc.log", f"exec_{op_id}.stderr"])
    with pytest.raises(NotFound):
        await _delete(bus, host.name, f"exec_{op_id}.stdout")

    for bad in ("nope.log", "../lxc.log", "exec_/../../x.stdout", f"exec_{op_id}.stdout", "."):
        with pytest.raises(NotFound):
            await _logs(bus, host.name, bad)
    with pytest.raises(NotFound):
        await _logs(bus, "other", None)


async def test_console_log_and_the_tail_of_big_logs(setup):
    served, bus = setup
    host = served.host
    request = ExecRequest(command=["sh", "-c", "echo hello-$((6*7)) > /dev/console"])
    assert await host.driver.exec(host.host_name, request) == 0
    for _ in range(200):
        console = LogContent.model_validate(await _logs(bus, host.name, "console"))
        if b"hello-42" in console.content:
            break
        await asyncio.sleep(0.05)
    assert b"hello-42" in console.content

    # A big record: only its end comes back, valid UTF-8 (the bus carries text).
    script = "i=0; while [ $i -lt 3000 ]; do echo line-$i-$(printf '\\377'); i=$((i+1)); done"
    op_id = await _recorded_exec(bus, host, script)
    content = LogContent.model_validate(await _logs(bus, host.name, f"exec_{op_id}.stdout"))
    assert len(content.content) <= 64 * 1024
    assert content.content.endswith("line-2999-\ufffd\n".encode())
    content.content.decode("utf-8")
