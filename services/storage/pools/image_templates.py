"""The templates of an image volume: what ``metadata.yaml`` says to render into instances, and
the text of the files under ``templates/`` it names (answered to the instance service, which
renders them; see ``schemas.storage`` ``image-volume-templates``).

The image volume was checked when it was unpacked (``templates/`` holds only directories and
regular files; template names are relative, without ``..``); reads still open every path
component with ``O_NOFOLLOW`` below the volume's directory and take regular files only.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from schemas.errors import BadRequest
from schemas.storage import ImageTemplate, ImageTemplates
from services.common.imagefiles.metadata import MAX_METADATA_BYTES, parse_metadata
from services.storage.drivers.base import StorageError

#: All template files of one image together; they travel in one bus reply.
MAX_TEMPLATES_BYTES = 512 * 1024

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _read_beneath(root: Path, relative: str, limit: int) -> bytes:
    """The content of the regular file ``relative`` below ``root`` (no symlink followed);
    ``FileNotFoundError`` when it is not there, ``StorageError`` past ``limit`` bytes."""
    parts = [part for part in relative.split("/") if part not in ("", ".")]
    if not parts or ".." in parts:
        raise FileNotFoundError(errno.ENOENT, "not below the image volume", relative)
    fd = os.open(root, _DIR_FLAGS)
    try:
        for part in parts[:-1]:
            next_fd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = next_fd
        try:
            file_fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # a symlink: not a file of the image
                raise FileNotFoundError(errno.ENOENT, "not a regular file", relative) from None
            raise
    finally:
        os.close(fd)
    with os.fdopen(file_fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise FileNotFoundError(errno.ENOENT, "not a regular file", relative)
        data = f.read(limit + 1)
    if len(data) > limit:
        raise StorageError(f"{relative} of the image is larger than {limit} bytes")
    return data


def read_templates(image_dir: Path) -> ImageTemplates:
    """The image volume's templates (blocking). No metadata.yaml: none, as in LXD."""
    try:
        raw = _read_beneath(image_dir, "metadata.yaml", MAX_METADATA_BYTES)
    except (FileNotFoundError, NotADirectoryError):
        return ImageTemplates()
    try:
        metadata = parse_metadata(raw)
    except BadRequest as exc:
        raise StorageError(f"Image volume {image_dir.name}: {exc.message}") from None
    templates = {
        path: ImageTemplate(
            when=list(entry.when),
            template=entry.template,
            create_only=entry.create_only,
            properties=dict(entry.properties),
        )
        for path, entry in metadata.templates.items()
    }
    files: dict[str, str] = {}
    left = MAX_TEMPLATES_BYTES
    for entry in templates.values():
        if entry.template in files:
            continue
        try:
            data = _read_beneath(image_dir / "templates", entry.template, left)
        except (FileNotFoundError, NotADirectoryError):
            continue  # rendering it fails, naming the file (LXD: "Failed to read template")
        except StorageError:
            raise StorageError(
                f"The templates of image {image_dir.name} are larger than "
                f"{MAX_TEMPLATES_BYTES} bytes"
            ) from None
        left -= len(data)
        files[entry.template] = data.decode("utf-8", errors="replace")
    return ImageTemplates(templates=templates, files=files)
