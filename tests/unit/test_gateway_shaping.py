"""Pure logic of the gateway: the status table, envelopes, lifecycle events, filters."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web

from gateway import errors, lifecycle, responses
from gateway.hub import EventHub
from gateway.operations import OperationsView
from gateway.routes.history import parse_at
from gateway.routes.operations import group
from gateway.routes.projects import parse_limit, project_state
from gateway.routes.root import extensions
from schemas.envelope import Event as LogEvent
from schemas.errors import BadRequest, Conflict, ErrorCode, NotFound, WarrenError
from schemas.lxd.event import Event


def body(resp: web.Response) -> dict:
    return json.loads(resp.body)


# -- the status table -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (BadRequest("x"), 400),
        (NotFound("x"), 404),
        (Conflict("x"), 409),
        (WarrenError("x", 412), 412),
        (WarrenError("x", 403), 403),
        (WarrenError("x", 503), 503),
        (WarrenError("x", 405), 501),  # LXD says "not implemented" for a wrong method
        (WarrenError("x"), 500),
    ],
)
def test_warren_errors_map_to_lxd_statuses(exc: WarrenError, status: int) -> None:
    resp = errors.from_exception(exc)
    assert resp.status == status
    assert body(resp) == {
        "type": "error",
        "status": "",
        "status_code": 0,
        "operation": "",
        "error_code": status,
        "error": "x",
        "metadata": None,
    }


def test_every_error_code_has_a_row_in_the_table() -> None:
    assert set(errors.STATUS_TABLE) == set(ErrorCode)


def test_unknown_codes_fall_back_by_class() -> None:
    assert errors.status_of(418).http == 400
    assert errors.status_of(599).http == 500


@pytest.mark.parametrize(
    ("exc", "status", "message"),
    [
        (web.HTTPNotFound(), 404, "not found"),
        (web.HTTPMethodNotAllowed("PUT", ["GET"]), 501, "not implemented"),
        (web.HTTPRequestEntityTooLarge(10, 20), 400, None),
    ],
)
def test_aiohttp_failures_use_lxd_wording(exc: web.HTTPException, status: int, message) -> None:
    data = body(errors.from_exception(exc))
    assert data["error_code"] == status
    if message is not None:
        assert data["error"] == message
    assert data["error"]


def test_unexpected_exceptions_are_500_with_a_message() -> None:
    data = body(errors.from_exception(RuntimeError("boom")))
    assert data["error_code"] == 500 and "boom" in data["error"]


# -- envelopes ------------------------------------------------------------------------------
def test_sync_create_is_201_with_location_and_null_metadata() -> None:
    resp = responses.sync(None, location="/1.0/profiles/p")
    assert resp.status == 201 and resp.headers["Location"] == "/1.0/profiles/p"
    assert body(resp)["metadata"] is None and body(resp)["status_code"] == 200


def test_empty_response_has_empty_object_metadata_and_etag_is_quoted() -> None:
    assert body(responses.empty())["metadata"] == {}
    assert responses.sync({"a": 1}, etag="abc").headers["ETag"] == '"abc"'


def test_async_response_points_at_the_operation() -> None:
    resp = responses.operation({"id": "42", "status_code": 103})
    data = body(resp)
    assert resp.status == 202 and resp.headers["Location"] == "/1.0/operations/42"
    assert data["type"] == "async" and data["status_code"] == 100
    assert data["operation"] == "/1.0/operations/42" and data["metadata"]["id"] == "42"


# -- lifecycle events -----------------------------------------------------------------------
def _log_event(type_: str, aggregate: str, payload: dict, project: str = "default") -> LogEvent:
    return LogEvent(
        type=type_,
        aggregate=aggregate,
        aggregate_id="a1",
        project=project,
        requestor="alice",
        payload=payload,
    )


def test_profile_rename_in_a_project_becomes_an_lxd_lifecycle_event() -> None:
    event, extra = lifecycle.lifecycle(
        _log_event("profile-renamed", "profile", {"name": "new", "old_name": "old"}, "pj")
    )
    data = event.to_lxd()
    assert data["type"] == "lifecycle" and data["project"] == "pj" and extra == ()
    assert data["location"] == "none"
    assert data["metadata"] == {
        "action": "profile-renamed",
        "source": "/1.0/profiles/new?project=pj",
        "context": {"old_name": "old"},
        "requestor": {"username": "alice", "protocol": "unix", "address": "@"},
    }
    assert data["timestamp"].endswith("Z")


def test_project_events_carry_the_projects_name_and_reach_default_listeners() -> None:
    event, extra = lifecycle.lifecycle(_log_event("project-created", "project", {"name": "pj"}))
    assert event.project == "pj" and extra == ("default",)
    assert event.metadata["source"] == "/1.0/projects/pj"
    assert "context" not in event.metadata


def test_non_lifecycle_events_are_skipped() -> None:
    assert lifecycle.lifecycle(_log_event("name-claimed", "name", {"name": "x"})) is None
    assert lifecycle.lifecycle(_log_event("profile-created", "profile", {})) is None


# -- the hub's filters ----------------------------------------------------------------------
async def test_hub_filters_by_type_and_project() -> None:
    hub = EventHub()
    default = hub.subscribe(["lifecycle"], "default")
    other = hub.subscribe(["lifecycle", "logging"], "pj")
    everyone = hub.subscribe(["lifecycle", "operation"], None)

    def ev(kind: str, project: str) -> Event:
        return Event(type=kind, timestamp="t", metadata={"k": kind, "p": project}, project=project)

    hub.publish(ev("lifecycle", "default"))
    hub.publish(ev("lifecycle", "pj"))
    hub.publish(ev("operation", "pj"))
    hub.publish(ev("logging", ""))  # no project: reaches every listener of the type
    hub.publish(ev("lifecycle", "pj"), also_projects=("default",))

    def got(listener) -> list[tuple[str, str]]:
        out = []
        while not listener.queue.empty():
            data = json.loads(listener.queue.get_nowait())
            out.append((data["type"], data.get("project", "")))
        return out

    assert got(default) == [("lifecycle", "default"), ("lifecycle", "pj")]
    assert got(other) == [("lifecycle", "pj"), ("logging", ""), ("lifecycle", "pj")]
    assert got(everyone) == [
        ("lifecycle", "default"),
        ("lifecycle", "pj"),
        ("operation", "pj"),
        ("lifecycle", "pj"),
    ]
    assert hub.wants("operation") and hub.wants("logging")
    hub.unsubscribe(everyone)
    assert not hub.wants("operation")


async def test_a_listener_that_cannot_keep_up_is_cut_off() -> None:
    hub = EventHub()
    slow = hub.subscribe(["logging"], None)
    for _ in range(slow.queue.maxsize + 1):
        hub.publish(Event(type="logging", timestamp="t", metadata={}))
    assert len(hub) == 0
    items = [slow.queue.get_nowait() for _ in range(slow.queue.qsize())]
    assert items[-1] is None  # the websocket pump closes on this


# -- operations view ------------------------------------------------------------------------
def _op_event(op_id: str, status_code: int, project: str = "default", age_s: float = 0) -> LogEvent:
    status = {103: "Running", 200: "Success", 401: "Cancelled"}[status_code]
    return LogEvent(
        type="operation-created" if status_code == 103 else "operation-updated",
        aggregate="operation",
        aggregate_id=op_id,
        project=project,
        occurred_at=datetime.now(UTC) - timedelta(seconds=age_s),
        payload={"id": op_id, "status": status, "status_code": status_code, "class": "task"},
    )


async def test_operations_fold_list_by_project_and_forget_old_finished_ones() -> None:
    view = OperationsView(retention_s=60)
    view.apply(_op_event("a", 103))
    view.apply(_op_event("b", 103, project="pj"))
    view.apply(_op_event("c", 103))
    view.apply(_op_event("c", 200, age_s=120))  # finished long ago
    assert {r.op["id"] for r in view.list("default")} == {"a"}
    assert {r.op["id"] for r in view.list(None)} == {"a", "b"}
    assert view.get("c") is None
    grouped = group(view.list(None), recursion=0)
    assert grouped == {"running": ["/1.0/operations/a", "/1.0/operations/b"]}


async def test_wait_final_returns_on_the_final_event_or_the_timeout() -> None:
    view = OperationsView()
    view.apply(_op_event("w", 103))
    timed_out = await view.wait_final("w", 0.01)
    assert timed_out.op["status_code"] == 103

    waiter = asyncio.create_task(view.wait_final("w", None))
    await asyncio.sleep(0)
    view.apply(_op_event("w", 200))
    done = await asyncio.wait_for(waiter, 5)
    assert done.op["status"] == "Success"


async def test_a_waiter_gets_the_final_state_even_if_it_is_forgotten_at_once() -> None:
    view = OperationsView(retention_s=0)  # finished operations vanish as they end
    view.apply(_op_event("f", 103))
    waiter = asyncio.create_task(view.wait_final("f", 30))
    await asyncio.sleep(0)
    view.apply(_op_event("f", 200))
    done = await asyncio.wait_for(waiter, 5)
    assert done is not None and done.op["status"] == "Success"
    assert view.get("f") is None and len(view) == 0


def test_operations_on_projects_themselves_belong_to_no_project() -> None:
    view = OperationsView()
    rename = _op_event("r", 103, project="default")
    rename.payload["resources"] = {"projects": ["/1.0/projects/p"]}
    view.apply(rename)
    other = _op_event("i", 103, project="default")
    other.payload["resources"] = {"instances": ["/1.0/instances/c"]}
    view.apply(other)
    assert view.get("r").project == "" and view.get("i").project == "default"
    assert {r.op["id"] for r in view.list("elsewhere")} == {"r"}


def test_other_events_on_an_operation_subject_are_ignored() -> None:
    view = OperationsView()
    event = _op_event("x", 103).model_copy(update={"type": "operation-cancel-requested"})
    assert view.apply(event) is None and len(view) == 0


# -- small parsers --------------------------------------------------------------------------
def test_history_at_is_a_sequence_or_an_rfc3339_time() -> None:
    assert parse_at(None) == (None, None)
    assert parse_at("42") == (42, None)
    assert parse_at("2026-01-02T03:04:05Z") == (None, "2026-01-02T03:04:05+00:00")
    with pytest.raises(BadRequest):
        parse_at("yesterday")
    with pytest.raises(BadRequest):
        parse_at("2026-01-02T03:04:05")  # no zone: ambiguous


def test_project_state_reads_limits_and_counts_users() -> None:
    state = project_state(
        {
            "config": {"limits.instances": "5", "limits.memory": "1GiB", "limits.cpu": "x"},
            "used_by": ["/1.0/profiles/default?project=p", "/1.0/instances/c1?project=p"],
        }
    )["resources"]
    assert state["instances"] == {"Limit": 5, "Usage": 1}
    assert state["memory"] == {"Limit": 2**30, "Usage": 0}
    assert state["cpu"]["Limit"] == -1
    assert parse_limit("10MB") == 10**7 and parse_limit("") == -1


def test_extensions_are_deduplicated_and_stable() -> None:
    exts = extensions([("projects", "etag"), ("warren_history", "projects")])
    assert exts[:3] == ["etag", "patch", "api_os"]
    assert exts.count("projects") == 1 and exts[-1] == "warren_history"
