"""A minimal busybox system for tests that drive containers below the storage layer (driver
contract, exec, files): the rootfs the storage service would otherwise provide."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

BUSYBOX = Path("/bin/busybox")
MARKER = "rootfs belongs to storage\n"


def build_busybox_rootfs(path: Path) -> None:
    """busybox, its applet links, an init that keeps running, a root and a user."""
    for sub in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "root"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    (path / "tmp").chmod(0o1777)
    (path / "root").chmod(0o700)
    shutil.copy2(BUSYBOX, path / "bin/busybox")
    applets = subprocess.run(
        [str(BUSYBOX), "--list-full"], check=True, capture_output=True, text=True
    ).stdout.split()
    for applet in applets:
        link = path / applet
        if not link.exists() and not link.is_symlink():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to("/bin/busybox")
    # init runs sysinit, then keeps a respawned sleeper: without a respawn line busybox init
    # wants a console for its default askfirst shells.
    (path / "etc/inittab").write_text(
        "::sysinit:/bin/true\n::respawn:/bin/sleep 3600\n::shutdown:/bin/true\n"
    )
    (path / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        "alice:x:1000:1000:Alice:/home/alice:/bin/sh\n"
        "nobody:x:65534:65534::/:\n"
    )
    (path / "etc/group").write_text("root:x:0:\nalice:x:1000:\nnogroup:x:65534:\n")
    (path / "etc/shadow").write_text("root:container-secret:19000::::::\n")
    (path / "etc/marker").write_text(MARKER)
    (path / "home/alice").mkdir(parents=True)
    os.chown(path / "home/alice", 1000, 1000)


def shift_ownership(path: Path, offset: int) -> None:
    """Chown a tree into the container's id range (a shifted rootfs), each entry once."""
    st = os.lstat(path)
    os.lchown(path, st.st_uid + offset, st.st_gid + offset)
    for dirpath, dirnames, filenames in os.walk(path):
        for entry in (os.path.join(dirpath, n) for n in dirnames + filenames):
            st = os.lstat(entry)
            os.lchown(entry, st.st_uid + offset, st.st_gid + offset)
