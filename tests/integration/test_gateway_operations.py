"""/1.0/operations served from the event log: list, get, wait, cancel, and late replicas."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from gateway_harness import GatewayHarness

from gateway.operations import RETENTION_S
from schemas import codec, events, subjects
from schemas.client import Bus
from schemas.envelope import Event
from schemas.messages import Reply, Request, RequestMeta
from services.common.eventstore import EventStore
from services.common.operations import OperationRecorder


@pytest.fixture
async def bus(nats_server):
    bus = await Bus.open(nats_server.url, "test-gateway-operations")
    await EventStore(bus.js).ensure_stream()
    yield bus
    await bus.close()


@pytest.fixture
async def gw(nats_server, bus):
    harness = await GatewayHarness(nats_server.url).start()
    yield harness
    await harness.stop()


def lxd_now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class RecordedOp:
    """An operation written straight into the log, as a service's recorder would."""

    def __init__(self, store: EventStore, project: str = "default", may_cancel: bool = False):
        self.store = store
        self.project = project
        self.seq = 0
        self.version = 0
        now = lxd_now()
        self.obj = {
            "id": str(uuid.uuid4()),
            "class": "task",
            "description": "Testing things",
            "created_at": now,
            "updated_at": now,
            "status": "Running",
            "status_code": 103,
            "resources": {"profiles": ["/1.0/profiles/x"]},
            "metadata": None,
            "may_cancel": may_cancel,
            "err": "",
            "location": "none",
        }

    @property
    def id(self) -> str:
        return self.obj["id"]

    async def record(self, **changes) -> int:
        self.obj = {**self.obj, **changes, "updated_at": lxd_now()}
        self.version += 1
        event = Event(
            type=events.OPERATION_CREATED if self.version == 1 else events.OPERATION_UPDATED,
            aggregate=subjects.OPERATION_AGGREGATE,
            aggregate_id=self.id,
            version=self.version,
            project=self.project,
            payload=self.obj,
        )
        self.seq = await self.store.append([event], expected_seq=self.seq)
        return self.seq


async def settle(gw: GatewayHarness, seq: int) -> None:
    await gw.state.reader.wait_for(seq)


async def test_list_get_and_wait_follow_the_log(gw, bus) -> None:
    op = RecordedOp(EventStore(bus.js))
    await settle(gw, await op.record())
    url = f"/1.0/operations/{op.id}"

    listing = await gw.get("/1.0/operations")
    assert url in listing["running"]
    objects = await gw.get("/1.0/operations?recursion=1")
    assert op.obj in objects["running"]
    assert await gw.get(url) == op.obj

    # A wait that times out returns the current (running) state, as LXD 5.0 does.
    assert (await gw.get(f"{url}/wait?timeout=0.05"))["status"] == "Running"

    waiter = asyncio.create_task(gw.get(f"{url}/wait?timeout=30"))
    await asyncio.sleep(0.1)
    assert not waiter.done()
    await op.record(status="Success", status_code=200, metadata={"done": True})
    final = await asyncio.wait_for(waiter, 30)
    assert final["status"] == "Success" and final["metadata"] == {"done": True}

    await settle(gw, op.seq)
    listing = await gw.get("/1.0/operations")
    assert url in listing["success"] and url not in listing.get("running", [])


async def test_finished_operations_are_kept_five_seconds_as_in_lxd(bus, nats_server) -> None:
    """LXD 5.0 forgets an operation 5 s after it ends; until then GET and /wait answer."""
    assert RETENTION_S == 5.0
    gw = await GatewayHarness(nats_server.url, retention_s=RETENTION_S).start()
    try:
        op = RecordedOp(EventStore(bus.js))
        await settle(gw, await op.record())
        url = f"/1.0/operations/{op.id}"
        waiter = asyncio.create_task(gw.get(f"{url}/wait?timeout=30"))
        await asyncio.sleep(0.1)
        await op.record(status="Success", status_code=200)
        assert (await asyncio.wait_for(waiter, 30))["status"] == "Success"
        ended = asyncio.get_running_loop().time()
        # Right after the end: still there for the GET or /wait a client sends next.
        assert (await gw.get(url))["status"] == "Success"
        assert (await gw.get(f"{url}/wait?timeout=30"))["status"] == "Success"
        assert url in (await gw.get("/1.0/operations"))["success"]

        await asyncio.sleep(RETENTION_S + 0.5 - (asyncio.get_running_loop().time() - ended))
        for suffix in ("", "/wait?timeout=1"):
            status, _, data = await gw.request("GET", f"{url}{suffix}")
            assert status == 404 and data["error"] == "Operation not found"
        assert url not in (await gw.get("/1.0/operations")).get("success", [])
        assert len(gw.state.operations) == 0  # forgotten, not only hidden
    finally:
        await gw.stop()


async def test_operations_are_listed_per_project(gw, bus) -> None:
    store = EventStore(bus.js)
    here, there = RecordedOp(store), RecordedOp(store, project="elsewhere")
    await here.record()
    await settle(gw, await there.record())

    default = (await gw.get("/1.0/operations")).get("running", [])
    elsewhere = (await gw.get("/1.0/operations?project=elsewhere")).get("running", [])
    everywhere = (await gw.get("/1.0/operations?all-projects=true")).get("running", [])
    assert f"/1.0/operations/{here.id}" in default
    assert f"/1.0/operations/{there.id}" not in default
    assert f"/1.0/operations/{there.id}" in elsewhere
    assert {f"/1.0/operations/{o.id}" for o in (here, there)} <= set(everywhere)
    # Getting one operation by id does not depend on the project, as in LXD.
    assert (await gw.get(f"/1.0/operations/{there.id}"))["id"] == there.id


async def test_unknown_operation_is_404(gw) -> None:
    for method, suffix in (("GET", ""), ("GET", "/wait?timeout=1"), ("DELETE", "")):
        status, _, data = await gw.request(method, f"/1.0/operations/{uuid.uuid4()}{suffix}")
        assert status == 404 and data["error"] == "Operation not found"


async def test_cancel_is_refused_when_the_operation_may_not_be_cancelled(gw, bus) -> None:
    op = RecordedOp(EventStore(bus.js), may_cancel=False)
    await settle(gw, await op.record())
    status, _, data = await gw.request("DELETE", f"/1.0/operations/{op.id}")
    assert status == 400 and "can't be cancelled" in data["error"]

    await settle(gw, await op.record(status="Success", status_code=200))
    status, _, data = await gw.request("DELETE", f"/1.0/operations/{op.id}")
    assert status == 400 and "running" in data["error"]


async def test_cancel_request_goes_to_the_owner_and_waits_for_the_record(gw, bus) -> None:
    """DELETE -> request on cancel.<id>; the answer comes once the log says Cancelled."""
    op = RecordedOp(EventStore(bus.js), may_cancel=True)
    await settle(gw, await op.record())
    asked: list[Request] = []

    async def owner(msg) -> None:
        asked.append(codec.decode(Request, msg.data))
        seq = await op.record(status="Cancelled", status_code=401, may_cancel=False)
        await msg.respond(codec.encode(Reply(result=op.obj, seq=seq)))

    sub = await bus.nc.subscribe(subjects.operation_cancel(op.id), cb=owner)
    try:
        status, _, data = await gw.request("DELETE", f"/1.0/operations/{op.id}")
    finally:
        await sub.unsubscribe()
    assert status == 200 and data["metadata"] == {}, data
    assert asked[0].meta.correlation_id == op.id and asked[0].meta.requestor
    assert (await gw.get(f"/1.0/operations/{op.id}"))["status"] == "Cancelled"


async def test_cancel_reaches_a_real_operation_recorder(gw, bus) -> None:
    """DELETE -> cancel request -> the owner (a real OperationRecorder) cancels and records."""
    recorder = OperationRecorder(bus.nc, EventStore(bus.js), node="test")
    started = asyncio.Event()

    async def forever(_op) -> None:
        started.set()
        await asyncio.sleep(3600)

    running = await recorder.start(
        forever, description="Sleeping", may_cancel=True, meta=RequestMeta(requestor="tester")
    )
    await started.wait()
    await settle(gw, running._seq)
    url = f"/1.0/operations/{running.id}"
    assert (await gw.get(url))["may_cancel"] is True

    status, _, data = await gw.request("DELETE", url)
    assert status == 200 and data["metadata"] == {}, data
    # The gateway answers once it has read the cancellation from the log.
    assert (await gw.get(url))["status"] == "Cancelled"
    assert (await running.wait())["status_code"] == 401


async def test_a_gateway_started_later_sees_the_same_operations(gw, bus, nats_server) -> None:
    store = EventStore(bus.js)
    finished, running = RecordedOp(store), RecordedOp(store)
    await finished.record()
    await finished.record(status="Success", status_code=200)
    await settle(gw, await running.record())
    first = await gw.get("/1.0/operations?recursion=1&all-projects=true")

    late = await GatewayHarness(nats_server.url).start()
    try:
        second = await late.get("/1.0/operations?recursion=1&all-projects=true")
        assert finished.obj in second["success"] and running.obj in second["running"]
        for status in ("success", "running"):
            ids = {o["id"] for o in first.get(status, [])}
            assert ids <= {o["id"] for o in second.get(status, [])}
        # And it follows the log live from where its replay ended.
        await settle(late, await running.record(status="Success", status_code=200))
        assert (await late.get(f"/1.0/operations/{running.id}"))["status"] == "Success"
    finally:
        await late.stop()
