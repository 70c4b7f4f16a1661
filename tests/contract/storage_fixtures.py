"""Helpers for the storage driver contract suite: pools made on real host objects (a
directory, or a btrfs loop file) and torn down completely even when a test failed."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from services.storage import mounts
from services.storage.drivers import DRIVERS, StorageDriver

#: Per driver, the config of a small pool a test can afford.
POOL_CONFIGS: dict[str, dict[str, str]] = {"dir": {}, "btrfs": {"size": "300MiB"}}
FINGERPRINT = hashlib.sha256(b"warren storage contract image").hexdigest()
OTHER_FINGERPRINT = hashlib.sha256(b"another image").hexdigest()
HOST_ROOT = 1000000


def enable_btrfs_quotas(pool: StorageDriver) -> None:
    """Quotas on the pool's filesystem: btrfs then counts each subvolume's exclusive bytes."""
    root = str(pool.root)  # type: ignore[attr-defined]
    subprocess.run(["btrfs", "quota", "enable", root], check=True)
    subprocess.run(["btrfs", "quota", "rescan", "-w", root], check=True, capture_output=True)


#: Per driver, what the host needs so that the filesystem counts each volume's own bytes
#: (nothing for ``dir``: an overlay's upper layer is the instance's own by construction).
OWN_USAGE_SETUP: dict[str, Callable[[StorageDriver], None]] = {"btrfs": enable_btrfs_quotas}


def new_pool(driver: str, warren_dir: Path, name: str = "pool1") -> StorageDriver:
    return DRIVERS[driver](name, POOL_CONFIGS[driver], warren_dir)


def loop_devices_of(path: Path) -> list[str]:
    """Loop devices backed by ``path`` (``losetup -j``)."""
    out = subprocess.run(
        ["losetup", "-n", "-O", "NAME", "-j", str(path)], capture_output=True, text=True
    ).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def loop_devices_after_release(path: Path, patience: float = 30.0) -> list[str]:
    """Loop devices still backed by ``path`` once the kernel had time to release them (an
    autoclear loop device may be torn down by a kernel worker just after the unmount)."""
    deadline = time.monotonic() + patience
    while (devices := loop_devices_of(path)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return devices


def force_cleanup(warren_dir: Path) -> None:
    """Whatever a test left: unmount everything below, detach loop devices, remove files."""
    with contextlib.suppress(OSError):
        mounts.umount_all(warren_dir)
    for image in warren_dir.glob("disks/*.img"):
        for device in loop_devices_of(image):
            subprocess.run(["losetup", "-d", device], check=False)
    shutil.rmtree(warren_dir, ignore_errors=True)


def make_rootfs(volume: Path) -> None:
    """Fill an image volume like an unpacked LXD image: metadata.yaml plus a small rootfs/
    with a setuid root binary, a symlink, a config file and an empty directory."""
    rootfs = volume / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    (rootfs / "etc").mkdir()
    (rootfs / "var" / "empty").mkdir(parents=True)
    (volume / "metadata.yaml").write_text("architecture: x86_64\ncreation_date: 0\n")
    tool = rootfs / "bin" / "tool"
    tool.write_bytes(b"#!/bin/sh\necho tool\n")
    os.chown(tool, 0, 0)
    os.chmod(tool, 0o4755)
    (rootfs / "bin" / "sh").symlink_to("tool")
    (rootfs / "etc" / "hostname").write_text("image\n")
    os.chmod(rootfs / "etc" / "hostname", 0o666)
    os.chmod(rootfs, 0o755)


def run_as_container_root(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run a command as host uid/gid 1000000 (root of an unprivileged container) in ``cwd``.

    The directory is entered while still root, as LXC enters the rootfs before dropping to
    the container's ids: the test's private temporary parents need not be traversable.
    """
    ids = [f"--reuid={HOST_ROOT}", f"--regid={HOST_ROOT}", "--clear-groups"]
    return subprocess.run(["setpriv", *ids, *argv], capture_output=True, text=True, cwd=cwd)


def mounted_below(path: Path) -> list[str]:
    return mounts.mounts_under(path) if path.exists() else _mounted_prefix(path)


def _mounted_prefix(path: Path) -> list[str]:
    # A path that no longer exists cannot be realpath'd reliably: compare the plain string.
    prefix = str(path).rstrip("/") + "/"
    return [p for p in mounts.mount_points() if p == str(path) or p.startswith(prefix)]
