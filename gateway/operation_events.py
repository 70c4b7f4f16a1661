"""An operation's log events -> the ``operation`` and ``logging`` events LXD sends for them.

LXD creates an operation Pending, starts it at once (Running) and ends it; each step sends an
``operation`` event and logs a debug line with the operation's class, description, id and
project. Warren's owner records the operation as Running from the start (one log append),
so its creation stands for both steps here:

======================  ===========================================  ======================
log event               logging message(s)                           operation event(s)
======================  ===========================================  ======================
operation-created       New operation, Started operation             Pending, then Running
update, still running   Updated metadata for operation               the new state
update, final           Success for / Failure for (+ err) operation  the final state
                        / Cancelled operation
======================  ===========================================  ======================

Each pair is sent log line first, as LXD does. Only what some listener wants is built.
"""

from __future__ import annotations

from typing import Any

from gateway.hub import EventHub, timestamp
from gateway.logevents import DEBUG, LOGGING, logging_event
from gateway.operations import Record
from schemas import events as event_types
from schemas.envelope import Event as LogEvent
from schemas.lxd.event import Event
from schemas.lxd.operation import STATUS_TEXT, StatusCode, is_final

OPERATION = "operation"

_FINAL_MESSAGES = {
    StatusCode.SUCCESS: "Success for operation",
    StatusCode.FAILURE: "Failure for operation",
    StatusCode.CANCELLED: "Cancelled operation",
}


def operation_event(op: dict[str, Any], project: str, when: str) -> Event:
    """The ``operation`` event for one state of an operation (project ``""``: everyone's)."""
    return Event(type=OPERATION, timestamp=when, metadata=op, project=project)


def pending(op: dict[str, Any]) -> dict[str, Any]:
    """The operation as LXD shows it between creation and start."""
    return {**op, "status": STATUS_TEXT[StatusCode.PENDING], "status_code": StatusCode.PENDING}


def steps(event: LogEvent, op: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``(log message, operation state)`` for each LXD step one log event stands for."""
    code = int(op.get("status_code", 0))
    if event.type == event_types.OPERATION_CREATED:
        if code == StatusCode.RUNNING:
            return [("New operation", pending(op)), ("Started operation", op)]
        return [("New operation", op)]
    if is_final(code):
        return [(_FINAL_MESSAGES.get(code, "Success for operation"), op)]
    return [("Updated metadata for operation", op)]


def publish(hub: EventHub, event: LogEvent, record: Record) -> None:
    """Send the LXD events for one applied operation event to the listeners wanting them."""
    logs, ops = hub.wants(LOGGING), hub.wants(OPERATION)
    if not (logs or ops):
        return
    op = record.op
    when = timestamp(event.occurred_at)
    for message, state in steps(event, op):
        if logs:
            ctx = {
                "class": str(op.get("class", "")),
                "description": str(op.get("description", "")),
                "operation": str(op.get("id", "")),
                "project": record.project,
            }
            if state.get("status_code") == StatusCode.FAILURE:
                ctx["err"] = str(op.get("err", ""))
            hub.publish(logging_event(message, DEBUG, ctx, event.occurred_at))
        if ops:
            hub.publish(operation_event(dict(state), record.project, when))
