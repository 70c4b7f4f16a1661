"""The image-alias aggregate: pure ``decide`` and ``evolve``.

Name uniqueness across aliases of a project is enforced by the handler through the
NameRegistry; what ``decide`` needs beyond the alias (does the target exist, is the new name
taken) arrives inside the command.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from schemas import events
from schemas.envelope import Event
from schemas.errors import BadRequest, Conflict, NotFound, PreconditionFailed
from schemas.messages import RequestMeta
from services.image.images.state import ALIAS, AliasState, new_event


@dataclass(frozen=True)
class CreateAlias:
    alias: AliasState
    project: str
    meta: RequestMeta
    name_taken: bool = False
    node: str = ""


@dataclass(frozen=True)
class UpdateAlias:
    project: str
    meta: RequestMeta
    mode: Literal["put", "patch"]
    target: str
    description: str
    fields: tuple[str, ...] = ()
    node: str = ""


@dataclass(frozen=True)
class RenameAlias:
    project: str
    meta: RequestMeta
    new_name: str
    name_taken: bool = False
    node: str = ""


@dataclass(frozen=True)
class DeleteAlias:
    project: str
    meta: RequestMeta
    node: str = ""


Command = CreateAlias | UpdateAlias | RenameAlias | DeleteAlias


def check_name(name: str) -> None:
    """LXD refuses empty alias names and names with a slash."""
    if not name:
        raise BadRequest("Alias name missing")
    if "/" in name:
        raise BadRequest("Alias names may not contain slashes")


def _event(type_: str, state: AliasState, cmd: Command, old_name: str | None = None) -> Event:
    payload = state.payload()
    if old_name is not None:
        payload["old_name"] = old_name
    return new_event(
        type_, ALIAS, state.id, state.version + 1, cmd.project, payload, cmd.meta, cmd.node
    )


def decide(state: AliasState | None, cmd: Command) -> list[Event]:
    """The events a command causes, or the LXD error refusing it."""
    if isinstance(cmd, CreateAlias):
        check_name(cmd.alias.name)
        if cmd.name_taken:
            raise Conflict("Alias already exists")
        return [_event(events.IMAGE_ALIAS_CREATED, cmd.alias, cmd)]
    if state is None or state.deleted:
        raise NotFound("Image alias not found")
    if isinstance(cmd, UpdateAlias):
        wanted = cmd.meta.if_match.strip().strip('"') if cmd.meta.if_match else None
        if wanted and wanted != state.etag:
            raise PreconditionFailed(f"ETag doesn't match: {state.etag} vs {wanted}")
        target = cmd.target if cmd.mode == "put" or "target" in cmd.fields else state.target
        description = cmd.description
        if cmd.mode == "patch" and "description" not in cmd.fields:
            description = state.description
        new = replace(state, target=target, description=description)
        return [_event(events.IMAGE_ALIAS_UPDATED, new, cmd)]
    if isinstance(cmd, RenameAlias):
        check_name(cmd.new_name)
        if cmd.name_taken or cmd.new_name == state.name:
            raise Conflict("Alias already exists")
        new = replace(state, name=cmd.new_name)
        return [_event(events.IMAGE_ALIAS_RENAMED, new, cmd, old_name=state.name)]
    return [_event(events.IMAGE_ALIAS_DELETED, state, cmd)]


def evolve(state: AliasState | None, event: Event) -> AliasState | None:
    """Fold one alias event into the state it follows."""
    if event.type in (
        events.IMAGE_ALIAS_CREATED,
        events.IMAGE_ALIAS_UPDATED,
        events.IMAGE_ALIAS_RENAMED,
    ):
        return AliasState.from_event(event)
    if event.type == events.IMAGE_ALIAS_DELETED and state is not None:
        return replace(state, deleted=True, version=event.version)
    return state
