"""The objects that always exist, created idempotently by whichever replica gets there first.

These work from the log itself (``EventStore.last``), not from the projection, so they can
run before the projection has caught up, and two replicas starting at once agree: ids and
event ids are deterministic and every append carries the expected sequence.
"""

from __future__ import annotations

import logging

from schemas import events, subjects
from services.common.eventstore import EventStore, WrongSequence
from services.instance.catalog import profile as profile_agg
from services.instance.catalog import project as project_agg
from services.instance.catalog.keys import ALL_PROJECT_FEATURES
from services.instance.catalog.meta import (
    DEFAULT,
    PROFILE,
    PROJECT,
    SYSTEM,
    CommandMeta,
    default_profile_id,
    default_project_id,
    deterministic_event_id,
)
from services.instance.catalog.projection import CatalogProjection
from services.instance.catalog.state import ProfileState

log = logging.getLogger(__name__)

DEFAULT_PROJECT_DESCRIPTION = "Default LXD project"
DEFAULT_PROFILE_DESCRIPTION = "Default LXD profile"


async def ensure_default_project(store: EventStore) -> None:
    """Create the ``default`` project (with its ``default`` profile) unless the log has it."""
    agg_id = default_project_id()
    if await store.last(subjects.event(PROJECT, agg_id)) is None:
        command = project_agg.CreateProject(
            id=agg_id,
            name=DEFAULT,
            description=DEFAULT_PROJECT_DESCRIPTION,
            config={key: "true" for key in ALL_PROJECT_FEATURES},
            system=True,
            event_id=deterministic_event_id(agg_id, "created", 1),
            meta=SYSTEM,
        )
        try:
            await store.append(project_agg.decide(None, command), expected_seq=0)
            log.info("created the default project")
        except WrongSequence:
            pass  # another replica created it first: same object
    await ensure_default_profile(store, agg_id, DEFAULT, SYSTEM)


async def ensure_default_profile(
    store: EventStore, project_id: str, project: str, meta: CommandMeta
) -> None:
    """Give a project its ``default`` profile (again, if an earlier one was removed)."""
    agg_id = default_profile_id(project_id)
    last = await store.last(subjects.event(PROFILE, agg_id))
    if last is not None and last.event.type != events.PROFILE_DELETED:
        return
    version = last.event.version if last is not None else 0
    tombstone = ProfileState(agg_id, project_id, DEFAULT, version=version, deleted=True)
    description = DEFAULT_PROFILE_DESCRIPTION
    if project != DEFAULT:
        description += f" for project {project}"
    command = profile_agg.CreateProfile(
        id=agg_id,
        project_id=project_id,
        project=project,
        name=DEFAULT,
        description=description,
        event_id=deterministic_event_id(agg_id, "created", version + 1),
        meta=meta,
    )
    try:
        created = profile_agg.decide(tombstone if last else None, command)
        await store.append(created, expected_seq=last.seq if last else 0)
    except WrongSequence:
        pass  # created concurrently by another replica or request


async def remove_default_profile(
    store: EventStore, project_id: str, project: str, meta: CommandMeta
) -> None:
    """Remove a project's ``default`` profile (the project is gone or stopped using its own
    profiles)."""
    agg_id = default_profile_id(project_id)
    for _ in range(8):
        last = await store.last(subjects.event(PROFILE, agg_id))
        if last is None or last.event.type == events.PROFILE_DELETED:
            return
        state = profile_agg.from_event(last.event)
        command = profile_agg.DeleteProfile(
            project=project,
            system=True,
            event_id=deterministic_event_id(agg_id, "deleted", last.event.version + 1),
            meta=meta,
        )
        try:
            await store.append(profile_agg.decide(state, command), expected_seq=last.seq)
            return
        except WrongSequence:
            continue


async def reconcile(store: EventStore, projection: CatalogProjection) -> None:
    """Repair what a crash between two appends may leave: a project using its own profiles
    without its ``default`` profile, or profiles left behind by a deleted project."""
    for project in list(projection.projects.values()):
        if project.deleted:
            continue
        if project_agg.has_profiles(project) and projection.profile(project.id, DEFAULT) is None:
            log.info("reconcile: project %s lacks its default profile", project.name)
            await ensure_default_profile(store, project.id, project.name, SYSTEM)
    for profile in list(projection.profiles.values()):
        owner = projection.projects.get(profile.project_id)
        if profile.deleted or (owner is not None and not owner.deleted):
            continue
        log.info("reconcile: removing profile %s of a deleted project", profile.name)
        name = owner.name if owner is not None else DEFAULT
        if profile.name == DEFAULT:
            await remove_default_profile(store, profile.project_id, name, SYSTEM)
