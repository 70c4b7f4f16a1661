"""/1.0/events: log events become LXD operation and lifecycle events, filtered per listener."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid

import aiohttp
import pytest
from gateway_harness import GatewayHarness

from schemas import codec, events, subjects
from schemas.client import Bus
from schemas.envelope import Event
from schemas.errors import NotFound
from schemas.messages import Reply, Request
from services.common.eventstore import EventStore


@pytest.fixture
async def store(nats_server):
    bus = await Bus.open(nats_server.url, "test-gateway-events")
    store = EventStore(bus.js)
    await store.ensure_stream()
    yield store
    await bus.close()


@pytest.fixture
async def gw(nats_server, store):
    harness = await GatewayHarness(nats_server.url).start()
    yield harness
    await harness.stop()


@pytest.fixture
async def projects(nats_server):
    """A stand-in for the project owner: projects named ``pj...`` exist, nothing else does."""
    bus = await Bus.open(nats_server.url, "stand-in-projects")

    async def owner(msg) -> None:
        name = codec.decode(Request, msg.data).body["name"]
        if name.startswith("pj"):
            reply = Reply(result={"object": {"name": name}, "etag": ""})
        else:
            reply = Reply.failure(NotFound(f"Project {name!r} not found"))
        await msg.respond(codec.encode(reply))

    sub = await bus.nc.subscribe(subjects.PROJECTS_GET, cb=owner)
    yield
    await sub.unsubscribe()
    await bus.close()


def catalog_event(type_: str, aggregate: str, name: str, project: str = "default", **extra):
    return Event(
        type=type_,
        aggregate=aggregate,
        aggregate_id=str(uuid.uuid4()),
        project=project,
        requestor="alice",
        payload={"name": name, **extra},
    )


async def collect(ws: aiohttp.ClientWebSocketResponse, until, timeout: float = 20) -> list[dict]:
    """Messages until ``until(message)`` is true for one of them."""
    got: list[dict] = []
    async with asyncio.timeout(timeout):
        while True:
            msg = await ws.receive()
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            got.append(json.loads(msg.data))
            if until(got[-1]):
                return got


def source_is(source: str):
    return lambda m: m["type"] == "lifecycle" and m["metadata"]["source"] == source


async def test_lifecycle_events_follow_the_log_with_project_filtering(gw, store, projects):
    run = uuid.uuid4().hex[:8]
    default_ws = await gw.websocket("/1.0/events?type=lifecycle")
    pj_ws = await gw.websocket(f"/1.0/events?type=lifecycle&project=pj{run}")
    all_ws = await gw.websocket("/1.0/events?type=lifecycle,operation&all-projects=true")
    await asyncio.sleep(0.1)  # the listeners are registered once the handshake is done

    await store.append([catalog_event("profile-created", "profile", f"a{run}")], 0)
    await store.append(
        [catalog_event("profile-renamed", "profile", f"b{run}", old_name=f"a{run}")], None
    )
    await store.append(
        [catalog_event("profile-created", "profile", f"c{run}", project=f"pj{run}")], 0
    )
    await store.append([catalog_event("name-claimed", "name", f"z{run}")], 0)
    await store.append([catalog_event("project-created", "project", f"end{run}")], 0)

    end = source_is(f"/1.0/projects/end{run}")
    default = [m for m in await collect(default_ws, end) if run in json.dumps(m)]
    everything = [m for m in await collect(all_ws, end) if run in json.dumps(m)]
    scoped = await collect(pj_ws, source_is(f"/1.0/profiles/c{run}?project=pj{run}"))

    assert [(m["metadata"]["action"], m["metadata"]["source"]) for m in default] == [
        ("profile-created", f"/1.0/profiles/a{run}"),
        ("profile-renamed", f"/1.0/profiles/b{run}"),
        ("project-created", f"/1.0/projects/end{run}"),
    ]
    renamed = default[1]
    assert renamed["metadata"]["context"] == {"old_name": f"a{run}"}
    assert renamed["metadata"]["requestor"] == {
        "username": "alice",
        "protocol": "unix",
        "address": "@",
    }
    assert renamed["location"] == "none" and renamed["project"] == "default"
    assert renamed["timestamp"].endswith("Z")
    assert len(everything) == 4 and everything[2]["project"] == f"pj{run}"
    assert everything[3]["project"] == f"end{run}"  # a project's events carry its own name
    assert [m["metadata"]["source"] for m in scoped if run in json.dumps(m)] == [
        f"/1.0/profiles/c{run}?project=pj{run}"
    ]
    for ws in (default_ws, pj_ws, all_ws):
        await ws.close()


async def test_operation_events_carry_the_operation(gw, store) -> None:
    ws = await gw.websocket("/1.0/events?type=operation")
    await asyncio.sleep(0.1)
    op_id = str(uuid.uuid4())
    op = {"id": op_id, "class": "task", "status": "Running", "status_code": 103}
    await store.append(
        [
            Event(
                type=events.OPERATION_CREATED, aggregate="operation", aggregate_id=op_id, payload=op
            )
        ],
        0,
    )
    got = await collect(ws, lambda m: m["metadata"].get("id") == op_id)
    assert {m["type"] for m in got} == {"operation"}
    assert got[-1]["metadata"]["status"] == "Running" and got[-1]["project"] == "default"
    await ws.close()


async def test_logging_events_carry_the_gateways_log(gw) -> None:
    ws = await gw.websocket("/1.0/events?type=logging")
    await asyncio.sleep(0.1)
    marker = f"marker-{uuid.uuid4()}"
    logging.getLogger("gateway.test").warning("something happened: %s", marker)
    logging.getLogger("gateway.test").debug("too quiet to be sent: %s", marker)
    got = await collect(ws, lambda m: marker in m["metadata"]["message"])
    event = got[-1]
    assert event["type"] == "logging" and "project" not in event
    assert event["metadata"]["level"] == "warning"  # logrus names, as LXD
    assert event["metadata"]["message"] == f"something happened: {marker}"
    await ws.close()


async def test_unknown_project_is_404_before_the_upgrade(gw, projects) -> None:
    status, _, data = await gw.request("GET", "/1.0/events?project=nope")
    assert status == 404 and data["type"] == "error"
    with pytest.raises(aiohttp.WSServerHandshakeError) as failed:
        await gw.websocket("/1.0/events?project=nope")
    assert failed.value.status == 404


async def test_closing_the_websocket_unsubscribes(gw) -> None:
    before = len(gw.state.hub)
    ws = await gw.websocket("/1.0/events")
    for _ in range(100):
        if len(gw.state.hub) == before + 1:
            break
        await asyncio.sleep(0.02)
    assert len(gw.state.hub) == before + 1
    await ws.close()
    for _ in range(100):
        if len(gw.state.hub) == before:
            break
        await asyncio.sleep(0.02)
    assert len(gw.state.hub) == before
