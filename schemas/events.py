"""Versioned event payloads and the upcasting hook.

A published event is never edited in place. When a payload's shape changes, bump its
``schema_version`` and register an upcaster that lifts the old shape to the new one; readers
always see the newest shape.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from schemas.envelope import Event

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

CURRENT_VERSION: dict[str, int] = {}
_UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def register(event_type: str, version: int = 1) -> None:
    """Declare the current schema version of an event type."""
    CURRENT_VERSION[event_type] = version


def upcaster(event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Register a function lifting ``event_type`` payloads from ``from_version`` to the next."""

    def wrap(fn: Upcaster) -> Upcaster:
        _UPCASTERS[(event_type, from_version)] = fn
        return fn

    return wrap


def upcast(event: Event) -> Event:
    """Bring an event's payload up to the current schema version of its type."""
    target = CURRENT_VERSION.get(event.type, event.schema_version)
    if event.schema_version >= target:
        return event
    # Upcasters get a copy: the stored event is never edited in place.
    payload, version = copy.deepcopy(event.payload), event.schema_version
    while version < target:
        step = _UPCASTERS.get((event.type, version))
        if step is None:
            raise ValueError(f"no upcaster for {event.type} v{version}")
        payload, version = step(payload), version + 1
    return event.model_copy(update={"payload": payload, "schema_version": version})


# Event types of the catalog (projects and profiles), reusing LXD lifecycle action names.
PROJECT_CREATED = "project-created"
PROJECT_UPDATED = "project-updated"
PROJECT_RENAMED = "project-renamed"
PROJECT_DELETED = "project-deleted"
PROFILE_CREATED = "profile-created"
PROFILE_UPDATED = "profile-updated"
PROFILE_RENAMED = "profile-renamed"
PROFILE_DELETED = "profile-deleted"
NAME_CLAIMED = "name-claimed"
NAME_RELEASED = "name-released"
OPERATION_CREATED = "operation-created"
OPERATION_UPDATED = "operation-updated"
OPERATION_CANCEL_REQUESTED = "operation-cancel-requested"
# Images and image aliases (the image service); payload "name" is the fingerprint/alias name.
IMAGE_CREATED = "image-created"
IMAGE_UPDATED = "image-updated"
IMAGE_DELETED = "image-deleted"
IMAGE_ALIAS_CREATED = "image-alias-created"
IMAGE_ALIAS_UPDATED = "image-alias-updated"
IMAGE_ALIAS_RENAMED = "image-alias-renamed"
IMAGE_ALIAS_DELETED = "image-alias-deleted"

for _type in (
    PROJECT_CREATED,
    PROJECT_UPDATED,
    PROJECT_RENAMED,
    PROJECT_DELETED,
    PROFILE_CREATED,
    PROFILE_UPDATED,
    PROFILE_RENAMED,
    PROFILE_DELETED,
    NAME_CLAIMED,
    NAME_RELEASED,
    OPERATION_CREATED,
    OPERATION_UPDATED,
    OPERATION_CANCEL_REQUESTED,
    IMAGE_CREATED,
    IMAGE_UPDATED,
    IMAGE_DELETED,
    IMAGE_ALIAS_CREATED,
    IMAGE_ALIAS_UPDATED,
    IMAGE_ALIAS_RENAMED,
    IMAGE_ALIAS_DELETED,
):
    register(_type)

# Events that become LXD lifecycle events on /1.0/events; value = LXD source path template.
LIFECYCLE_SOURCES: dict[str, str] = {
    PROJECT_CREATED: "/1.0/projects/{name}",
    PROJECT_UPDATED: "/1.0/projects/{name}",
    PROJECT_RENAMED: "/1.0/projects/{name}",
    PROJECT_DELETED: "/1.0/projects/{name}",
    PROFILE_CREATED: "/1.0/profiles/{name}",
    PROFILE_UPDATED: "/1.0/profiles/{name}",
    PROFILE_RENAMED: "/1.0/profiles/{name}",
    PROFILE_DELETED: "/1.0/profiles/{name}",
    IMAGE_CREATED: "/1.0/images/{name}",
    IMAGE_UPDATED: "/1.0/images/{name}",
    IMAGE_DELETED: "/1.0/images/{name}",
    IMAGE_ALIAS_CREATED: "/1.0/images/aliases/{name}",
    IMAGE_ALIAS_UPDATED: "/1.0/images/aliases/{name}",
    IMAGE_ALIAS_RENAMED: "/1.0/images/aliases/{name}",
    IMAGE_ALIAS_DELETED: "/1.0/images/aliases/{name}",
}

# Storage pools (aggregate "storage-pool", owned by the node's storage service). Payloads carry
# the whole pool: name, node, driver, description, config (as completed by the driver).
STORAGE_POOL_CREATED = "storage-pool-created"
STORAGE_POOL_UPDATED = "storage-pool-updated"
STORAGE_POOL_DELETED = "storage-pool-deleted"
for _type in (STORAGE_POOL_CREATED, STORAGE_POOL_UPDATED, STORAGE_POOL_DELETED):
    register(_type)
    LIFECYCLE_SOURCES[_type] = "/1.0/storage-pools/{name}"

# Instances (aggregate "instance", owned by the instance service of the node holding them).
# Payloads carry the whole writable state plus "name"; state events carry "name" too.
INSTANCE_CREATED = "instance-created"
INSTANCE_UPDATED = "instance-updated"
INSTANCE_RENAMED = "instance-renamed"
INSTANCE_DELETED = "instance-deleted"
INSTANCE_STARTED = "instance-started"
INSTANCE_STOPPED = "instance-stopped"
INSTANCE_SHUTDOWN = "instance-shutdown"
INSTANCE_RESTARTED = "instance-restarted"
INSTANCE_PAUSED = "instance-paused"
INSTANCE_RESUMED = "instance-resumed"
# Host actions recorded for the audit trail and lifecycle events (no state change).
INSTANCE_EXEC = "instance-exec"
INSTANCE_FILE_PUSHED = "instance-file-pushed"
INSTANCE_FILE_RETRIEVED = "instance-file-retrieved"
INSTANCE_FILE_DELETED = "instance-file-deleted"
INSTANCE_LOG_RETRIEVED = "instance-log-retrieved"
INSTANCE_LOG_DELETED = "instance-log-deleted"
for _type in (
    INSTANCE_CREATED,
    INSTANCE_UPDATED,
    INSTANCE_RENAMED,
    INSTANCE_DELETED,
    INSTANCE_STARTED,
    INSTANCE_STOPPED,
    INSTANCE_SHUTDOWN,
    INSTANCE_RESTARTED,
    INSTANCE_PAUSED,
    INSTANCE_RESUMED,
    INSTANCE_EXEC,
    INSTANCE_FILE_PUSHED,
    INSTANCE_FILE_RETRIEVED,
    INSTANCE_FILE_DELETED,
    INSTANCE_LOG_RETRIEVED,
    INSTANCE_LOG_DELETED,
):
    register(_type)
    LIFECYCLE_SOURCES[_type] = "/1.0/instances/{name}"

# Networks (aggregate "network", owned by the network service of the node holding them).
# The network Warren makes on a node's first start carries ``"default": true``.
NETWORK_CREATED = "network-created"
NETWORK_UPDATED = "network-updated"
NETWORK_RENAMED = "network-renamed"
NETWORK_DELETED = "network-deleted"
for _type in (NETWORK_CREATED, NETWORK_UPDATED, NETWORK_RENAMED, NETWORK_DELETED):
    register(_type)
    LIFECYCLE_SOURCES[_type] = "/1.0/networks/{name}"
# An instance nic joined or left the network (its DHCP/DNS entry); not LXD lifecycle events.
NETWORK_NIC_PLUGGED = "network-nic-plugged"
NETWORK_NIC_UNPLUGGED = "network-nic-unplugged"
register(NETWORK_NIC_PLUGGED)
register(NETWORK_NIC_UNPLUGGED)

# Network forwards (aggregate "network-forward"; ``name`` is the listen address, the payload
# also names the network).
NETWORK_FORWARD_CREATED = "network-forward-created"
NETWORK_FORWARD_UPDATED = "network-forward-updated"
NETWORK_FORWARD_DELETED = "network-forward-deleted"
for _type in (NETWORK_FORWARD_CREATED, NETWORK_FORWARD_UPDATED, NETWORK_FORWARD_DELETED):
    register(_type)
    LIFECYCLE_SOURCES[_type] = "/1.0/networks/{network}/forwards/{name}"
