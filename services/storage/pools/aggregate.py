"""The ``storage-pool`` aggregate: ``decide(state, command) -> events`` and ``evolve``.

Both are pure. What ``decide`` needs beyond the pool (is the name taken, what uses the pool,
the config the driver completed) arrives inside the command, gathered by the handler.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pydantic import ValidationError

from schemas import events
from schemas.envelope import Event
from schemas.errors import BadRequest, Conflict, NotFound, PreconditionFailed
from services.common.aggregate import SYSTEM, Meta, state_event
from services.storage.drivers import DRIVERS
from services.storage.pools.state import POOL, PoolState

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
#: Free-form keys a pool may carry and change, as on other LXD objects.
USER_PREFIX = "user."


@dataclass(frozen=True)
class CreatePool:
    id: str
    name: str
    node: str
    driver: str
    description: str = ""
    config: dict[str, str] = field(default_factory=dict)
    name_taken: bool = False
    event_id: str | None = None
    meta: Meta = SYSTEM


@dataclass(frozen=True)
class UpdatePool:
    mode: Literal["put", "patch"] = "put"
    description: str = ""
    config: dict[str, str] = field(default_factory=dict)
    #: For PATCH: the top-level fields the request carried.
    fields: tuple[str, ...] = ()
    if_match: str | None = None
    meta: Meta = SYSTEM


@dataclass(frozen=True)
class DeletePool:
    used_by: tuple[str, ...] = ()
    meta: Meta = SYSTEM


Command = CreatePool | UpdatePool | DeletePool


def exists(state: PoolState | None) -> bool:
    return state is not None and not state.deleted


def check_name(name: str) -> None:
    """LXD's checks of a new pool's name, plus: it must be usable as a directory name."""
    if not name:
        raise BadRequest("No name provided")
    if "/" in name:
        raise BadRequest("Storage pool names may not contain slashes")
    if not _NAME.match(name):
        raise BadRequest(f"Invalid storage pool name {name!r}")


def check_config(driver: str, config: dict[str, str]) -> None:
    """Refuse unknown keys and bad values (the driver's config model decides its keys)."""
    if not driver:
        raise BadRequest("No driver provided")
    cls = DRIVERS.get(driver)
    if cls is None:
        raise BadRequest("Unknown driver")
    own = {k: v for k, v in config.items() if not k.startswith(USER_PREFIX)}
    known = set(cls.config_model.model_fields)
    for key in sorted(own):
        if key not in known:
            raise BadRequest(f'Invalid option "{key}"')
    try:
        cls.config_model.model_validate(own)
    except ValidationError as exc:
        raise BadRequest(f"Invalid {driver} pool config: {exc.errors()[0]['msg']}") from None


def _event(
    type_: str, state: PoolState, meta: Meta, event_id: str | None = None, **extra: Any
) -> Event:
    payload = {**state.payload(), **extra}
    return state_event(type_, POOL, state.id, state.version, payload, meta, state.node, event_id)


def decide(state: PoolState | None, command: Command) -> list[Event]:
    """The events a command causes, or the LXD error refusing it."""
    if isinstance(command, CreatePool):
        return _create(state, command)
    if not exists(state):
        raise NotFound("Storage pool not found")
    assert state is not None
    if isinstance(command, UpdatePool):
        return _update(state, command)
    return _delete(state, command)


def _create(state: PoolState | None, cmd: CreatePool) -> list[Event]:
    check_name(cmd.name)
    check_config(cmd.driver, cmd.config)
    if exists(state) or cmd.name_taken:
        raise Conflict("Storage pool already exists")
    version = state.version if state is not None else 0
    new = PoolState(
        cmd.id, cmd.name, cmd.node, cmd.driver, cmd.description, dict(cmd.config), version
    )
    return [_event(events.STORAGE_POOL_CREATED, new, cmd.meta, cmd.event_id)]


def _update(state: PoolState, cmd: UpdatePool) -> list[Event]:
    if cmd.if_match and cmd.if_match.strip('"') != state.etag:
        raise PreconditionFailed(f"ETag doesn't match: {state.etag} vs {cmd.if_match}")
    if cmd.mode == "put":
        description, config = cmd.description, dict(cmd.config)
        # A PUT that leaves out the driver's own keys (source, size) keeps them: they are
        # fixed at creation, and LXD's clients send back what GET gave them anyway.
        for key, value in state.config.items():
            if not key.startswith(USER_PREFIX):
                config.setdefault(key, value)
    else:
        description = cmd.description if "description" in cmd.fields else state.description
        config = {**state.config, **cmd.config} if "config" in cmd.fields else dict(state.config)
    config = {k: v for k, v in config.items() if v != ""}  # an empty value unsets
    check_config(state.driver, config)
    for key in sorted(set(config) | set(state.config)):
        if key.startswith(USER_PREFIX):
            continue
        if config.get(key) != state.config.get(key):
            raise BadRequest(f'Storage pool property "{key}" cannot be changed')
    new = replace(state, description=description, config=config)
    if new == state:
        return []
    return [_event(events.STORAGE_POOL_UPDATED, new, cmd.meta)]


def _delete(state: PoolState, cmd: DeletePool) -> list[Event]:
    if cmd.used_by:
        raise BadRequest("The storage pool is currently in use")
    return [_event(events.STORAGE_POOL_DELETED, state, cmd.meta)]


def evolve(state: PoolState | None, event: Event) -> PoolState | None:
    """Fold one pool event into the state it follows."""
    if event.type in (events.STORAGE_POOL_CREATED, events.STORAGE_POOL_UPDATED):
        return from_event(event)
    if state is None:
        return None
    if event.type == events.STORAGE_POOL_DELETED:
        return replace(state, deleted=True, version=event.version)
    return state


def from_event(event: Event) -> PoolState:
    """Every pool event carries the whole pool."""
    p = event.payload
    return PoolState(
        id=event.aggregate_id,
        name=p["name"],
        node=p.get("node", event.node),
        driver=p["driver"],
        description=p.get("description", ""),
        config=dict(p.get("config", {})),
        version=event.version,
    )
