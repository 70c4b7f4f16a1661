"""The id map helper: a user namespace fd holding the map, made without leaking anything."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from services.storage import mounts
from services.storage.idmap import IdMap, idmapped_bind, shared_userns_fd, userns_fd

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def children() -> set[int]:
    """Pids of this process's children (zombies included)."""
    me = os.getpid()
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == me:
                found.add(int(entry))
    return found


def test_map_line():
    assert IdMap().line() == "0 1000000 65536\n"
    assert IdMap(host_base=200000, count=1000).line() == "0 200000 1000\n"


def test_userns_fd_holds_the_map_and_leaks_no_process_or_fd():
    fds_before = set(os.listdir("/proc/self/fd"))
    kids_before = children()
    fd = userns_fd(IdMap(1000000, 65536))
    try:
        # Enter the namespace from a fresh process and read the map it sees.
        out = subprocess.run(
            ["nsenter", f"--user=/proc/self/fd/{fd}", "cat", "/proc/self/uid_map"],
            capture_output=True,
            text=True,
            pass_fds=(fd,),
            check=True,
        ).stdout.split()
        assert out == ["0", "1000000", "65536"]
        assert os.readlink(f"/proc/self/fd/{fd}") != os.readlink("/proc/self/ns/user")
    finally:
        os.close(fd)
    assert children() == kids_before
    assert set(os.listdir("/proc/self/fd")) == fds_before


def test_shared_userns_fd_is_made_once_per_map():
    first = shared_userns_fd(IdMap(1000000, 65536))
    assert shared_userns_fd(IdMap(1000000, 65536)) == first
    other = shared_userns_fd(IdMap(2000000, 65536))
    assert other != first
    assert os.readlink(f"/proc/self/fd/{other}") != os.readlink(f"/proc/self/fd/{first}")


def test_idmapped_bind_shifts_owners_without_touching_disk(tmp_path: Path):
    source, target = tmp_path / "source", tmp_path / "target"
    source.mkdir()
    target.mkdir()
    (source / "f").write_text("x")
    os.chown(source / "f", 5, 7)
    idmapped_bind(source, target, IdMap(1000000, 65536))
    try:
        st = os.stat(target / "f")
        assert (st.st_uid, st.st_gid) == (1000005, 1000007)
        assert os.stat(source / "f").st_uid == 5
    finally:
        mounts.umount_all(tmp_path)
    assert mounts.mounts_under(tmp_path) == []


def test_idmapped_bind_of_a_missing_path_raises_oserror(tmp_path: Path):
    with pytest.raises(OSError, match="open_tree"):
        idmapped_bind(tmp_path / "missing", tmp_path, IdMap())
