"""An interactive exec's terminal: the pty pair, who owns it, its window size."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import termios

from schemas.errors import WarrenError
from schemas.storage import VolumeIdMap
from services.instance.exec_fds import window_bytes
from services.instance.rootfs_paths import to_host_id

log = logging.getLogger(__name__)


def open_pty() -> tuple[int, int]:
    """A new pty pair: ``(main, secondary)``."""
    return os.openpty()


def own_terminal(secondary: int, uid: int, gid: int, idmap: VolumeIdMap | None) -> None:
    """Give the terminal to ``uid:gid`` as the container sees them (not to an id the
    container shows as nobody); left to host root when that fails."""
    try:
        os.fchown(secondary, to_host_id(uid, idmap), to_host_id(gid, idmap))
    except (WarrenError, OSError) as exc:
        log.debug("terminal left to host root: %s", exc)


def resize(main: int, width: int, height: int) -> None:
    """Set the window size; the kernel sends SIGWINCH to the foreground process group."""
    with contextlib.suppress(OSError):
        fcntl.ioctl(main, termios.TIOCSWINSZ, window_bytes(width, height))
