"""Writing a unified LXD image tarball: ``metadata.yaml``, ``templates/``, ``rootfs/``.

The output is gzip-compressed (what ``lxc image import`` and LXD prefer), owned by root in the
archive whoever builds it, and reproducible: entries carry the image's creation date as their
time unless they come from a real tree, and the gzip header carries no time stamp. It is
written to a temporary file beside the destination and renamed into place when complete.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from services.common.imagefiles.metadata import ImageMetadata, dump_metadata

TreeFilter = Callable[[str, os.stat_result], bool]


class ImageTarWriter:
    """Build a unified image tarball entry by entry; use as a context manager.

    Names given to the ``add_*`` methods are rootfs paths (``etc/passwd``); templates and the
    metadata have their own methods.
    """

    def __init__(self, dest: str | Path, mtime: int, compresslevel: int = 6) -> None:
        self.dest = Path(dest)
        self.mtime = mtime
        fd, tmp = tempfile.mkstemp(prefix=f".{self.dest.name}.", dir=self.dest.parent)
        self._tmp = Path(tmp)
        self._raw = os.fdopen(fd, "wb")
        self._gz = gzip.GzipFile(
            filename="", mode="wb", fileobj=self._raw, mtime=0, compresslevel=compresslevel
        )
        self._tar = tarfile.open(fileobj=self._gz, mode="w", format=tarfile.PAX_FORMAT)
        self._templates = False

    def __enter__(self) -> ImageTarWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        try:
            self._tar.close()
            self._gz.close()
            self._raw.close()
            if exc_type is None:
                os.chmod(self._tmp, 0o644)
                os.replace(self._tmp, self.dest)
        finally:
            if self._tmp.exists():
                self._tmp.unlink()

    def _info(self, name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = mode
        info.mtime = self.mtime
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    def _tar_dir(self, name: str, mode: int) -> None:
        self._tar.addfile(self._info(name, tarfile.DIRTYPE, mode))

    def _tar_file(self, name: str, data: bytes, mode: int) -> None:
        info = self._info(name, tarfile.REGTYPE, mode)
        info.size = len(data)
        self._tar.addfile(info, io.BytesIO(data))

    def metadata(self, meta: ImageMetadata) -> None:
        """Add ``metadata.yaml``."""
        self._tar_file("metadata.yaml", dump_metadata(meta), 0o644)

    def template(self, name: str, text: str) -> None:
        """Add ``templates/<name>`` (the directory comes with the first one)."""
        if not self._templates:
            self._tar_dir("templates", 0o755)
            self._templates = True
        self._tar_file(f"templates/{name}", text.encode(), 0o644)

    def rootfs(self, mode: int = 0o755) -> None:
        """Add the ``rootfs/`` directory itself (before any entry in it)."""
        self._tar_dir("rootfs", mode)

    def add_dir(self, name: str, mode: int = 0o755) -> None:
        self._tar_dir(f"rootfs/{name}", mode)

    def add_file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._tar_file(f"rootfs/{name}", data, mode)

    def add_host_file(self, name: str, source: str | Path, mode: int = 0o755) -> None:
        """Add a file copied from the host (streamed, not read into memory)."""
        info = self._info(f"rootfs/{name}", tarfile.REGTYPE, mode)
        info.size = os.path.getsize(source)
        with open(source, "rb") as f:
            self._tar.addfile(info, f)

    def add_symlink(self, name: str, target: str) -> None:
        info = self._info(f"rootfs/{name}", tarfile.SYMTYPE, 0o777)
        info.linkname = target
        self._tar.addfile(info)

    def add_tree(self, root: str | Path, keep: TreeFilter | None = None) -> None:
        """Add a whole directory as the rootfs (numeric owners, links kept as links).

        ``keep(relative_path, lstat)`` may drop an entry (a dropped directory keeps no children).
        """
        root = str(root)
        self._tar.add(root, arcname="rootfs", recursive=False)
        for dirpath, dirnames, filenames in os.walk(root):
            kept_dirs = []
            for name in sorted(dirnames) + sorted(filenames):
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, root)
                st = os.lstat(full)
                if keep is not None and not keep(rel, st):
                    continue
                info = self._tar.gettarinfo(full, arcname=f"rootfs/{rel}")
                info.uname = info.gname = ""  # numeric owners: names mean nothing in a container
                if info.isreg():
                    with open(full, "rb") as f:
                        self._tar.addfile(info, f)
                else:
                    self._tar.addfile(info)
                if name in dirnames and not os.path.islink(full):
                    kept_dirs.append(name)
            dirnames[:] = sorted(kept_dirs)
