"""The OperationRecorder against a real nats-server: every state of an operation is an event
in the log, and a cancel request on the bus cancels the running job."""

from __future__ import annotations

import asyncio

import pytest

from schemas import events, subjects
from schemas.client import Bus
from schemas.errors import BadRequest, Unavailable, WarrenError
from schemas.messages import RequestMeta
from services.common.eventstore import EventStore
from services.common.operations import OperationRecorder, RunningOperation

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def bus(nats_server):
    bus = await Bus.open(nats_server.url, "test-operations")
    await EventStore(bus.js).ensure_stream()
    yield bus
    await bus.close()


@pytest.fixture
def recorder(bus):
    return OperationRecorder(bus.nc, EventStore(bus.js), node="node1")


async def _logged(bus: Bus, op_id: str) -> list[dict]:
    stored = await EventStore(bus.js).load(subjects.operation(op_id))
    return [s.event.payload for s in stored]


async def test_success_records_running_progress_and_success(bus, recorder):
    async def work(op: RunningOperation) -> dict:
        await op.update({"progress": "50%"})
        return {"result": "done"}

    final = await recorder.run(
        work,
        description="Doing things",
        resources={"profiles": ["/1.0/profiles/x"]},
        meta=RequestMeta(requestor="alice"),
    )
    assert (final["status"], final["status_code"], final["err"]) == ("Success", 200, "")
    assert final["metadata"] == {"progress": "50%", "result": "done"}
    assert final["may_cancel"] is False
    stored = await EventStore(bus.js).load(subjects.operation(final["id"]))
    assert [s.event.type for s in stored] == [
        events.OPERATION_CREATED,
        events.OPERATION_UPDATED,
        events.OPERATION_UPDATED,
    ]
    created = stored[0].event
    assert created.payload["status_code"] == 103 and created.payload["class"] == "task"
    assert created.payload["resources"] == {"profiles": ["/1.0/profiles/x"]}
    assert created.correlation_id == final["id"] and created.requestor == "alice"
    assert [s.event.version for s in stored] == [1, 2, 3]
    assert stored[-1].event.payload == final


async def test_failure_records_the_error(bus, recorder):
    async def work(op: RunningOperation) -> None:
        raise WarrenError("the disk is on fire")

    final = await recorder.run(work, description="Failing")
    assert (final["status"], final["status_code"]) == ("Failure", 400)
    assert final["err"] == "the disk is on fire"
    assert (await _logged(bus, final["id"]))[-1]["err"] == "the disk is on fire"


async def test_cancel_request_on_the_bus_cancels_the_job(bus, recorder):
    started, reached_end = asyncio.Event(), []

    async def work(op: RunningOperation) -> None:
        started.set()
        await asyncio.Event().wait()  # only a cancel ends this
        reached_end.append(True)

    op = await recorder.start(work, description="Waiting forever", op_class="websocket")
    await started.wait()
    reply = await bus.request_reply(
        subjects.operation_cancel(op.id), {}, RequestMeta(requestor="bob")
    )
    final = reply.unwrap()
    assert (final["status"], final["status_code"]) == ("Cancelled", 401)
    assert not reached_end
    logged = await EventStore(bus.js).load(subjects.operation(op.id))
    assert logged[-1].seq == reply.seq
    assert logged[-1].event.requestor == "bob" and logged[-1].event.payload == final
    # Once over, nobody listens for cancels any more.
    with pytest.raises(Unavailable):
        await bus.request(subjects.operation_cancel(op.id), {}, timeout=1)


async def test_operation_that_may_not_be_cancelled_refuses(bus, recorder):
    release = asyncio.Event()

    async def work(op: RunningOperation) -> None:
        await release.wait()

    op = await recorder.start(work, description="Steadfast", may_cancel=False)
    with pytest.raises(BadRequest, match="This operation can't be cancelled"):
        await op.cancel("bob")
    # No cancel listener either: the gateway refuses on may_cancel=false before asking.
    with pytest.raises(Unavailable):
        await bus.request(subjects.operation_cancel(op.id), {}, timeout=1)
    release.set()
    assert (await op.wait())["status_code"] == 200


async def test_stopping_the_recorder_fails_what_still_runs(bus, recorder):
    async def work(op: RunningOperation) -> None:
        await asyncio.Event().wait()

    op = await recorder.start(work, description="Interrupted")
    await recorder.stop()
    final = await op.wait()
    assert final["status_code"] == 400 and "stopped" in final["err"]
    assert (await _logged(bus, op.id))[-1] == final


async def test_requested_id_is_used_unless_already_taken(bus, recorder):
    async def work(op: RunningOperation) -> None:
        return None

    first = await recorder.run(
        work, description="A", operation_id="0b9f3c1e-0000-4000-8000-000000000001"
    )
    assert first["id"] == "0b9f3c1e-0000-4000-8000-000000000001"
    second = await recorder.run(work, description="B", operation_id=first["id"])
    assert second["id"] != first["id"] and second["status_code"] == 200
