"""The attach helper's cgroup fast path: which cgroups an attached command joins itself (the
payload cgroup of every v1 hierarchy), which one the helper moves it into (cgroup2), and when
the whole move is left to LXC."""

from __future__ import annotations

from services.instance.drivers.lxc_attach_server import (
    UNIFIED,
    PayloadCgroups,
    cgroup_mounts,
    payload_cgroups,
)

MOUNTS = """\
tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,nosuid,nodev,noexec,relatime,cpu,cpuacct 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup /sys/fs/cgroup/cpuset cgroup rw,relatime,cpuset,noprefix 0 0
cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,xattr,name=systemd 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,nosuid,relatime 0 0
"""
NAME = "w-0123"


def test_each_controller_maps_to_its_hierarchys_mount() -> None:
    mounts = cgroup_mounts(MOUNTS)
    assert mounts["cpu"] == mounts["cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct"
    assert mounts["memory"] == "/sys/fs/cgroup/memory"
    assert mounts["cpuset"] == "/sys/fs/cgroup/cpuset"
    assert mounts["name=systemd"] == "/sys/fs/cgroup/systemd"
    assert mounts[UNIFIED] == "/sys/fs/cgroup/unified"


def test_the_payload_cgroup_of_each_hierarchy() -> None:
    proc = (
        f"4:cpu,cpuacct:/lxc.payload.{NAME}\n"
        f"3:memory:/lxc.payload.{NAME}\n"
        f"2:cpuset:/lxc.payload.{NAME}-1\n"
        f"1:name=systemd:/lxc.payload.{NAME}/init.scope\n"  # init moved deeper: cut there
        f"0::/lxc.payload.{NAME}\n"
    )
    assert payload_cgroups(NAME, proc, cgroup_mounts(MOUNTS)) == PayloadCgroups(
        tasks=[
            f"/sys/fs/cgroup/cpu,cpuacct/lxc.payload.{NAME}/tasks",
            f"/sys/fs/cgroup/memory/lxc.payload.{NAME}/tasks",
            f"/sys/fs/cgroup/cpuset/lxc.payload.{NAME}-1/tasks",
            f"/sys/fs/cgroup/systemd/lxc.payload.{NAME}/tasks",
        ],
        unified=f"/sys/fs/cgroup/unified/lxc.payload.{NAME}/cgroup.procs",
    )


def test_lxc_moves_it_when_the_layout_is_not_the_expected_one() -> None:
    mounts = cgroup_mounts(MOUNTS)
    # Only cgroup2 (nothing to gain: every move waits for the grace period).
    assert payload_cgroups(NAME, f"0::/lxc.payload.{NAME}\n", mounts) is None
    assert payload_cgroups(NAME, "3:memory:/somewhere/else\n", mounts) is None
    assert payload_cgroups(NAME, f"9:blkio:/lxc.payload.{NAME}\n", mounts) is None  # unmounted
    assert payload_cgroups(NAME, "", mounts) is None
