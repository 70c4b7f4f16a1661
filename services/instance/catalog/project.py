"""The project aggregate: ``decide(state, command) -> events`` and ``evolve(state, event)``.

Pure, like :mod:`profile`. Whether a project is empty (it holds nothing but its own
``default`` profile) and what its limits count arrive in the command; creating or removing
that default profile when ``features.profiles`` changes is the handler's follow-up, since it
is another aggregate. Limits and restrictions: :mod:`limits`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from schemas import events
from schemas.envelope import Event
from schemas.errors import BadRequest, Conflict, Forbidden, NotFound
from services.instance.catalog import limits, validation
from services.instance.catalog.keys import ALL_PROJECT_FEATURES, PROJECT_FEATURE_DEFAULTS
from services.instance.catalog.meta import (
    ANONYMOUS,
    DEFAULT,
    PROJECT,
    CommandMeta,
    check_etag,
    new_event,
)
from services.instance.catalog.state import ProjectState
from services.instance.catalog.values import is_false, is_true


@dataclass(frozen=True)
class CreateProject:
    id: str
    name: str
    description: str = ""
    config: dict[str, str] = field(default_factory=dict)
    name_taken: bool = False
    #: Only for the ``default`` project, which the service creates itself.
    system: bool = False
    event_id: str | None = None
    meta: CommandMeta = ANONYMOUS


@dataclass(frozen=True)
class UpdateProject:
    mode: Literal["put", "patch"] = "put"
    description: str = ""
    config: dict[str, str] = field(default_factory=dict)
    fields: tuple[str, ...] = ()
    if_match: str | None = None
    empty: bool = True
    #: What the project holds that its count limits apply to.
    usage: limits.Usage = field(default_factory=limits.Usage)
    meta: CommandMeta = ANONYMOUS


@dataclass(frozen=True)
class RenameProject:
    new_name: str
    name_taken: bool = False
    empty: bool = True
    meta: CommandMeta = ANONYMOUS


@dataclass(frozen=True)
class DeleteProject:
    empty: bool = True
    meta: CommandMeta = ANONYMOUS


Command = CreateProject | UpdateProject | RenameProject | DeleteProject


def exists(state: ProjectState | None) -> bool:
    return state is not None and not state.deleted


def _event(
    type_: str,
    state: ProjectState,
    meta: CommandMeta,
    extra: dict[str, str] | None = None,
    event_id: str | None = None,
) -> Event:
    payload = {"name": state.name, **state.writable(), **(extra or {})}
    # LXD files a project's own lifecycle events under that project (its name after the event).
    return new_event(
        type_, PROJECT, state.id, state.version + 1, state.name, payload, meta, event_id
    )


def decide(state: ProjectState | None, command: Command) -> list[Event]:
    """The events a command causes, or the LXD error refusing it."""
    if isinstance(command, CreateProject):
        return _create(state, command)
    if not exists(state):
        raise NotFound("Project not found")
    assert state is not None
    if isinstance(command, UpdateProject):
        return _update(state, command)
    if isinstance(command, RenameProject):
        return _rename(state, command)
    return _delete(state, command)


def _create(state: ProjectState | None, cmd: CreateProject) -> list[Event]:
    validation.check_project_name(cmd.name)
    config = validation.clean_config(cmd.config)
    validation.check_project(config)
    if not cmd.system:
        limits.check_supported(cmd.name, {}, config)
    taken = exists(state) or cmd.name_taken or (cmd.name == DEFAULT and not cmd.system)
    if taken:
        raise Conflict(
            f'Failed creating project "{cmd.name}": Failed adding database record: '
            'This "projects" entry already exists'
        )
    # LXD 5.0 gives a new project every feature its creator did not mention (but networks).
    config = {**PROJECT_FEATURE_DEFAULTS, **config} if not cmd.system else config
    new = ProjectState(cmd.id, cmd.name, cmd.description, config, version=0)
    return [_event(events.PROJECT_CREATED, new, cmd.meta, event_id=cmd.event_id)]


def _update(state: ProjectState, cmd: UpdateProject) -> list[Event]:
    check_etag(cmd.if_match, state.description, state.config)
    if cmd.mode == "put":
        description, config = cmd.description, dict(cmd.config)
    else:
        description = cmd.description if "description" in cmd.fields else state.description
        config = {**state.config, **cmd.config} if "config" in cmd.fields else state.config
    config = validation.clean_config(config)
    validation.check_project(config)
    _check_features(state, config, cmd.empty)
    limits.check_supported(state.name, state.config, config)
    limits.check_limit_changes(state.name, state.config, config, cmd.usage)
    new = replace(state, description=description, config=config)
    return [_event(events.PROJECT_UPDATED, new, cmd.meta)]


def _check_features(state: ProjectState, config: dict[str, str], empty: bool) -> None:
    if state.name == DEFAULT:
        if any(state.config.get(k) != config.get(k) for k in ALL_PROJECT_FEATURES):
            raise BadRequest("You can't change the features of the default project")
        return
    if empty:
        return
    for key in ALL_PROJECT_FEATURES:
        old = state.config.get(key)
        if old == config.get(key):
            continue
        # As LXD: a changed feature that was on is being disabled; one that said "false" is
        # being enabled, which no feature may be on a non-empty project.
        if is_true(old):
            raise BadRequest(f'Project feature "{key}" cannot be disabled on non-empty projects')
        if is_false(old):
            raise BadRequest(f'Project feature "{key}" cannot be enabled on non-empty projects')


def _rename(state: ProjectState, cmd: RenameProject) -> list[Event]:
    if state.name == DEFAULT:
        raise Forbidden("The 'default' project cannot be renamed")
    validation.check_project_name(cmd.new_name)
    if cmd.name_taken or cmd.new_name in (state.name, DEFAULT):
        raise Conflict(f'A project named "{cmd.new_name}" already exists')
    if not cmd.empty:
        raise Conflict("Only empty projects can be renamed")
    new = replace(state, name=cmd.new_name)
    return [_event(events.PROJECT_RENAMED, new, cmd.meta, {"old_name": state.name})]


def _delete(state: ProjectState, cmd: DeleteProject) -> list[Event]:
    if state.name == DEFAULT:
        raise Forbidden("The 'default' project cannot be deleted")
    if not cmd.empty:
        raise Conflict("Only empty projects can be removed")
    return [_event(events.PROJECT_DELETED, state, cmd.meta)]


def has_profiles(state: ProjectState) -> bool:
    """Whether the project keeps its own profiles (else it uses the default project's)."""
    return state.name == DEFAULT or is_true(state.config.get("features.profiles"))


def evolve(state: ProjectState | None, event: Event) -> ProjectState | None:
    """Fold one project event into the state it follows."""
    if event.type == events.PROJECT_CREATED:
        return from_event(event)
    if state is None:
        return None
    if event.type in (events.PROJECT_UPDATED, events.PROJECT_RENAMED):
        return from_event(event)
    if event.type == events.PROJECT_DELETED:
        return replace(state, deleted=True, version=event.version)
    return state


def from_event(event: Event) -> ProjectState:
    """The live state an event describes: every project event carries the whole state."""
    p = event.payload
    return ProjectState(
        id=event.aggregate_id,
        name=p["name"],
        description=p.get("description", ""),
        config=limits.without_networks_feature(p["name"], dict(p.get("config", {}))),
        version=event.version,
    )
