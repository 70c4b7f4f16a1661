"""An interactive exec's terminal: a pty of the container's own devpts, owned by its root.

As LXD does, the pty is allocated inside the container: from the ``ptmx`` of the devpts
instance mounted on its ``/dev/pts``. The command's terminal is then ``/dev/pts/N`` of the
container, so ``tty`` and ``ttyname()`` name it and ``ls -l $(tty)`` shows it (a pty of the
host's devpts has a number the container's /dev/pts does not have: "not a tty"). It is given
to the container's root (LXD's owner), keeping the group the devpts mount gives new ptys (LXC
mounts it ``gid=5``, tty) when that group is one of the container's; LXC's attach then hands
the command's stdio to the command's user with mode 0700, as it does under LXD.

The container owns its /dev, so the host trusts nothing there: it looks up ``/dev/pts`` in
``/proc/<init pid>/root`` with openat2 (``RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS``, no final
symlink), takes ``ptmx`` and ``N`` only as plain names of that directory with O_NOFOLLOW and
O_PATH, and opens a node for I/O (through ``/proc/self/fd`` of the very inode it checked)
only once it is what it must be: on a devpts file system, the same one as the directory, a
character device ``5:2`` for ``ptmx`` and ``136:N`` for the secondary. When that fails (or the
container is not running), the pty comes from the host's ptmx as before, with a warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import logging
import os
import stat
import struct
import termios
from collections.abc import Callable
from dataclasses import dataclass

from schemas.errors import WarrenError
from services.instance.drivers.spec import Status
from services.instance.exec_fds import window_bytes
from services.instance.instances.host import HostInstance
from services.instance.rootfs_syscalls import openat2

log = logging.getLogger(__name__)

# <asm-generic/ioctls.h> (Python's termios does not have them).
TIOCGPTN = 0x80045430  # the pty's number
TIOCSPTLCK = 0x40045431  # lock (1) or unlock (0) the secondary
TIOCGPTPEER = 0x5441  # open the secondary from the main end (Linux 4.13)
DEVPTS_SUPER_MAGIC = 0x1CD1
PTMX_DEVICE = os.makedev(5, 2)
PTY_SECONDARY_MAJOR = 136  # UNIX98_PTY_SLAVE_MAJOR: pts N is 136:N

_libc = ctypes.CDLL(None, use_errno=True)


class PtyRefused(Exception):
    """The container's devpts is not usable (absent, or not what it must be)."""


@dataclass
class Pty:
    main: int
    secondary: int
    #: Its path in the container (``/dev/pts/N``); None for a pty of the host's devpts.
    name: str | None

    def close(self) -> None:
        for fd in (self.main, self.secondary):
            with contextlib.suppress(OSError):
                os.close(fd)


def resize(main: int, width: int, height: int) -> None:
    """Set the window size; the kernel sends SIGWINCH to the foreground process group."""
    with contextlib.suppress(OSError):
        fcntl.ioctl(main, termios.TIOCSWINSZ, window_bytes(width, height))


async def open_terminal(host: HostInstance) -> Pty:
    """A pty for an interactive exec in ``host``, its secondary owned by the container's root:
    from the container's devpts, else from the host's."""
    pty = await _container_terminal(host)
    if pty is None:
        main, secondary = os.openpty()
        pty = Pty(main, secondary, None)
    try:
        own_terminal(pty.secondary, host)
    except BaseException:
        pty.close()
        raise
    return pty


async def _container_terminal(host: HostInstance) -> Pty | None:
    try:
        state = await host.driver.state(host.host_name)
    except WarrenError as exc:
        log.debug("exec in %s: no state, so no pty of its devpts: %s", host.name, exc)
        return None
    if state.status is Status.STOPPED or state.pid <= 0:
        return None  # the exec will be refused: any pty does until then
    pty: Pty | None = None
    try:
        pty = await _in_thread(container_pty, state.pid)
        # The pid was the container's init before and is after: /proc/<pid> was not a reused
        # pid of another process in between.
        if (await host.driver.state(host.host_name)).pid != state.pid:
            raise PtyRefused("the container restarted meanwhile")
        log.debug("exec in %s: terminal %s of its devpts", host.name, pty.name)
        return pty
    except (OSError, PtyRefused, WarrenError) as exc:
        if pty is not None:
            pty.close()
        log.warning(
            "exec in %s: no pty of the container's devpts (%s); using the host's, which the "
            "command cannot name (not a tty)",
            host.name,
            exc,
        )
        return None
    except BaseException:
        if pty is not None:
            pty.close()
        raise


def own_terminal(secondary: int, host: HostInstance) -> None:
    """Give the secondary to the container's root, in the group devpts gave it if that group
    is one of the container's (else root's); left to host root when that fails."""
    idmap = host.idmap
    base = idmap.host_base if idmap is not None else 0
    try:
        gid = os.fstat(secondary).st_gid
        if idmap is not None and not base <= gid < base + idmap.count:
            gid = base  # host root's group (devpts mounted without gid=): not the container's
        os.fchown(secondary, base, gid)
    except OSError as exc:
        log.debug("exec in %s: terminal left to host root: %s", host.name, exc)


def container_pty(init_pid: int) -> Pty:
    """A new pty of the devpts on ``/dev/pts`` of the container whose init is ``init_pid``
    (blocking: run it in a thread)."""
    root = os.open(f"/proc/{init_pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        pts = openat2(root, "/dev/pts", os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW)
    finally:
        os.close(root)
    try:
        devpts = os.fstat(pts)
        if _fs_type(pts) != DEVPTS_SUPER_MAGIC:
            raise PtyRefused("/dev/pts is not a devpts file system")
        main = _open_node(pts, "ptmx", devpts.st_dev, PTMX_DEVICE, os.O_RDWR)
        try:
            fcntl.ioctl(main, TIOCSPTLCK, struct.pack("i", 0))
            (number,) = struct.unpack("I", fcntl.ioctl(main, TIOCGPTN, bytes(4)))
            secondary = _open_secondary(main, pts, number, devpts.st_dev)
        except BaseException:
            os.close(main)
            raise
    finally:
        os.close(pts)
    return Pty(main, secondary, f"/dev/pts/{number}")


def _open_secondary(main: int, pts: int, number: int, dev: int) -> int:
    flags = os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC
    device = os.makedev(PTY_SECONDARY_MAJOR, number)
    try:
        # The peer of this very main end, on the same devpts mount: no name is looked up.
        secondary = fcntl.ioctl(main, TIOCGPTPEER, flags)
    except OSError:
        return _open_node(pts, str(number), dev, device, os.O_RDWR | os.O_NOCTTY)
    try:
        _check_node(os.fstat(secondary), str(number), dev, device)
    except BaseException:
        os.close(secondary)
        raise
    return secondary


def _open_node(directory: int, name: str, dev: int, device: int, flags: int) -> int:
    """Open ``name`` of the devpts directory once it is character device ``device`` of it."""
    path = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=directory)
    try:
        _check_node(os.fstat(path), name, dev, device)
        if _fs_type(path) != DEVPTS_SUPER_MAGIC:
            raise PtyRefused(f"/dev/pts/{name} is not on a devpts file system")
        # The inode just checked, not the name again (which the container could change).
        return os.open(f"/proc/self/fd/{path}", flags | os.O_CLOEXEC)
    finally:
        os.close(path)


def _check_node(st: os.stat_result, name: str, dev: int, device: int) -> None:
    if not stat.S_ISCHR(st.st_mode) or st.st_rdev != device or st.st_dev != dev:
        raise PtyRefused(
            f"/dev/pts/{name} is not the devpts node {os.major(device)}:{os.minor(device)}"
        )


def _fs_type(fd: int) -> int:
    """``f_type`` of ``fstatfs(fd)`` (the first field of struct statfs, a long)."""
    buf = ctypes.create_string_buffer(256)  # struct statfs is 120 bytes on x86_64
    if _libc.fstatfs(fd, buf) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return int(struct.unpack_from("l", buf.raw)[0])


async def _in_thread(func: Callable[[int], Pty], arg: int) -> Pty:
    """``func(arg)`` in a thread; a caller cancelled meanwhile leaks no pty."""
    future = asyncio.ensure_future(asyncio.to_thread(func, arg))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:

        def release(done: asyncio.Future[Pty]) -> None:
            if not done.cancelled() and done.exception() is None:
                done.result().close()

        future.add_done_callback(release)
        raise
