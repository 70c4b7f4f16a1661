"""The system calls under :mod:`services.instance.rootfs_files` that Python does not wrap.

``openat2(2)`` (Debian 12's glibc has no wrapper), and creating inodes as another user from a
worker thread: ``setfsuid``/``setfsgid`` are per thread, and root's capabilities are put back
into the effective set that changing the fsuid clears.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
from collections.abc import Iterator

# x86_64 (Debian 12's glibc has no openat2 wrapper).
SYS_OPENAT2 = 437
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10
#: How every lookup inside a root is resolved: symlinks and ``..`` stay inside it.
IN_ROOT = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS
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


def openat2(dirfd: int, path: str, flags: int, resolve: int = IN_ROOT, mode: int = 0) -> int:
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
