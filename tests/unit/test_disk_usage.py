"""Disk figures, the pure parts: btrfs qgroup output, tree walks, and the ``disk`` section of
an instance state (with a storage service that answers, and one that does not)."""

from __future__ import annotations

import os
from pathlib import Path

from schemas.errors import Unavailable
from schemas.storage import InstanceVolumeRef, InstanceVolumeUsage
from services.instance.instances import disk
from services.instance.instances.state import InstanceState
from services.storage.drivers.btrfs_qgroups import parse_qgroups
from services.storage.drivers.layout import tree_bytes

QGROUPS_6 = """\
Qgroupid    Referenced    Exclusive   Path
--------    ----------    ---------   ----
0/5              16384        16384   <toplevel>
0/256          2019328        16384   images/abc
0/258          2019328      1019904   containers/w-1
1/100          4038656      1036288   <none>
"""

QGROUPS_OLD = """\
qgroupid         rfer         excl
--------         ----         ----
0/5             16384        16384
0/259         2019328        32768
"""


def test_qgroups_give_level_zero_exclusive_bytes_by_subvolume_id():
    assert parse_qgroups(QGROUPS_6) == {5: 16384, 256: 16384, 258: 1019904}
    assert parse_qgroups(QGROUPS_OLD) == {5: 16384, 259: 32768}
    assert parse_qgroups("") == {}


def test_tree_bytes_counts_hard_links_once(tmp_path: Path):
    root = tmp_path / "tree"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "data").write_bytes(os.urandom(64 * 1024))
    alone = tree_bytes(root)
    os.link(root / "sub" / "data", root / "again")
    (root / "link").symlink_to("sub/data")
    assert alone >= 64 * 1024
    assert tree_bytes(root) - alone < 8192  # the symlink's few bytes at most, not 64 KiB


def test_tree_bytes_of_an_empty_tree_is_zero(tmp_path: Path):
    assert tree_bytes(tmp_path) == 0


def instance(**changes: str) -> InstanceState:
    base = {
        "id": "i1",
        "project_id": "p",
        "name": "c1",
        "node": "n1",
        "host_name": "w-1",
        "pool": "default",
        "image": "",
    }
    return InstanceState(**{**base, **changes})  # type: ignore[arg-type]


ROOT = {"root": {"type": "disk", "path": "/", "pool": "default"}}
USAGE = InstanceVolumeUsage(pool="default", name="w-1", used=12288, total=0)


def test_disk_state_names_the_root_disk_device():
    assert disk.disk_state(ROOT, USAGE) == {"root": {"usage": 12288, "total": 0}}
    other = {"eth0": {"type": "nic"}, "main": {"type": "disk", "path": "/", "pool": "p"}}
    assert disk.disk_state(other, USAGE) == {"main": {"usage": 12288, "total": 0}}
    assert disk.disk_state(ROOT, None) == {}
    assert disk.disk_state({"eth0": {"type": "nic"}}, USAGE) == {}


class FakePeers:
    """The storage side of Peers: answers with ``found`` or raises ``error``."""

    def __init__(self, found: list[InstanceVolumeUsage], error: Exception | None = None) -> None:
        self.node = "n1"
        self.found = found
        self.error = error
        self.asked: list[list[InstanceVolumeRef]] = []

    async def volume_usage(self, refs: list[InstanceVolumeRef]) -> list[InstanceVolumeUsage]:
        self.asked.append(refs)
        if self.error is not None:
            raise self.error
        return self.found


async def test_root_usages_ask_once_for_this_nodes_instances():
    stray = InstanceVolumeUsage(pool="default", name="w-9", used=1)
    peers = FakePeers([USAGE, stray])
    states = [instance(), instance(id="i2", host_name="w-2"), instance(id="i3", node="n2")]
    found = await disk.root_usages(peers, states)  # type: ignore[arg-type]
    assert found == {"w-1": USAGE}
    assert peers.asked == [
        [
            InstanceVolumeRef(pool="default", name="w-1"),
            InstanceVolumeRef(pool="default", name="w-2"),
        ]
    ]


async def test_root_usages_without_a_storage_answer_are_empty():
    peers = FakePeers([], Unavailable("storage.n1.instance-volume-usage did not answer"))
    assert await disk.root_usages(peers, [instance()]) == {}  # type: ignore[arg-type]
    nobody = FakePeers([USAGE])
    assert await disk.root_usages(nobody, [instance(node="n2")]) == {}  # type: ignore[arg-type]
    assert nobody.asked == []  # nothing of this node: no request
