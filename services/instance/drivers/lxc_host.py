"""Host facts and cleanup for LXC on cgroup v1 (blocking; the driver calls these in a thread)."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import subprocess
import time
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def memsw_available() -> bool:
    """Whether swap accounting exists (memory.memsw.* files), so swap can be capped too."""
    return (CGROUP_ROOT / "memory" / "memory.memsw.limit_in_bytes").exists()


def all_cpus() -> str:
    """The CPU set a container gets when it has no CPU limit (the root cpuset's)."""
    try:
        return (CGROUP_ROOT / "cpuset" / "cpuset.cpus").read_text().strip() or "0"
    except OSError:
        count = os.cpu_count() or 1
        return "0" if count == 1 else f"0-{count - 1}"


def cgroup_dirs(name: str) -> list[Path]:
    """Every cgroup directory LXC made for container ``name`` (payload and monitor).

    LXC names them lxc.payload.<name> and lxc.monitor.<name>, with a "-N" suffix when the plain
    name was taken (e.g. by a leftover).
    """
    pattern = re.compile(rf"^lxc\.(payload|monitor)\.{re.escape(name)}(-\d+)?$")
    found: list[Path] = []
    with contextlib.suppress(OSError):
        for hierarchy in CGROUP_ROOT.iterdir():
            with contextlib.suppress(OSError):
                found.extend(p for p in hierarchy.iterdir() if pattern.match(p.name) and p.is_dir())
    return found


def _mounts() -> list[tuple[Path, str, set[str]]]:
    result = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mounts").read_text().splitlines():
            fields = line.split()
            if len(fields) >= 4 and fields[2] in ("cgroup", "cgroup2"):
                result.append((Path(fields[1]), fields[2], set(fields[3].split(","))))
    return result


def freezer_state(name: str) -> bool | None:
    """Whether container ``name``'s payload cgroup is frozen (or freezing); None when its
    freezer file is not where LXC normally puts it."""
    try:
        state = (CGROUP_ROOT / "freezer" / f"lxc.payload.{name}" / "freezer.state").read_text()
    except OSError:
        return None
    return state.strip() != "THAWED"


@functools.cache
def _controller_mounts() -> dict[str, Path]:
    # The cgroup hierarchies are mounted once at boot; /proc/self/mounts grows with every
    # container's volume, so it is read once.
    return {
        option: mountpoint
        for mountpoint, kind, options in _mounts()
        if kind == "cgroup"
        for option in options
    }


def process_cgroups(pid: int) -> dict[str, Path]:
    """Controller -> cgroup directory of a process, read from /proc/<pid>/cgroup (cheaper than
    asking LXC's monitor for each value; the host sees the container's full paths)."""
    mounts = _controller_mounts()
    found: dict[str, Path] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for controller in controllers.split(","):
                if controller in mounts:
                    found[controller] = mounts[controller].joinpath(path.lstrip("/"))
    return found


def read_number(path: Path) -> int:
    """The first number of a cgroup file (0 when it is missing or empty)."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def lxc_start(lxcpath: Path, name: str, timeout: float = 120) -> bool:
    """Start a defined container with ``lxc-start`` (it daemonizes once the container runs);
    whether it started (LXC's own log says why not)."""
    try:
        done = subprocess.run(
            ["lxc-start", "-n", name, "-P", str(lxcpath)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _rmdir_tree(path: Path) -> None:
    # cgroup directories are removed with rmdir only, children first (their files are virtual).
    for child in path.iterdir():
        if child.is_dir():
            _rmdir_tree(child)
    path.rmdir()


def remove_cgroups(name: str, *, wait: float = 5.0) -> list[Path]:
    """Remove the container's leftover cgroups; returns those still busy after ``wait`` s.

    LXC's monitor tries to remove its own cgroup while it still sits in it (EBUSY, logged as a
    warning), so a stopped container leaves lxc.monitor.<name> behind: removed here. The monitor
    may take a moment to exit after a stop, hence the short retry.
    """
    deadline = time.monotonic() + wait
    while True:
        left = []
        for path in cgroup_dirs(name):
            try:
                _rmdir_tree(path)
            except FileNotFoundError:
                pass
            except OSError:
                left.append(path)
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.05)


def log_size(path: Path) -> int:
    """The current length of a log, to read only what an operation adds to it."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def log_tail(path: Path, since: int = 0, lines: int = 5) -> str | None:
    """The last error lines an LXC log got after offset ``since`` (None if there are none).

    The log accumulates over starts and is mostly harmless warnings: errors say what went wrong.
    """
    try:
        with path.open("rb") as log:
            log.seek(since)
            text = log.read().decode(errors="replace").strip().splitlines()
    except OSError:
        return None
    errors = [line for line in text if " ERROR " in line] or text
    return " | ".join(errors[-lines:]) or None
