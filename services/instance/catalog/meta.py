"""Identity of catalog events: who asked (copied onto each event), deterministic ids for
the objects that always exist, and ETag checks.

The ``default`` project and every project's ``default`` profile get uuid5 ids; the events
that create them get uuid5 event ids, so two replicas racing to create them produce the same
``Nats-Msg-Id`` and JetStream keeps one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from schemas.envelope import Event
from schemas.errors import PreconditionFailed
from schemas.lxd.catalog import etag_of
from schemas.messages import RequestMeta

_NAMESPACE = uuid.UUID("7f3c1a52-2b8e-4f7e-9d0a-6c4b1e2f9a31")

DEFAULT = "default"
PROJECT = "project"
PROFILE = "profile"


def default_project_id() -> str:
    """The id of the ``default`` project."""
    return str(uuid.uuid5(_NAMESPACE, "project/default"))


def default_profile_id(project_id: str) -> str:
    """The id of the ``default`` profile of one project."""
    return str(uuid.uuid5(_NAMESPACE, f"profile/{project_id}/default"))


def deterministic_event_id(aggregate_id: str, step: str, version: int) -> str:
    """An event id fixed by what the event does, for events several replicas may attempt."""
    return str(uuid.uuid5(_NAMESPACE, f"event/{aggregate_id}/{step}/{version}"))


def new_id() -> str:
    """A fresh aggregate id for a user-created object."""
    return str(uuid.uuid4())


@dataclass(frozen=True)
class CommandMeta:
    """The request's identity fields, copied onto each event it causes."""

    requestor: str = "unknown"
    correlation_id: str | None = None
    causation_id: str | None = None
    node: str = ""

    @classmethod
    def of(cls, meta: RequestMeta, node: str) -> CommandMeta:
        return cls(meta.requestor, meta.correlation_id, meta.causation_id, node)


SYSTEM = CommandMeta(requestor="warren")
#: The default of commands built without a request (tests, tools).
ANONYMOUS = CommandMeta()


def new_event(
    type_: str,
    aggregate: str,
    aggregate_id: str,
    version: int,
    project: str,
    payload: dict[str, Any],
    meta: CommandMeta,
    event_id: str | None = None,
) -> Event:
    """Build one catalog event (``event_id`` fixed only for events replicas may repeat)."""
    fields: dict[str, Any] = {
        "type": type_,
        "aggregate": aggregate,
        "aggregate_id": aggregate_id,
        "version": version,
        "project": project,
        "payload": payload,
        "requestor": meta.requestor,
        "correlation_id": meta.correlation_id,
        "causation_id": meta.causation_id,
        "node": meta.node,
    }
    if event_id is not None:
        fields["event_id"] = event_id
    return Event(**fields)


def strip_etag(if_match: str | None) -> str | None:
    """The ETag an ``If-Match`` header asks for (quotes and a weak prefix removed)."""
    if not if_match:
        return None
    value = if_match.strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"') or None


def check_etag(if_match: str | None, *parts: Any) -> None:
    """Refuse a write whose ``If-Match`` names another version (LXD's message)."""
    wanted = strip_etag(if_match)
    if wanted is None:
        return
    current = etag_of(*parts)
    if wanted != current:
        raise PreconditionFailed(f"ETag doesn't match: {current} vs {wanted}")
