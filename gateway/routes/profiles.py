"""``/1.0/profiles``: LXD profiles, owned by the instance service.

A project without ``features.profiles`` uses the default project's profiles: as in LXD, the
URLs of those (list, ``Location``) carry no ``?project=``.
"""

from __future__ import annotations

from aiohttp import web

from gateway import context
from gateway.crud import Family
from gateway.state import state
from schemas import subjects
from schemas.catalog import ByName, CreateProfile, ObjectResult, UpdateProfile
from schemas.messages import RequestMeta

EXTENSIONS: tuple[str, ...] = ("profile_usedby", "entity_description")

#: LXD's spellings of true (``shared.IsTrue``).
_TRUE = ("true", "1", "yes", "on")


async def profile_home(request: web.Request, meta: RequestMeta) -> str:
    """The project whose profiles the request's project uses."""
    if meta.project == context.DEFAULT_PROJECT:
        return meta.project
    query = ByName(name=meta.project).model_dump()
    found = await state(request).bus.request(subjects.PROJECTS_GET, query, meta)
    config = ObjectResult.model_validate(found).object.get("config") or {}
    if str(config.get("features.profiles", "")).lower() in _TRUE:
        return meta.project
    return context.DEFAULT_PROJECT


PROFILES = Family(
    collection="profiles",
    create_subject=subjects.PROFILES_CREATE,
    update_subject=subjects.PROFILES_UPDATE,
    rename_subject=subjects.PROFILES_RENAME,
    delete_subject=subjects.PROFILES_DELETE,
    list_subject=subjects.PROFILES_LIST,
    get_subject=subjects.PROFILES_GET,
    create_model=CreateProfile,
    update_model=UpdateProfile,
    writable=("description", "config", "devices"),
    home=profile_home,
)

routes = PROFILES.routes()
