"""What every builder shares: the build result, creation time, architecture, metadata, templates."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

from pydantic import BaseModel

from services.common.imagefiles.fingerprint import fingerprint_file
from services.common.imagefiles.metadata import ARCHITECTURES, ImageMetadata, Template

# LXD's usual templates: the instance's name becomes its host name when it is created or copied.
HOSTNAME_TEMPLATE = "{{ container.name }}\n"
HOSTS_TEMPLATE = (
    "127.0.0.1\tlocalhost\n"
    "127.0.1.1\t{{ container.name }}\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
)
TEMPLATE_FILES = {"hostname.tpl": HOSTNAME_TEMPLATE, "hosts.tpl": HOSTS_TEMPLATE}


class BuildResult(BaseModel):
    """A finished build: the unified tarball, its fingerprint and size, and how long it took."""

    path: str
    fingerprint: str
    size: int
    seconds: float


def creation_date() -> int:
    """Now, or ``SOURCE_DATE_EPOCH`` when set (reproducible builds give the same fingerprint)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    return int(epoch) if epoch else int(time.time())


def host_architecture() -> str:
    """The host's architecture under LXD's name (images are built for the machine they run on)."""
    machine = platform.machine()
    if machine not in ARCHITECTURES:
        raise RuntimeError(f"unsupported architecture {machine!r}")
    return ARCHITECTURES[machine]


def image_metadata(created: int, os_name: str, release: str, description: str) -> ImageMetadata:
    """metadata.yaml for a built image, with the host name templates."""
    triggers: list = ["create", "copy"]
    return ImageMetadata(
        architecture=host_architecture(),
        creation_date=created,
        properties={
            "os": os_name,
            "release": release,
            "description": description,
            "architecture": host_architecture(),
        },
        templates={
            "/etc/hostname": Template(when=triggers, template="hostname.tpl"),
            "/etc/hosts": Template(when=triggers, template="hosts.tpl"),
        },
    )


def finished(path: Path, started: float) -> BuildResult:
    """The result for the tarball at ``path`` built since ``started`` (a perf_counter value)."""
    return BuildResult(
        path=str(path),
        fingerprint=fingerprint_file(path),
        size=path.stat().st_size,
        seconds=round(time.perf_counter() - started, 3),
    )
