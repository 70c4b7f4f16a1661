"""``/1.0/profiles``: LXD profiles, owned by the instance service."""

from __future__ import annotations

from gateway.crud import Family
from schemas import subjects
from schemas.catalog import CreateProfile, UpdateProfile

EXTENSIONS: tuple[str, ...] = ("profile_usedby", "entity_description")

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
)

routes = PROFILES.routes()
