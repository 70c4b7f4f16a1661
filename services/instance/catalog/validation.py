"""Input checks for projects and profiles, phrased as LXD 5.0 phrases them.

Pure functions: they raise :class:`BadRequest` and never touch state, so a refused request
appends nothing.
"""

from __future__ import annotations

from schemas.errors import BadRequest
from services.instance.catalog.devices import check_devices
from services.instance.catalog.keys import check_profile_config, check_project_config


def check_profile_name(name: str) -> None:
    """LXD's profile name rules."""
    if name == "":
        raise BadRequest("No name provided")
    if "/" in name:
        raise BadRequest("Profile names may not contain slashes")
    if name in (".", ".."):
        raise BadRequest(f'Invalid profile name "{name}"')


def check_project_name(name: str) -> None:
    """LXD's project name rules (they end up in paths, queries and file names)."""
    if name == "":
        raise BadRequest("No name provided")
    if "/" in name:
        raise BadRequest("Project names may not contain slashes")
    if " " in name:
        raise BadRequest("Project names may not contain spaces")
    if "_" in name:
        raise BadRequest("Project names may not contain underscores")
    if "'" in name or '"' in name:
        raise BadRequest("Project names may not contain quotes")
    if name == "*":
        raise BadRequest("Reserved project name")
    if name in (".", ".."):
        raise BadRequest(f'Invalid project name "{name}"')


def clean_config(config: dict[str, str]) -> dict[str, str]:
    """Drop keys set to the empty string: LXD treats them as unset (``lxc profile unset``
    through PATCH relies on it)."""
    return {k: val for k, val in config.items() if val != ""}


def check_profile(config: dict[str, str], devices: dict[str, dict[str, str]]) -> None:
    """Validate a profile's writable state."""
    check_profile_config(config)
    check_devices(devices)


def check_project(config: dict[str, str]) -> None:
    """Validate a project's writable state."""
    check_project_config(config)
