"""Host facts and cleanup for LXC on cgroup v1 (blocking; the driver calls these in a thread)."""

from __future__ import annotations

import contextlib
import os
import re
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


def home_cgroups() -> list[Path]:
    """The cgroup.procs files of this process's own cgroups, one per hierarchy.

    python-lxc's daemonized start moves the *calling* process into the new container's
    lxc.monitor.<name> cgroup (measured here with LXC 5.0.2): the service would then be charged
    to, and pin, a cgroup that cannot be removed after the container stops. The driver moves
    itself back to these after every start. Any lxc.* component is dropped, so a process that
    was already moved finds its way home.
    """
    mounts = _mounts()
    found: list[Path] = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            parts = [p for p in path.split("/") if p and not p.startswith("lxc.")]
            wanted = set(controllers.split(",")) if controllers else set()
            for mountpoint, kind, options in mounts:
                if (not wanted and kind == "cgroup2") or (wanted and wanted <= options):
                    found.append(mountpoint.joinpath(*parts, "cgroup.procs"))
                    break
    return found


def return_home(procs_files: list[Path]) -> None:
    """Move this process (all its threads) back into its own cgroups."""
    pid = str(os.getpid())
    for procs in procs_files:
        with contextlib.suppress(OSError):
            procs.write_text(pid)


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
