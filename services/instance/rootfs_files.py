"""Safe file access inside an instance's root filesystem, from the host.

Paths are the container's view (``/etc/hosts``). Every lookup goes through ``openat2`` with
``RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`` on an ``O_PATH`` fd of the rootfs, so ``..``,
absolute symlinks and symlinks planted inside the container resolve inside the root, as they
would for a process of the container; nothing outside it can be reached. Changes act with
``*at()`` calls on (an fd of the parent directory, a plain name), never on a host path string,
so a container process racing us cannot redirect them either.

Ids are shown as the container sees them: with an id map, host id ``host_base + N`` is
container id N (an id outside the range shows as 65534, the overflow id). Names are created,
renamed and removed with the container's root as file-system user (``setfsuid`` in the
worker thread, root's capabilities kept effective): through an idmapped mount the kernel
refuses such changes (EOVERFLOW) to host root, whom the mount does not map. New files are
then chowned to the ids asked for.

LXD's behaviour (its SFTP-based file API of 5.x) is followed where it matters to clients:
relative paths are taken from ``/``; writing to a symlink writes its target; a symlink's
``target`` is reported as an absolute, lexically cleaned path; ``mode`` shows the permission
bits; deleting removes a file, a symlink or an empty directory. Every blocking call runs in
``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import os
import posixpath
import secrets
import stat
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from schemas.bytestream import CHUNK_SIZE
from schemas.errors import BadRequest, Conflict, Forbidden, NotFound, WarrenError
from schemas.instances import FileInfo
from schemas.storage import VolumeIdMap

T = TypeVar("T")

# x86_64 (Debian 12's glibc has no openat2 wrapper).
SYS_OPENAT2 = 437
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10
_RESOLVE = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS
#: What the container sees for a host id outside its map (the kernel's overflowuid).
OVERFLOW_ID = 65534
DEFAULT_FILE_MODE = 0o644
DEFAULT_DIR_MODE = 0o755
_MAX_SYMLINK_HOPS = 40  # the kernel's own limit
_CAP_VERSION_3 = 0x20080522

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class _OpenHow(ctypes.Structure):
    _fields_ = [
        ("flags", ctypes.c_uint64),
        ("mode", ctypes.c_uint64),
        ("resolve", ctypes.c_uint64),
    ]


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def openat2(dirfd: int, path: str, flags: int, resolve: int = _RESOLVE, mode: int = 0) -> int:
    """``openat2(2)``; raises OSError like ``os.open``. Retries the EAGAIN a concurrent
    rename may cause with ``RESOLVE_IN_ROOT``."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    raw = os.fsencode(path)
    for _ in range(16):
        fd = _libc.syscall(
            ctypes.c_long(SYS_OPENAT2),
            ctypes.c_int(dirfd),
            ctypes.c_char_p(raw),
            ctypes.byref(how),
            ctypes.c_size_t(ctypes.sizeof(how)),
        )
        if fd >= 0:
            return int(fd)
        err = ctypes.get_errno()
        if err not in (errno.EAGAIN, errno.EINTR):
            raise OSError(err, os.strerror(err), path)
    raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN), path)


# -- pure helpers ----------------------------------------------------------------------------


def clean_path(path: str) -> str:
    """The container path to act on: absolute (LXD takes a relative one from ``/``), no NUL,
    no trailing slash, no empty components. ``..`` stays: the kernel resolves it in the root."""
    if not isinstance(path, str) or not path:
        raise BadRequest("Missing path argument")
    if "\0" in path:
        raise BadRequest("Invalid path: it contains a NUL byte")
    parts = [part for part in path.split("/") if part]
    return "/" + "/".join(parts)


def split_path(path: str) -> tuple[str, str]:
    """``(parent, name)`` of a cleaned path; BadRequest for ``/`` or a ``.``/``..`` name."""
    parent, name = posixpath.split(path)
    if not name or name in (".", ".."):
        raise BadRequest(f"Invalid path {path!r}: it does not name a file")
    return parent or "/", name


def symlink_display(path: str, target: str) -> str:
    """A symlink's target as LXD reports it: absolute (relative ones joined to the link's
    directory) and lexically cleaned."""
    joined = target if target.startswith("/") else posixpath.join(posixpath.dirname(path), target)
    return posixpath.normpath("/" + joined.lstrip("/"))


def follow_link(path: str, target: str) -> str:
    """The path a symlink at ``path`` leads to (not normalised: ``..`` after a symlink is the
    kernel's to resolve)."""
    if target.startswith("/"):
        return clean_path(target)
    return clean_path(posixpath.dirname(path) + "/" + target)


def to_container_id(host_id: int, idmap: VolumeIdMap | None) -> int:
    if idmap is None:
        return host_id
    if idmap.host_base <= host_id < idmap.host_base + idmap.count:
        return host_id - idmap.host_base
    return OVERFLOW_ID


def to_host_id(container_id: int, idmap: VolumeIdMap | None, what: str = "id") -> int:
    if container_id < 0:
        raise BadRequest(f"Invalid {what} {container_id}")
    if idmap is None:
        return container_id
    if container_id >= idmap.count:
        raise BadRequest(f"{what} {container_id} is outside the instance's id range")
    return idmap.host_base + container_id


def check_mode(mode: int | None) -> int | None:
    if mode is not None and not 0 <= mode <= 0o7777:
        raise BadRequest(f"Invalid mode {mode:o}")
    return mode


def _kind(st: os.stat_result) -> str:
    if stat.S_ISREG(st.st_mode):
        return "file"
    if stat.S_ISDIR(st.st_mode):
        return "directory"
    if stat.S_ISLNK(st.st_mode):
        return "symlink"
    return "special"


# -- errors ----------------------------------------------------------------------------------


def translate(exc: OSError, path: str) -> WarrenError:
    """An OSError of the host as the LXD-like error a client gets."""
    code = exc.errno
    if code in (errno.ENOENT, errno.ENOTDIR):  # ENOTDIR: a parent is a file
        return NotFound(f"Path {path} not found")
    if code == errno.EISDIR:
        return BadRequest(f"Path {path} is a directory")
    if code == errno.ENOTEMPTY:
        return BadRequest(f"Directory {path} is not empty")
    if code == errno.EEXIST:
        return Conflict(f"Path {path} already exists")
    if code == errno.ELOOP:
        return BadRequest(f"Path {path}: too many levels of symbolic links")
    if code in (errno.ENAMETOOLONG, errno.EINVAL):
        return BadRequest(f"Invalid path {path}: {os.strerror(code)}")
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return Forbidden(f"Path {path}: {os.strerror(code)}")
    if code in (errno.ENOSPC, errno.EDQUOT):
        return WarrenError(f"Writing {path} failed: {os.strerror(code)}")
    return WarrenError(f"File operation on {path} failed: {exc.strerror or exc}")


@contextlib.contextmanager
def _errors(path: str) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise translate(exc, path) from exc


# -- creating files as the container's root --------------------------------------------------


def _raise_effective_caps() -> None:
    # Changing the fsuid away from 0 clears CAP_DAC_OVERRIDE, CAP_FOWNER and friends from the
    # effective set; they stay permitted, so the thread takes them back.
    header = _CapHeader(_CAP_VERSION_3, 0)
    data = (_CapData * 2)()
    if _libc.capget(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capget failed")
    for item in data:
        item.effective = item.permitted
    if _libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")


@contextlib.contextmanager
def creating_as(host_uid: int, host_gid: int) -> Iterator[None]:
    """Within this thread, new inodes are owned by ``host_uid:host_gid`` (fsuid/fsgid are
    per thread); root's capabilities stay effective. Restored on the way out."""
    if host_uid == 0 and host_gid == 0:
        yield
        return
    _libc.setfsgid(host_gid)
    _libc.setfsuid(host_uid)
    try:
        _raise_effective_caps()
        yield
    finally:
        # Back to 0: the kernel puts the file capabilities back into the effective set.
        _libc.setfsuid(0)
        _libc.setfsgid(0)


# -- the root --------------------------------------------------------------------------------


@dataclass
class _Target:
    """A name in a pinned parent directory: where a change happens."""

    parent_fd: int
    name: str
    path: str  # the container path (after following final symlinks, when asked to)
    st: os.stat_result | None  # lstat of the name; None when absent

    def close(self) -> None:
        os.close(self.parent_fd)


class RootFS:
    """One instance's root filesystem as its container sees it."""

    def __init__(self, root: Path, idmap: VolumeIdMap | None = None) -> None:
        self.root = Path(root)
        self.idmap = idmap

    # -- async interface -------------------------------------------------------------------

    async def info(self, path: str) -> FileInfo:
        """What ``path`` is (not following a final symlink): type, ids, mode, entries."""
        cpath = clean_path(path)
        return await _thread(self._info, cpath)

    async def open_read(self, path: str) -> tuple[FileInfo, FileReader | None]:
        """Its info and, for a regular file, a reader of its content (close it)."""
        cpath = clean_path(path)
        return await _thread(self._open_read, cpath)

    async def read_bytes(self, path: str, limit: int = 1 << 20) -> bytes:
        """The first ``limit`` bytes of a regular file (small files such as /etc/passwd)."""
        info, reader = await self.open_read(path)
        if reader is None:
            raise BadRequest(f"Path {clean_path(path)} is a {info.type}, not a file")
        try:
            return await _thread(reader.read_some, limit)
        finally:
            await reader.close()

    async def open_write(
        self,
        path: str,
        *,
        uid: int | None = None,
        gid: int | None = None,
        mode: int | None = None,
        append: bool = False,
    ) -> FileWriter:
        """A writer for ``path`` (following a final symlink, as LXD does). Overwrite writes a
        temporary file beside it and renames it over at :meth:`FileWriter.commit` (a failed
        transfer leaves the old content); append appends in place. The parent must exist."""
        cpath = clean_path(path)
        check_mode(mode)
        ids = (self._host_id(uid, "uid"), self._host_id(gid, "gid"))
        return await _thread(self._open_write, cpath, ids, mode, append)

    async def mkdir(
        self, path: str, *, uid: int | None = None, gid: int | None = None, mode: int | None = None
    ) -> bool:
        """Make a directory (0755, 0:0 unless given); an existing one is fine (and left as it
        is). True when it was created."""
        cpath = clean_path(path)
        check_mode(mode)
        ids = (self._host_id(uid, "uid"), self._host_id(gid, "gid"))
        return await _thread(self._mkdir, cpath, ids, mode)

    async def symlink(
        self, path: str, target: str, *, uid: int | None = None, gid: int | None = None
    ) -> None:
        """Make ``path`` a symlink to ``target`` (a symlink already there is replaced)."""
        cpath = clean_path(path)
        if not target or "\0" in target:
            raise BadRequest("Invalid symlink target")
        ids = (self._host_id(uid, "uid"), self._host_id(gid, "gid"))
        await _thread(self._symlink, cpath, target, ids)

    async def delete(self, path: str) -> None:
        """Remove a file, a symlink (not its target) or an empty directory."""
        cpath = clean_path(path)
        await _thread(self._delete, cpath)

    # -- ids -------------------------------------------------------------------------------

    def _host_id(self, container_id: int | None, what: str) -> int | None:
        return None if container_id is None else to_host_id(container_id, self.idmap, what)

    def _default_host_id(self) -> int:
        return self.idmap.host_base if self.idmap is not None else 0

    def _acting(self) -> contextlib.AbstractContextManager[None]:
        """Changes of names (create, rename, remove) as the container's root: through an
        idmapped mount the kernel refuses them to an fsuid the mount does not map."""
        base = self._default_host_id()
        return creating_as(base, base)

    def _info_of(self, cpath: str, st: os.stat_result, fd: int) -> FileInfo:
        kind = _kind(st)
        if kind == "special":
            # A fifo or a device node: reading one could block or act on a host device.
            raise BadRequest(f"Path {cpath} is not a regular file, directory or symlink")
        info = FileInfo(
            type=kind,  # type: ignore[arg-type]
            uid=to_container_id(st.st_uid, self.idmap),
            gid=to_container_id(st.st_gid, self.idmap),
            mode=stat.S_IMODE(st.st_mode) & 0o777,
            size=st.st_size if kind == "file" else 0,
        )
        if kind == "directory":
            dirfd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
            try:
                info.entries = sorted(os.listdir(dirfd))
            finally:
                os.close(dirfd)
        elif kind == "symlink":
            raw = os.readlink("", dir_fd=fd)
            info.target = symlink_display(cpath, raw)
            info.size = len(os.fsencode(info.target))
        return info

    # -- synchronous work (in a thread) ----------------------------------------------------

    def _root_fd(self) -> int:
        try:
            return os.open(self.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise WarrenError(f"the instance's root filesystem is not available: {exc}") from exc

    def _lookup(self, cpath: str) -> int:
        """An O_PATH fd of ``cpath`` itself (a final symlink is not followed)."""
        rootfd = self._root_fd()
        try:
            return openat2(rootfd, cpath, os.O_PATH | os.O_NOFOLLOW)
        finally:
            os.close(rootfd)

    def _info(self, cpath: str) -> FileInfo:
        with _errors(cpath):
            fd = self._lookup(cpath)
            try:
                return self._info_of(cpath, os.fstat(fd), fd)
            finally:
                os.close(fd)

    def _open_read(self, cpath: str) -> tuple[FileInfo, FileReader | None]:
        with _errors(cpath):
            fd = self._lookup(cpath)
            try:
                st = os.fstat(fd)
                info = self._info_of(cpath, st, fd)
                if info.type != "file":
                    return info, None
                # Reopen the very inode the O_PATH fd pins (never a name that could change).
                readable = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)
                return info, FileReader(readable, cpath)
            finally:
                os.close(fd)

    def _target(self, cpath: str, follow: bool) -> _Target:
        """The parent directory (pinned) and name ``cpath`` acts on; with ``follow``, final
        symlinks are followed (inside the root) to the name they lead to."""
        path = cpath
        rootfd = self._root_fd()
        try:
            for _ in range(_MAX_SYMLINK_HOPS):
                parent, name = split_path(path)
                with _errors(parent):
                    parent_fd = openat2(rootfd, parent, os.O_PATH | os.O_DIRECTORY)
                try:
                    st: os.stat_result | None = os.stat(
                        name, dir_fd=parent_fd, follow_symlinks=False
                    )
                except FileNotFoundError:
                    st = None
                except OSError as exc:
                    os.close(parent_fd)
                    raise translate(exc, path) from exc
                if follow and st is not None and stat.S_ISLNK(st.st_mode):
                    try:
                        link = os.readlink(name, dir_fd=parent_fd)
                    finally:
                        os.close(parent_fd)
                    path = follow_link(path, link)
                    continue
                return _Target(parent_fd, name, path, st)
        finally:
            os.close(rootfd)
        raise BadRequest(f"Path {cpath}: too many levels of symbolic links")

    def _open_write(
        self, cpath: str, ids: tuple[int | None, int | None], mode: int | None, append: bool
    ) -> FileWriter:
        target = self._target(cpath, follow=True)
        try:
            st = target.st
            if st is not None and stat.S_ISDIR(st.st_mode):
                raise BadRequest(f"Path {target.path} is a directory")
            if st is not None and not stat.S_ISREG(st.st_mode):
                raise BadRequest(f"Path {target.path} is not a regular file")
            if st is None:
                owner = (
                    ids[0] if ids[0] is not None else self._default_host_id(),
                    ids[1] if ids[1] is not None else self._default_host_id(),
                )
                final_mode = DEFAULT_FILE_MODE if mode is None else mode
            else:
                # An existing file keeps its own ids and mode unless given.
                owner = (
                    ids[0] if ids[0] is not None else st.st_uid,
                    ids[1] if ids[1] is not None else st.st_gid,
                )
                final_mode = stat.S_IMODE(st.st_mode) if mode is None else mode
            flags = os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC
            with _errors(target.path):
                if append and st is not None:
                    fd = os.open(target.name, flags | os.O_APPEND, dir_fd=target.parent_fd)
                    return FileWriter(self, target, fd, None, owner, final_mode, created=False)
                name = target.name if append else f".warren-{secrets.token_hex(8)}.tmp"
                with self._acting():
                    fd = os.open(
                        name, flags | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=target.parent_fd
                    )
                temp = None if append else name
                return FileWriter(self, target, fd, temp, owner, final_mode, created=True)
        except BaseException:
            target.close()
            raise

    def _mkdir(self, cpath: str, ids: tuple[int | None, int | None], mode: int | None) -> bool:
        target = self._target(cpath, follow=True)
        try:
            if target.st is not None:
                if stat.S_ISDIR(target.st.st_mode):
                    return False
                raise BadRequest(f"Path {target.path} exists and is not a directory")
            with _errors(target.path), self._acting():
                os.mkdir(target.name, 0o700, dir_fd=target.parent_fd)
                fd = os.open(
                    target.name,
                    os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                    dir_fd=target.parent_fd,
                )
                try:
                    base = self._default_host_id()
                    uid = base if ids[0] is None else ids[0]
                    gid = base if ids[1] is None else ids[1]
                    os.fchown(fd, uid, gid)
                    os.fchmod(fd, DEFAULT_DIR_MODE if mode is None else mode)
                finally:
                    os.close(fd)
            return True
        finally:
            target.close()

    def _symlink(self, cpath: str, link: str, ids: tuple[int | None, int | None]) -> None:
        target = self._target(cpath, follow=False)
        try:
            st = target.st
            if st is not None and not stat.S_ISLNK(st.st_mode):
                kind = "directory" if stat.S_ISDIR(st.st_mode) else "file"
                raise BadRequest(f"Path {cpath} exists and is a {kind}, not a symlink")
            base = self._default_host_id()
            uid = base if ids[0] is None else ids[0]
            gid = base if ids[1] is None else ids[1]
            with _errors(cpath), self._acting():
                if st is not None and os.readlink(target.name, dir_fd=target.parent_fd) == link:
                    os.chown(target.name, uid, gid, dir_fd=target.parent_fd, follow_symlinks=False)
                    return
                # Made aside and renamed over: a symlink already there is replaced in one step.
                temp = f".warren-{secrets.token_hex(8)}.tmp"
                os.symlink(link, temp, dir_fd=target.parent_fd)
                try:
                    os.chown(temp, uid, gid, dir_fd=target.parent_fd, follow_symlinks=False)
                    os.rename(
                        temp, target.name, src_dir_fd=target.parent_fd, dst_dir_fd=target.parent_fd
                    )
                except BaseException:
                    with contextlib.suppress(OSError):
                        os.unlink(temp, dir_fd=target.parent_fd)
                    raise
        finally:
            target.close()

    def _delete(self, cpath: str) -> None:
        if cpath == "/":
            raise BadRequest("The root directory cannot be deleted")
        target = self._target(cpath, follow=False)
        try:
            if target.st is None:
                raise NotFound(f"Path {cpath} not found")
            with _errors(cpath), self._acting():
                if stat.S_ISDIR(target.st.st_mode):
                    os.rmdir(target.name, dir_fd=target.parent_fd)
                else:
                    os.unlink(target.name, dir_fd=target.parent_fd)
        finally:
            target.close()


class FileReader:
    """The content of one regular file, read in chunks off the event loop."""

    def __init__(self, fd: int, path: str) -> None:
        self._fd: int | None = fd
        self.path = path

    def read_some(self, limit: int) -> bytes:
        if self._fd is None:
            return b""
        parts, left = [], limit
        while left > 0:
            with _errors(self.path):
                data = os.read(self._fd, min(left, CHUNK_SIZE))
            if not data:
                break
            parts.append(data)
            left -= len(data)
        return b"".join(parts)

    async def chunks(self, size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
        """The content, ``size`` bytes at a time; the reader is closed at the end."""
        try:
            while True:
                data = await _thread(self.read_some, size)
                if not data:
                    return
                yield data
        finally:
            await self.close()

    async def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


class FileWriter:
    """A file being written: :meth:`write` chunks, then :meth:`commit` or :meth:`abort`."""

    def __init__(
        self,
        fs: RootFS,
        target: _Target,
        fd: int,
        temp: str | None,
        owner: tuple[int, int],
        mode: int,
        created: bool,
    ) -> None:
        self._fs = fs
        self._target = target
        self._fd: int | None = fd
        self._temp = temp
        self._owner = owner
        self._mode = mode
        self._created = created
        self._lock = threading.Lock()
        self.path = target.path
        self.written = 0

    async def write(self, data: bytes) -> None:
        await _thread(self._write, data)

    async def commit(self) -> None:
        """Apply ownership and mode, and put the file in place."""
        await _thread(self._commit)

    async def abort(self) -> None:
        """Drop what was written (a new file goes away; append keeps what was appended)."""
        await _thread(self._abort)

    def _write(self, data: bytes) -> None:
        with self._lock:
            if self._fd is None:
                raise WarrenError(f"Writing {self.path}: the file is closed")
            view = memoryview(data)
            with _errors(self.path):
                while view:
                    count = os.write(self._fd, view)
                    view = view[count:]
                    self.written += count

    def _commit(self) -> None:
        with self._lock:
            fd, self._fd = self._fd, None
            if fd is None:
                raise WarrenError(f"Writing {self.path}: the file is closed")
            target = self._target
            try:
                with _errors(self.path), self._fs._acting():
                    # chown first: it clears set-id bits that chmod then sets.
                    os.fchown(fd, *self._owner)
                    os.fchmod(fd, self._mode)
                    os.close(fd)
                    fd = -1
                    if self._temp is not None:
                        os.rename(
                            self._temp,
                            target.name,
                            src_dir_fd=target.parent_fd,
                            dst_dir_fd=target.parent_fd,
                        )
                        self._temp = None
            except BaseException:
                if fd >= 0:
                    os.close(fd)
                with self._fs._acting():
                    self._drop_temp()
                raise
            finally:
                target.close()

    def _abort(self) -> None:
        with self._lock:
            fd, self._fd = self._fd, None
            if fd is None:
                return
            os.close(fd)
            appended_new = self._temp is None and self._created
            with self._fs._acting():
                self._drop_temp()
                if appended_new:
                    # A file made by an append that failed.
                    with contextlib.suppress(OSError):
                        os.unlink(self._target.name, dir_fd=self._target.parent_fd)
            self._target.close()

    def _drop_temp(self) -> None:
        if self._temp is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._temp, dir_fd=self._target.parent_fd)
            self._temp = None


async def _thread(func: Callable[..., T], *args: object) -> T:
    return await asyncio.to_thread(func, *args)
