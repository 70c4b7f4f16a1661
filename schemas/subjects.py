"""Every NATS subject Warren uses is spelled here and nowhere else.

Commands and queries are core NATS request/reply; events live in the JetStream stream
``EVENTS``; exec/console bytes use ``io.<operation>.<fd>``.
"""

from __future__ import annotations

import re

EVENTS_STREAM = "EVENTS"
EVENTS_PREFIX = "events"
ALL_EVENTS = "events.>"
OPERATION_AGGREGATE = "operation"

_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")


def _token(value: str) -> str:
    """A single subject token: refuse dots, spaces and wildcards so nothing can escape its slot."""
    if not _TOKEN.match(value):
        raise ValueError(f"invalid subject token {value!r}")
    return value


def command(service: str, verb: str, node: str | None = None) -> str:
    """Subject of a command: ``<service>.<verb>`` or, node-scoped, ``<service>.<node>.<verb>``."""
    if node is None:
        return f"{_token(service)}.{_token(verb)}"
    return f"{_token(service)}.{_token(node)}.{_token(verb)}"


def query(service: str, verb: str) -> str:
    """Subject of a query (served from projections, never appends)."""
    return f"{_token(service)}.{_token(verb)}"


def event(aggregate: str, aggregate_id: str) -> str:
    """Subject holding one aggregate's events: ``events.<aggregate>.<aggregate_id>``."""
    return f"{EVENTS_PREFIX}.{_token(aggregate)}.{_token(aggregate_id)}"


def aggregate_events(aggregate: str) -> str:
    """Wildcard over every instance of one aggregate type."""
    return f"{EVENTS_PREFIX}.{_token(aggregate)}.*"


def operation(operation_id: str) -> str:
    """Subject of an LXD operation's events."""
    return event(OPERATION_AGGREGATE, operation_id)


def io(operation_id: str, fd: str) -> str:
    """Core NATS subject carrying the bytes of one exec/console file descriptor."""
    return f"io.{_token(operation_id)}.{_token(fd)}"


def stream(stream_id: str, part: int) -> str:
    """Core NATS subject of one byte stream (part ``part`` of an upload or export)."""
    return io(stream_id, str(int(part)))


def operation_cancel(operation_id: str) -> str:
    """Request sent to whichever service runs an operation, asking it to cancel."""
    return f"cancel.{_token(operation_id)}"


def parse_event(subject: str) -> tuple[str, str]:
    """Split ``events.<aggregate>.<id>`` into ``(aggregate, id)``."""
    prefix, aggregate, aggregate_id = subject.split(".", 2)
    if prefix != EVENTS_PREFIX:
        raise ValueError(f"not an event subject: {subject}")
    return aggregate, aggregate_id


# The instance service owns projects and profiles (they shape instances).
INSTANCE = "instance"
PROJECTS_CREATE = command(INSTANCE, "project-create")
PROJECTS_UPDATE = command(INSTANCE, "project-update")
PROJECTS_RENAME = command(INSTANCE, "project-rename")
PROJECTS_DELETE = command(INSTANCE, "project-delete")
PROJECTS_LIST = query(INSTANCE, "project-list")
PROJECTS_GET = query(INSTANCE, "project-get")
PROFILES_CREATE = command(INSTANCE, "profile-create")
PROFILES_UPDATE = command(INSTANCE, "profile-update")
PROFILES_RENAME = command(INSTANCE, "profile-rename")
PROFILES_DELETE = command(INSTANCE, "profile-delete")
PROFILES_LIST = query(INSTANCE, "profile-list")
PROFILES_GET = query(INSTANCE, "profile-get")
#: The history of profiles, projects and instances (``warren_history``): each service serves
#: the history of its own aggregates (IMAGE_HISTORY, STORAGE_HISTORY, NETWORK_HISTORY).
HISTORY = query(INSTANCE, "history")
HISTORY_LIST = query(INSTANCE, "history-list")

# Instances: the catalog side is cluster-scoped (any instance replica, from its projection);
# host work goes to the instance's node on ``instance.<node>.<verb>`` (instance_node()).
INSTANCES_LIST = query(INSTANCE, "instance-list")
INSTANCES_GET = query(INSTANCE, "instance-get")
INSTANCE_AGGREGATE = "instance"
INSTANCE_CREATE = "instance-create"
INSTANCE_UPDATE = "instance-update"
INSTANCE_PATCH = "instance-patch"
INSTANCE_RENAME = "instance-rename"
INSTANCE_DELETE = "instance-delete"
INSTANCE_STATE = "instance-state"
INSTANCE_STATE_PUT = "instance-state-put"
INSTANCE_EXEC = "instance-exec"
INSTANCE_FILE_GET = "instance-file-get"
INSTANCE_FILE_PUT = "instance-file-put"
INSTANCE_FILE_DELETE = "instance-file-delete"
INSTANCE_LOGS = "instance-logs"
INSTANCE_LOG_DELETE = "instance-log-delete"


def instance_node(verb: str, node: str) -> str:
    """Subject of an instance command on the node holding it: ``instance.<node>.<verb>``."""
    return command(INSTANCE, verb, node)


def exec_io(operation_id: str, fd: str) -> str:
    """One fd of an exec operation (``0``, ``1``, ``2``, ``control``): see schemas.exec_io."""
    return io(operation_id, fd)


def exec_attach(operation_id: str) -> str:
    """The gateway tells the node it holds a client's websocket for one fd of an exec."""
    return io(operation_id, "attach")

# The image service (cluster-scoped, queue group "image"): images and image aliases.
IMAGE = "image"
IMAGES_UPLOAD_BEGIN = command(IMAGE, "upload-begin")
IMAGES_EXPORT_BEGIN = command(IMAGE, "export-begin")
IMAGES_UPDATE = command(IMAGE, "image-update")
IMAGES_DELETE = command(IMAGE, "image-delete")
IMAGES_LIST = query(IMAGE, "image-list")
IMAGES_GET = query(IMAGE, "image-get")
IMAGE_ALIASES_CREATE = command(IMAGE, "alias-create")
IMAGE_ALIASES_UPDATE = command(IMAGE, "alias-update")
IMAGE_ALIASES_RENAME = command(IMAGE, "alias-rename")
IMAGE_ALIASES_DELETE = command(IMAGE, "alias-delete")
IMAGE_ALIASES_LIST = query(IMAGE, "alias-list")
IMAGE_ALIASES_GET = query(IMAGE, "alias-get")
#: The history of images and aliases (``warren_history``; same bodies as HISTORY).
IMAGE_HISTORY = query(IMAGE, "history")
IMAGE_HISTORY_LIST = query(IMAGE, "history-list")


def image_operation_alive(operation_id: str) -> str:
    """Answered by the image service process running an operation, while it runs."""
    return f"{IMAGE}.operation-alive.{_token(operation_id)}"


# The storage service is node-scoped: each node serves its own pools on
# ``storage.<node>.<verb>`` (one process per node, so every request meets the host it acts on).
STORAGE = "storage"
STORAGE_POOL_AGGREGATE = "storage-pool"
STORAGE_POOL_CREATE = "pool-create"
STORAGE_POOL_UPDATE = "pool-update"
STORAGE_POOL_DELETE = "pool-delete"
STORAGE_POOL_LIST = "pool-list"
STORAGE_POOL_GET = "pool-get"
STORAGE_POOL_RESOURCES = "pool-resources"
STORAGE_VOLUME_LIST = "volume-list"
STORAGE_VOLUME_GET = "volume-get"
#: LXD's volume state (``/volumes/<type>/<name>/state``): the usage of one volume.
STORAGE_VOLUME_STATE = "volume-state"
#: The history of this node's pools (``warren_history``; same bodies as HISTORY).
STORAGE_HISTORY = "history"
STORAGE_HISTORY_LIST = "history-list"
# Volumes the instance service asks for (node-local host work, see schemas.storage).
STORAGE_IMAGE_VOLUME_ENSURE = "image-volume-ensure"
STORAGE_INSTANCE_VOLUME_CREATE = "instance-volume-create"
STORAGE_INSTANCE_VOLUME_MOUNT = "instance-volume-mount"
STORAGE_INSTANCE_VOLUME_UNMOUNT = "instance-volume-unmount"
STORAGE_INSTANCE_VOLUME_DELETE = "instance-volume-delete"
STORAGE_INSTANCE_VOLUME_LIST = "instance-volume-list"
STORAGE_INSTANCE_VOLUME_USAGE = "instance-volume-usage"
#: The templates of an image volume (what the instance service renders into instances).
STORAGE_IMAGE_VOLUME_TEMPLATES = "image-volume-templates"


def storage(verb: str, node: str) -> str:
    """Subject of a storage command or query on one node: ``storage.<node>.<verb>``."""
    return command(STORAGE, verb, node)


# The network service is node-scoped: each node serves its own networks (bridges, their
# dnsmasq and firewall rules) on ``network.<node>.<verb>``.
NETWORK = "network"
NETWORK_AGGREGATE = "network"
NETWORK_FORWARD_AGGREGATE = "network-forward"
NETWORK_CREATE = "network-create"
NETWORK_UPDATE = "network-update"
NETWORK_RENAME = "network-rename"
NETWORK_DELETE = "network-delete"
NETWORK_LIST = "network-list"
NETWORK_GET = "network-get"
NETWORK_STATE = "network-state"
NETWORK_LEASES = "network-leases"
NETWORK_FORWARD_CREATE = "forward-create"
NETWORK_FORWARD_UPDATE = "forward-update"
NETWORK_FORWARD_DELETE = "forward-delete"
NETWORK_FORWARD_LIST = "forward-list"
NETWORK_FORWARD_GET = "forward-get"
#: The history of this node's networks (``warren_history``; same bodies as HISTORY).
NETWORK_HISTORY = "history"
NETWORK_HISTORY_LIST = "history-list"
# Asked by the instance service of the same node (schemas.networks).
NETWORK_NIC_PLUG = "nic-plug"
NETWORK_NIC_UNPLUG = "nic-unplug"


def network(verb: str, node: str) -> str:
    """Subject of a network command or query on one node: ``network.<node>.<verb>``."""
    return command(NETWORK, verb, node)
