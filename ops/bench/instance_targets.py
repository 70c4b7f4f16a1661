"""What the container benchmarks measure on: one daemon (Warren or LXD), its socket, how to
find its processes and their memory, and an ``lxc`` client pointed at it.

A target is a throwaway daemon (:class:`warren_stack.WarrenStack`,
:class:`lxd_reference.ThrowawayLXD`) or an existing one given by its socket.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lxd_reference
import warren_stack
from lxd_api import server_pid
from proctree import descendants, lxc_monitors, process_table, tree_memory, warren_processes

LXC = shutil.which("lxc")


class Target:
    """One daemon: its socket, how to find its processes, and an lxc client environment."""

    def __init__(self, label: str, socket_path: str, kind: str, root: Path, pid: int | None):
        self.label = label
        self.socket = socket_path
        self.kind = kind  # "warren" or "lxd"
        self.root = root  # WARREN_DIR or LXD_DIR
        self.pid = pid  # the LXD daemon
        self.client_dir = Path(tempfile.mkdtemp(prefix="bench-lxc-client-"))
        self.env = {**os.environ, "LXD_SOCKET": socket_path, "LXD_CONF": str(self.client_dir)}
        self.stack_pids: Callable[[], set[int]] = self._own_pids

    def close(self) -> None:
        shutil.rmtree(self.client_dir, ignore_errors=True)

    def _own_pids(self) -> set[int]:
        if self.kind == "lxd":
            return descendants([self.pid] if self.pid else [])
        return warren_processes(self.root)

    def memory(self, names: set[str]) -> dict[str, Any]:
        """RSS/PSS (MiB) of the daemon's processes plus the LXC monitors of its containers
        (``names``, or any under its directory), without the containers' own processes."""
        table = process_table()
        stack = self.stack_pids() & table.keys()
        root = str(self.root)
        monitors = {
            info.pid
            for info in lxc_monitors(table)
            if root in info.cmdline or info.pid in stack or info.cmdline.split()[-1] in names
        }
        payload = descendants(monitors, table) - monitors
        own = tree_memory((stack | monitors) - payload, table)
        mon = tree_memory(monitors, table)
        return {
            "rss_mib": own["rss_mib"],
            "pss_mib": own["pss_mib"],
            "processes": own["processes"],
            "monitors": mon["processes"],
            "monitor_rss_mib": mon["rss_mib"],
            "monitor_pss_mib": mon["pss_mib"],
        }

    def lxc(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """The real ``lxc`` client against this daemon."""
        assert LXC is not None
        return subprocess.run(
            [LXC, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )


@contextlib.contextmanager
def _closing(target: Target) -> Iterator[Target]:
    try:
        yield target
    finally:
        target.close()


@contextlib.contextmanager
def warren_target(socket_path: str | None) -> Iterator[Target]:
    """A running Warren at ``socket_path``, or a throwaway one from ``ops/run``."""
    if socket_path:
        with _closing(Target("Warren", socket_path, "warren", Path(socket_path).parent, None)) as t:
            yield t
        return
    stack = warren_stack.WarrenStack()
    # mkdtemp makes the directory 0700; an unprivileged container's root (a mapped uid) must
    # be able to traverse it to reach its rootfs below.
    stack.dir.chmod(0o711)
    with stack:
        target = Target("Warren", str(stack.socket), "warren", stack.dir, None)
        target.stack_pids = stack.pids
        with _closing(target) as t:
            yield t


@contextlib.contextmanager
def lxd_target(socket_path: str | None) -> Iterator[Target]:
    """A running LXD at ``socket_path``, or a throwaway one (``lxd_reference``)."""
    if socket_path:
        pid = server_pid(socket_path)
        target = Target(lxd_label(), socket_path, "lxd", Path(socket_path).parent, pid)
        with _closing(target) as t:
            yield t
        return
    with lxd_reference.ThrowawayLXD() as lxd:
        with _closing(Target(lxd_label(), str(lxd.socket), "lxd", lxd.dir, lxd.pid)) as t:
            yield t


def lxd_label() -> str:
    return f"LXD {lxd_reference.version()}" if lxd_reference.installed() else "LXD"
