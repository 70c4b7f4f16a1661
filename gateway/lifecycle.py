"""Log events -> LXD ``lifecycle`` events for ``/1.0/events`` (operations: operation_events)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from gateway.hub import timestamp
from schemas import events as event_types
from schemas.envelope import Event as LogEvent
from schemas.lxd.event import Event, Lifecycle, LifecycleRequestor

DEFAULT_PROJECT = "default"
#: Aggregates that are projects themselves: their lifecycle events belong to that project.
PROJECT_AGGREGATE = "project"


def source_of(event: LogEvent) -> str | None:
    """The LXD source path of a catalog event, or None if it is not a lifecycle event."""
    template = event_types.LIFECYCLE_SOURCES.get(event.type)
    name = event.payload.get("name")
    if template is None or not isinstance(name, str):
        return None
    network = str(event.payload.get("network", ""))  # a network forward's network
    source = template.format(name=quote(name, safe=""), network=quote(network, safe=""))
    if event.project != DEFAULT_PROJECT and event.aggregate != PROJECT_AGGREGATE:
        source += f"?project={quote(event.project, safe='')}"
    return source


def lifecycle(event: LogEvent) -> tuple[Event, tuple[str, ...]] | None:
    """The lifecycle event for a log event, and extra projects whose listeners also get it.

    Like LXD, a project's own events carry that project's name; unlike LXD, listeners of the
    default project also see them (the project list is server-wide), so a plain
    ``lxc monitor`` shows projects being created and deleted.
    """
    source = source_of(event)
    if source is None:
        return None
    context: dict[str, Any] | None = None
    old_name = event.payload.get("old_name")
    if isinstance(old_name, str):
        context = {"old_name": old_name}
    requestor = None
    if event.requestor and event.requestor != "unknown":
        requestor = LifecycleRequestor(username=event.requestor, protocol="unix", address="@")
    metadata = Lifecycle(action=event.type, source=source, context=context, requestor=requestor)
    project, extra = event.project, ()
    if event.aggregate == PROJECT_AGGREGATE:
        project, extra = str(event.payload["name"]), (DEFAULT_PROJECT,)
    lxd = Event(
        type="lifecycle",
        timestamp=timestamp(event.occurred_at),
        metadata=metadata.to_lxd(),
        project=project,
    )
    return lxd, extra
