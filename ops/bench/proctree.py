"""Process trees and their memory, read straight from /proc.

RSS counts shared pages (the Python interpreter, libc) once per process, so a stack of
several Python processes looks bigger than it costs; PSS splits shared pages between their
users and sums to what the machine really spends. Both are reported.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class ProcInfo:
    """One process: parent, short name and command line."""

    pid: int
    ppid: int
    comm: str
    cmdline: str


def _read_stat(pid: int) -> tuple[int, str] | None:
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # comm is in parentheses and may itself contain spaces or parentheses.
    left, right = raw.index("("), raw.rindex(")")
    fields = raw[right + 2 :].split()
    return int(fields[1]), raw[left + 1 : right]


def process_table() -> dict[int, ProcInfo]:
    """Every live process (kernel threads included, they simply have no cmdline)."""
    table: dict[int, ProcInfo] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        stat = _read_stat(pid)
        if stat is None:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            cmdline = ""
        table[pid] = ProcInfo(pid, stat[0], stat[1], cmdline)
    return table


def descendants(roots: Iterable[int], table: dict[int, ProcInfo] | None = None) -> set[int]:
    """The roots that are alive plus all their descendants."""
    table = table if table is not None else process_table()
    children: dict[int, list[int]] = {}
    for info in table.values():
        children.setdefault(info.ppid, []).append(info.pid)
    found: set[int] = set()
    todo = [pid for pid in roots if pid in table]
    while todo:
        pid = todo.pop()
        if pid in found:
            continue
        found.add(pid)
        todo.extend(children.get(pid, []))
    return found


def _environ_has(pid: int, needle: bytes) -> bool:
    try:
        return needle in (PROC / str(pid) / "environ").read_bytes().split(b"\0")
    except OSError:
        return False


def warren_processes(warren_dir: str | Path, table: dict[int, ProcInfo] | None = None) -> set[int]:
    """Processes of the Warren living in ``warren_dir``: those with ``WARREN_DIR=<dir>`` in
    their environment or the directory on their command line, and their descendants."""
    table = table if table is not None else process_table()
    wdir = str(Path(warren_dir).resolve())
    needle = f"WARREN_DIR={wdir}".encode()
    alt = f"WARREN_DIR={warren_dir}".encode()
    me = os.getpid()
    roots = set()
    for info in table.values():
        if info.pid == me or not info.cmdline:
            continue
        if wdir in info.cmdline or _environ_has(info.pid, needle) or _environ_has(info.pid, alt):
            roots.add(info.pid)
    return descendants(roots, table) - {me}


@dataclass(frozen=True)
class Mem:
    """Memory of one process in kB (from ``smaps_rollup``)."""

    rss: int
    pss: int
    uss: int


def memory_of(pid: int) -> Mem | None:
    """RSS, PSS and USS (private pages) of one process, or None if it is gone."""
    try:
        text = (PROC / str(pid) / "smaps_rollup").read_text()
    except OSError:
        return None
    values: dict[str, int] = {}
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 2 and parts[0].endswith(":"):
            values[parts[0][:-1]] = int(parts[1])
    uss = values.get("Private_Clean", 0) + values.get("Private_Dirty", 0)
    return Mem(values.get("Rss", 0), values.get("Pss", 0), uss)


def label(info: ProcInfo) -> str:
    """A short human name for a process: ``python -m <module>`` shows the module."""
    args = info.cmdline.split()
    if "-m" in args and args.index("-m") + 1 < len(args):
        return args[args.index("-m") + 1]
    if args:
        name = Path(args[0]).name
        if name.startswith("python") and len(args) > 1:
            return Path(args[1]).name
        return name
    return info.comm


def tree_memory(pids: Iterable[int], table: dict[int, ProcInfo] | None = None) -> dict:
    """Sum RSS/PSS/USS over ``pids`` with a per-process breakdown (all in MiB)."""
    table = table if table is not None else process_table()
    rows = []
    for pid in sorted(pids):
        mem = memory_of(pid)
        if mem is None or pid not in table or mem.rss == 0:
            continue
        rows.append(
            {
                "pid": pid,
                "name": label(table[pid]),
                "rss_mib": mem.rss / 1024,
                "pss_mib": mem.pss / 1024,
                "uss_mib": mem.uss / 1024,
            }
        )
    return {
        "processes": len(rows),
        "rss_mib": sum(r["rss_mib"] for r in rows),
        "pss_mib": sum(r["pss_mib"] for r in rows),
        "uss_mib": sum(r["uss_mib"] for r in rows),
        "per_process": rows,
    }


def lxc_monitors(table: dict[int, ProcInfo] | None = None) -> list[ProcInfo]:
    """LXC's per-container monitor processes: ``[lxc monitor] <lxcpath> <name>``."""
    table = table if table is not None else process_table()
    return [info for info in table.values() if info.cmdline.startswith("[lxc monitor]")]
