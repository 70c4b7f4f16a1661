"""The instance aggregate: ``decide(state, command) -> events`` and ``evolve(state, event)``.

Both are pure. What ``decide`` needs beyond the instance (is the name taken, is it running on
the host, which profiles exist) arrives inside the command, gathered by the handler. Every
event carries the whole state after it (plus a few facts of the action, e.g. ``old_name``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from schemas import events
from schemas.envelope import Event
from schemas.errors import BadRequest, Conflict, NotFound
from services.instance.catalog import validation
from services.instance.catalog.meta import ANONYMOUS, CommandMeta, check_etag, new_event
from services.instance.instances import config as checks
from services.instance.instances.state import FROZEN, INSTANCE, RUNNING, STOPPED, InstanceState

#: The power state each state event records.
POWER_OF_EVENT = {
    events.INSTANCE_STARTED: RUNNING,
    events.INSTANCE_RESTARTED: RUNNING,
    events.INSTANCE_RESUMED: RUNNING,
    events.INSTANCE_STOPPED: STOPPED,
    events.INSTANCE_SHUTDOWN: STOPPED,
    events.INSTANCE_PAUSED: FROZEN,
}
#: Events that only record an action on the instance (its state does not change).
ACTIONS = frozenset(
    {
        events.INSTANCE_EXEC,
        events.INSTANCE_FILE_PUSHED,
        events.INSTANCE_FILE_RETRIEVED,
        events.INSTANCE_FILE_DELETED,
        events.INSTANCE_LOG_RETRIEVED,
        events.INSTANCE_LOG_DELETED,
    }
)


@dataclass(frozen=True)
class Create:
    state: InstanceState  # the instance as it will be (version 0)
    project: str
    name_taken: bool = False
    meta: CommandMeta = ANONYMOUS


@dataclass(frozen=True)
class Update:
    project: str
    mode: Literal["put", "patch"] = "put"
    fields: tuple[str, ...] = ()
    description: str = ""
    architecture: str = ""
    config: dict[str, str] = field(default_factory=dict)
    devices: dict[str, dict[str, str]] = field(default_factory=dict)
    profiles: tuple[str, ...] = ()
    ephemeral: bool = False
    if_match: str | None = None
    meta: CommandMeta = ANONYMOUS


@dataclass(frozen=True)
class Rename:
    project: str
    new_name: str
    name_taken: bool = False
    running: bool = False
    meta: CommandMeta = ANONYMOUS


@dataclass(frozen=True)
class Delete:
    project: str
    running: bool = False
    meta: CommandMeta = ANONYMOUS


@dataclass(frozen=True)
class RecordPower:
    """The host changed the instance's power state (started, stopped, paused, ...)."""

    project: str
    event_type: str
    last_used_at: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: Config keys the change consumed (``volatile.apply_template`` once a start rendered it).
    unset: tuple[str, ...] = ()
    meta: CommandMeta = ANONYMOUS


@dataclass(frozen=True)
class RecordAction:
    """An action on the instance for the audit trail (exec, file push, ...)."""

    project: str
    event_type: str
    extra: dict[str, Any] = field(default_factory=dict)
    meta: CommandMeta = ANONYMOUS


Command = Create | Update | Rename | Delete | RecordPower | RecordAction


def exists(state: InstanceState | None) -> bool:
    return state is not None and not state.deleted


def _event(
    type_: str,
    state: InstanceState,
    project: str,
    meta: CommandMeta,
    extra: dict[str, Any] | None = None,
) -> Event:
    payload = {**state.payload(), **(extra or {})}
    return new_event(type_, INSTANCE, state.id, state.version + 1, project, payload, meta)


def decide(state: InstanceState | None, command: Command) -> list[Event]:
    """The events a command causes, or the LXD error refusing it."""
    if isinstance(command, Create):
        return _create(state, command)
    if not exists(state):
        raise NotFound("Instance not found")
    assert state is not None
    if isinstance(command, Update):
        return _update(state, command)
    if isinstance(command, Rename):
        return _rename(state, command)
    if isinstance(command, Delete):
        if command.running:
            raise BadRequest("Instance is running")
        return [_event(events.INSTANCE_DELETED, state, command.project, command.meta)]
    if isinstance(command, RecordPower):
        new = replace(state, power=POWER_OF_EVENT[command.event_type])
        if command.last_used_at:
            new = replace(new, last_used_at=command.last_used_at)
        if any(key in new.config for key in command.unset):
            config = {k: v for k, v in new.config.items() if k not in command.unset}
            new = replace(new, config=config)
        return [_event(command.event_type, new, command.project, command.meta, command.extra)]
    return [_event(command.event_type, state, command.project, command.meta, command.extra)]


def _create(state: InstanceState | None, cmd: Create) -> list[Event]:
    new = cmd.state
    checks.check_name(new.name)
    checks.check_instance(new.config, new.devices)
    if exists(state) or cmd.name_taken:
        raise Conflict(f'Instance "{new.name}" already exists')
    return [_event(events.INSTANCE_CREATED, new, cmd.project, cmd.meta)]


def _update(state: InstanceState, cmd: Update) -> list[Event]:
    check_etag(
        cmd.if_match,
        state.architecture,
        state.config,
        state.devices,
        state.ephemeral,
        state.profiles,
        state.description,
    )
    if cmd.mode == "put":
        description, config, devices = cmd.description, dict(cmd.config), dict(cmd.devices)
        profiles, ephemeral = list(cmd.profiles), cmd.ephemeral
    else:
        has = cmd.fields.__contains__
        description = cmd.description if has("description") else state.description
        config = {**state.config, **cmd.config} if has("config") else dict(state.config)
        devices = {**state.devices, **cmd.devices} if has("devices") else dict(state.devices)
        profiles = list(cmd.profiles) if has("profiles") else list(state.profiles)
        ephemeral = cmd.ephemeral if has("ephemeral") else state.ephemeral
    # volatile.* keys are Warren's own bookkeeping: a PUT that drops them keeps them.
    volatile = {k: v for k, v in state.config.items() if k.startswith("volatile.")}
    config = validation.clean_config({**volatile, **config})
    checks.check_instance(config, devices)
    if cmd.architecture and cmd.architecture != state.architecture:
        raise BadRequest("Changing the architecture of an instance is not supported")
    if len(set(profiles)) != len(profiles):
        raise BadRequest("Duplicate profile found in request")
    new = replace(
        state,
        description=description,
        config=config,
        devices=devices,
        profiles=profiles,
        ephemeral=ephemeral,
    )
    return [_event(events.INSTANCE_UPDATED, new, cmd.project, cmd.meta)]


def _rename(state: InstanceState, cmd: Rename) -> list[Event]:
    checks.check_name(cmd.new_name)
    if cmd.running:
        raise BadRequest("Renaming of running container not allowed")
    if cmd.name_taken or cmd.new_name == state.name:
        raise Conflict(f'Name "{cmd.new_name}" already in use')
    new = replace(state, name=cmd.new_name)
    if not state.config.get(checks.APPLY_TEMPLATE):
        # LXD renders the image's rename templates at the next start (unless a trigger is
        # pending already: an instance renamed before its first start still gets "create").
        new = replace(new, config={**state.config, checks.APPLY_TEMPLATE: "rename"})
    extra = {"old_name": state.name}
    return [_event(events.INSTANCE_RENAMED, new, cmd.project, cmd.meta, extra)]


def evolve(state: InstanceState | None, event: Event) -> InstanceState | None:
    """Fold one instance event into the state it follows."""
    if event.type == events.INSTANCE_CREATED:
        return from_event(event)
    if state is None:
        return None
    if event.type == events.INSTANCE_DELETED:
        return replace(state, deleted=True, version=event.version)
    if event.type in ACTIONS:
        return replace(state, version=event.version)
    return from_event(event)


_FIELDS = set(InstanceState.__dataclass_fields__) - {"id", "version", "deleted"}


def from_event(event: Event) -> InstanceState:
    """The state an event describes (every instance event carries the whole state)."""
    p = event.payload
    data = {k: p[k] for k in _FIELDS if k in p}
    data["config"] = dict(data.get("config", {}))
    data["devices"] = {k: dict(d) for k, d in data.get("devices", {}).items()}
    data["profiles"] = list(data.get("profiles", []))
    return InstanceState(id=event.aggregate_id, version=event.version, **data)
