"""The profile aggregate: ``decide(state, command) -> events`` and ``evolve(state, event)``.

Both are pure. Everything ``decide`` needs to know beyond the profile itself (is the name
taken, who uses the profile) arrives inside the command, gathered by the handler from the
projection it has just brought up to date.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from schemas import events
from schemas.envelope import Event
from schemas.errors import Conflict, Forbidden, NotFound
from services.instance.catalog import validation
from services.instance.catalog.meta import (
    ANONYMOUS,
    DEFAULT,
    PROFILE,
    CommandMeta,
    check_etag,
    new_event,
)
from services.instance.catalog.state import ProfileState


@dataclass(frozen=True)
class CreateProfile:
    id: str
    project_id: str
    project: str
    name: str
    description: str = ""
    config: dict[str, str] = field(default_factory=dict)
    devices: dict[str, dict[str, str]] = field(default_factory=dict)
    name_taken: bool = False
    #: Set for a project's ``default`` profile, which the service creates itself.
    event_id: str | None = None
    meta: CommandMeta = ANONYMOUS


@dataclass(frozen=True)
class UpdateProfile:
    project: str
    mode: Literal["put", "patch"] = "put"
    description: str = ""
    config: dict[str, str] = field(default_factory=dict)
    devices: dict[str, dict[str, str]] = field(default_factory=dict)
    #: For PATCH: the top-level fields the request carried.
    fields: tuple[str, ...] = ()
    if_match: str | None = None
    meta: CommandMeta = ANONYMOUS


@dataclass(frozen=True)
class RenameProfile:
    project: str
    new_name: str
    name_taken: bool = False
    meta: CommandMeta = ANONYMOUS


@dataclass(frozen=True)
class DeleteProfile:
    project: str
    used_by: tuple[str, ...] = ()
    #: The service removes a project's ``default`` profile along with the project.
    system: bool = False
    event_id: str | None = None
    meta: CommandMeta = ANONYMOUS


Command = CreateProfile | UpdateProfile | RenameProfile | DeleteProfile


def exists(state: ProfileState | None) -> bool:
    return state is not None and not state.deleted


def _event(
    type_: str,
    state: ProfileState,
    project: str,
    meta: CommandMeta,
    extra: dict[str, str] | None = None,
    event_id: str | None = None,
) -> Event:
    payload = {"name": state.name, "project_id": state.project_id, **state.writable()}
    payload.update(extra or {})
    return new_event(type_, PROFILE, state.id, state.version + 1, project, payload, meta, event_id)


def decide(state: ProfileState | None, command: Command) -> list[Event]:
    """The events a command causes, or the LXD error refusing it."""
    if isinstance(command, CreateProfile):
        return _create(state, command)
    if not exists(state):
        raise NotFound("Profile not found")
    assert state is not None
    if isinstance(command, UpdateProfile):
        return _update(state, command)
    if isinstance(command, RenameProfile):
        return _rename(state, command)
    return _delete(state, command)


def _create(state: ProfileState | None, cmd: CreateProfile) -> list[Event]:
    validation.check_profile_name(cmd.name)
    config = validation.clean_config(cmd.config)
    validation.check_profile(config, cmd.devices)
    if exists(state) or cmd.name_taken:
        raise Conflict(f'Error inserting "{cmd.name}" into database: The profile already exists')
    version = state.version if state is not None else 0
    new = ProfileState(
        cmd.id, cmd.project_id, cmd.name, cmd.description, config, cmd.devices, version
    )
    return [_event(events.PROFILE_CREATED, new, cmd.project, cmd.meta, event_id=cmd.event_id)]


def _update(state: ProfileState, cmd: UpdateProfile) -> list[Event]:
    check_etag(cmd.if_match, state.config, state.description, state.devices)
    if cmd.mode == "put":
        description, config, devices = cmd.description, dict(cmd.config), dict(cmd.devices)
    else:
        # LXD's PATCH: description replaced if sent, config keys merged (an empty value
        # unsets), devices merged by name (a sent device replaces the whole device).
        description = cmd.description if "description" in cmd.fields else state.description
        config = {**state.config, **cmd.config} if "config" in cmd.fields else state.config
        devices = {**state.devices, **cmd.devices} if "devices" in cmd.fields else state.devices
    config = validation.clean_config(config)
    validation.check_profile(config, devices)
    new = replace(state, description=description, config=config, devices=devices)
    return [_event(events.PROFILE_UPDATED, new, cmd.project, cmd.meta)]


def _rename(state: ProfileState, cmd: RenameProfile) -> list[Event]:
    if state.name == DEFAULT:
        raise Forbidden('The "default" profile cannot be renamed')
    validation.check_profile_name(cmd.new_name)
    if cmd.name_taken or cmd.new_name == state.name:
        raise Conflict(f'Name "{cmd.new_name}" already in use')
    new = replace(state, name=cmd.new_name)
    return [_event(events.PROFILE_RENAMED, new, cmd.project, cmd.meta, {"old_name": state.name})]


def _delete(state: ProfileState, cmd: DeleteProfile) -> list[Event]:
    if state.name == DEFAULT and not cmd.system:
        raise Forbidden('The "default" profile cannot be deleted')
    if cmd.used_by:
        raise Conflict("Profile is currently in use")
    return [_event(events.PROFILE_DELETED, state, cmd.project, cmd.meta, event_id=cmd.event_id)]


def evolve(state: ProfileState | None, event: Event) -> ProfileState | None:
    """Fold one profile event into the state it follows."""
    if event.type == events.PROFILE_CREATED:
        return from_event(event)
    if state is None:
        return None  # an event of an aggregate we never saw created: nothing to fold into
    if event.type in (events.PROFILE_UPDATED, events.PROFILE_RENAMED):
        return from_event(event)
    if event.type == events.PROFILE_DELETED:
        return replace(state, deleted=True, version=event.version)
    return state


def from_event(event: Event) -> ProfileState:
    """The live state an event describes: every profile event carries the whole state."""
    p = event.payload
    return ProfileState(
        id=event.aggregate_id,
        project_id=p["project_id"],
        name=p["name"],
        description=p.get("description", ""),
        config=dict(p.get("config", {})),
        devices={k: dict(d) for k, d in p.get("devices", {}).items()},
        version=event.version,
    )
