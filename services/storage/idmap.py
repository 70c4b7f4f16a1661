"""Idmapped mounts on Linux: a user namespace holding an id map, and the new mount API calls.

An idmapped bind mount shows a tree owned by uid/gid 0.. as owned by ``host_base``.. without
touching the files, which is how unprivileged containers keep copy-on-write launches: the image
volume stays owned by 0 on disk and each container sees it shifted. Everything here blocks;
drivers call it through ``asyncio.to_thread``.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

# x86_64 syscall numbers (the new mount API has no libc wrappers in Debian 12's glibc).
SYS_OPEN_TREE = 428
SYS_MOVE_MOUNT = 429
SYS_MOUNT_SETATTR = 442

AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
MOVE_MOUNT_F_EMPTY_PATH = 0x00000004
MOUNT_ATTR_IDMAP = 0x00100000
CLONE_NEWUSER = 0x10000000

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


@dataclass(frozen=True)
class IdMap:
    """One contiguous range: container ids 0..count-1 are host ids host_base..host_base+count-1.

    The same range is used for uids and gids (as LXD and LXC's ``lxc.idmap`` u/g pairs do).
    """

    host_base: int = 1000000
    count: int = 65536

    def line(self) -> str:
        """The ``/proc/<pid>/uid_map`` line for this map."""
        return f"0 {self.host_base} {self.count}\n"


def _syscall(number: int, *args: object) -> int:
    """syscall(2) with every integer widened to a long, as the kernel ABI reads registers."""
    wide = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    return _libc.syscall(ctypes.c_long(number), *wide)


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def userns_fd(idmap: IdMap) -> int:
    """Return an fd of a new user namespace holding ``idmap`` (the caller closes it).

    A forked child unshares its user namespace and waits; the parent (root in the initial
    namespace) writes the maps, opens ``/proc/<child>/ns/user`` and lets the child go. The
    open fd keeps the namespace alive after the child is gone.
    """
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: only raw syscalls, then _exit (never return into the parent's code)
        code = 0
        try:
            os.close(ready_r)
            os.close(go_w)
            code = 1 if _libc.unshare(CLONE_NEWUSER) != 0 else 0
            os.write(ready_w, b"k" if code == 0 else b"e")
            os.read(go_r, 1)  # EOF when the parent is done with us
        finally:
            os._exit(code)
    os.close(ready_w)
    os.close(go_r)
    try:
        state = os.read(ready_r, 1)
        if state != b"k":
            raise OSError(errno.EPERM, "unshare(CLONE_NEWUSER) failed in the helper process")
        for kind in ("uid_map", "gid_map"):
            with open(f"/proc/{pid}/{kind}", "w") as f:
                f.write(idmap.line())
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(ready_r)
        os.close(go_w)
        # The child exits on EOF; kill it too in case it is stuck, and always reap it.
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


_shared: dict[IdMap, int] = {}
_shared_lock = threading.Lock()


def shared_userns_fd(idmap: IdMap) -> int:
    """A user namespace fd for ``idmap``, made once per process and kept open (do not close).

    Making one costs a fork (a few ms, more in a big process); a node uses one or a few maps,
    so keeping them saves that on every container mount.
    """
    with _shared_lock:
        if idmap not in _shared:
            _shared[idmap] = userns_fd(idmap)
        return _shared[idmap]


def idmapped_bind(source: Path, target: Path, idmap: IdMap) -> None:
    """Bind ``source`` onto ``target`` through an idmapped mount (nothing changes on disk)."""
    ns = shared_userns_fd(idmap)
    tree = _check(
        _syscall(
            SYS_OPEN_TREE,
            AT_FDCWD,
            os.fsencode(source),
            OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC,
        ),
        f"open_tree {source}",
    )
    try:
        attr = _MountAttr(MOUNT_ATTR_IDMAP, 0, 0, ns)
        _check(
            _syscall(
                SYS_MOUNT_SETATTR,
                tree,
                b"",
                AT_EMPTY_PATH,
                ctypes.byref(attr),
                ctypes.sizeof(attr),
            ),
            f"mount_setattr idmap {source}",
        )
        _check(
            _syscall(
                SYS_MOVE_MOUNT,
                tree,
                b"",
                AT_FDCWD,
                os.fsencode(target),
                MOVE_MOUNT_F_EMPTY_PATH,
            ),
            f"move_mount {source} -> {target}",
        )
    finally:
        os.close(tree)
