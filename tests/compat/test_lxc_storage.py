"""``lxc storage ...`` (the real LXD 5.0 client) against a whole Warren stack.

Pools live on real host objects: a ``dir`` pool is a directory of the stack, a ``btrfs``
pool a loop file formatted and mounted by the storage service. Whatever a test leaves
(mounts, loop devices) is removed at the end of the module even when a test failed.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from _helpers import LxcMonitor, lifecycle, lxc_ok, mentions, metadata, prime_listener, unique
from stack import Stack, wait_for

from services.storage import mounts

NO_CLIENT = shutil.which("lxc") is None
pytestmark = [
    pytest.mark.skipif(NO_CLIENT, reason="the lxc client (lxd-client) is missing"),
    pytest.mark.timeout(240),
]


def loop_devices_of(path: Path) -> list[str]:
    out = subprocess.run(
        ["losetup", "-n", "-O", "NAME", "-j", str(path)], capture_output=True, text=True
    ).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def stack(module_warren: Stack) -> Iterator[Stack]:
    """The module's stack; afterwards every mount and loop device under it is released."""
    yield module_warren
    module_warren.stop()
    mounts.umount_all(module_warren.dir)
    for image in module_warren.dir.glob("disks/*.img"):
        for device in loop_devices_of(image):
            subprocess.run(["losetup", "-d", device], check=False)


def csv_rows(text: str) -> dict[str, list[str]]:
    return {line.split(",")[0]: line.split(",") for line in text.splitlines() if line}


def lxc_fails(stack: Stack, *args: str) -> str:
    result = stack.lxc(*args)
    assert result.returncode != 0, f"lxc {' '.join(args)} succeeded:\n{result.stdout}"
    return result.stderr


def error_of(stack: Stack, method: str, path: str, body: Any = None) -> tuple[int, str]:
    status, _, reply = stack.request(method, path, body)
    assert reply["type"] == "error" and reply["error_code"] == status, reply
    return status, reply["error"]


def test_default_pool_and_the_default_profile_root_disk(stack: Stack) -> None:
    rows = csv_rows(lxc_ok(stack, "storage", "list", "--format", "csv"))
    source = str(stack.dir / "storage-pools" / "default")
    assert rows["default"][:3] == ["default", "dir", source]
    shown = yaml.safe_load(lxc_ok(stack, "storage", "show", "default"))
    assert shown["driver"] == "dir" and shown["status"] == "Created"
    assert shown["config"] == {"source": source} and shown["locations"] == ["none"]

    def root_disk() -> Any:
        return metadata(stack, "/1.0/profiles/default")["devices"].get("root")

    assert wait_for(root_disk, 30, "the default profile's root disk") == {
        "type": "disk",
        "path": "/",
        "pool": "default",
    }
    assert "/1.0/profiles/default" in metadata(stack, "/1.0/storage-pools/default")["used_by"]
    info = yaml.safe_load(lxc_ok(stack, "storage", "info", "default"))
    assert info["info"]["driver"] == "dir" and "total space" in info["info"]
    resources = metadata(stack, "/1.0/storage-pools/default/resources")
    assert 0 < resources["space"]["used"] <= resources["space"]["total"]
    assert metadata(stack, "/1.0/storage-pools") == ["/1.0/storage-pools/default"]


def test_dir_pool_create_set_unset_edit_delete(stack: Stack) -> None:
    name = unique("p2")
    monitor = LxcMonitor(stack)
    try:
        prime_listener(stack, lambda probe: mentions(monitor.events(), probe))
        assert f"Storage pool {name} created" in lxc_ok(stack, "storage", "create", name, "dir")
        assert name in csv_rows(lxc_ok(stack, "storage", "list", "--format", "csv"))
        lxc_ok(stack, "storage", "set", name, "user.note", "hello")
        assert yaml.safe_load(lxc_ok(stack, "storage", "show", name))["config"]["user.note"] == (
            "hello"
        )
        lxc_ok(stack, "storage", "unset", name, "user.note")
        status, _, _ = stack.request(
            "PATCH", f"/1.0/storage-pools/{name}", {"config": {"user.patched": "1"}}
        )
        assert status == 200
        assert metadata(stack, f"/1.0/storage-pools/{name}")["config"]["user.patched"] == "1"
        # A PUT: user keys not sent are dropped, the source stays.
        lxc_ok(stack, "storage", "edit", name, input="description: edited\nconfig: {}\n")
        pool = metadata(stack, f"/1.0/storage-pools/{name}")
        assert pool["description"] == "edited"
        assert pool["config"] == {"source": str(stack.dir / "storage-pools" / name)}
        assert "Storage pool not found" not in lxc_ok(stack, "storage", "info", name)
        assert f"Storage pool {name} deleted" in lxc_ok(stack, "storage", "delete", name)
        source = f"/1.0/storage-pools/{name}"
        events = monitor.wait_for(
            lambda evs: ("storage-pool-deleted", source) in lifecycle(evs, {source}),
            "storage-pool-deleted in lxc monitor's output",
        )
    finally:
        monitor.stop()
    actions = [action for action, _ in lifecycle(events, {source})]
    assert actions[0] == "storage-pool-created" and actions[-1] == "storage-pool-deleted"
    assert "storage-pool-updated" in actions
    assert "Storage pool not found" in lxc_fails(stack, "storage", "show", name)
    assert not (stack.dir / "storage-pools" / name).exists()


def test_btrfs_loop_pool(stack: Stack) -> None:
    name = unique("b1")
    root = stack.dir / "storage-pools" / name
    image = stack.dir / "disks" / f"{name}.img"
    lxc_ok(stack, "storage", "create", name, "btrfs", "size=300MiB")
    try:
        shown = yaml.safe_load(lxc_ok(stack, "storage", "show", name))
        assert shown["driver"] == "btrfs"
        assert shown["config"] == {"source": str(image), "size": str(300 * 1024 * 1024)}
        assert mounts.is_mount(root) and mounts.fs_type(root) == "btrfs"
        info = yaml.safe_load(lxc_ok(stack, "storage", "info", name))
        assert info["info"]["total space"] == "300.00MiB"
        assert lxc_ok(stack, "storage", "volume", "list", name, "--format", "csv") == ""
    finally:
        lxc_ok(stack, "storage", "delete", name)
    assert not image.exists() and not root.exists()
    wait_for(lambda: not loop_devices_of(image), 30, "the loop device to be released")


def test_volume_listing(stack: Stack) -> None:
    table = lxc_ok(stack, "storage", "volume", "list", "default")
    assert "TYPE" in table and "NAME" in table
    assert metadata(stack, "/1.0/storage-pools/default/volumes") == []
    assert metadata(stack, "/1.0/storage-pools/default/volumes/image?recursion=1") == []
    status, message = error_of(stack, "GET", "/1.0/storage-pools/default/volumes/image/nope")
    assert (status, message) == (404, "Storage volume not found")


def test_bad_input_gets_lxd_errors_and_changes_nothing(stack: Stack) -> None:
    before = metadata(stack, "/1.0/storage-pools?recursion=1")
    name = unique("bad")
    assert "Unknown driver" in lxc_fails(stack, "storage", "create", name, "zfs")
    assert 'Invalid option "bogus"' in lxc_fails(stack, "storage", "create", name, "dir", "bogus=1")
    cases = [
        ("POST", "/1.0/storage-pools", {"name": name, "driver": "zfs"}, 400, "Unknown driver"),
        ("POST", "/1.0/storage-pools", {"name": "a/b", "driver": "dir"}, 400, None),
        ("POST", "/1.0/storage-pools", {"driver": "dir"}, 400, "No name provided"),
        ("POST", "/1.0/storage-pools", {"name": "default", "driver": "dir"}, 409, None),
        ("GET", f"/1.0/storage-pools/{name}", None, 404, "Storage pool not found"),
        ("DELETE", f"/1.0/storage-pools/{name}", None, 404, "Storage pool not found"),
        ("PUT", "/1.0/storage-pools/default", {"config": {"source": "/x"}}, 400, None),
        ("DELETE", "/1.0/storage-pools/default", None, 400, "The storage pool is currently in use"),
    ]
    for method, path, body, status, message in cases:
        got_status, got_message = error_of(stack, method, path, body)
        assert got_status == status, (method, path, got_message)
        if message is not None:
            assert got_message == message
    assert "cannot be changed" in lxc_fails(stack, "storage", "set", "default", "source", "/x")
    assert metadata(stack, "/1.0/storage-pools?recursion=1") == before
    assert not (stack.dir / "storage-pools" / name).exists()


def test_restart_keeps_pools_and_remounts_the_btrfs_pool(stack: Stack) -> None:
    """Last in the module: it restarts the stack."""
    loop, plain = unique("b2"), unique("p3")
    root = stack.dir / "storage-pools" / loop
    lxc_ok(stack, "storage", "create", loop, "btrfs", "size=300MiB")
    lxc_ok(stack, "storage", "create", plain, "dir", "user.k=v")
    try:
        stack.stop()
        # Unmount behind Warren's back (a reboot would): the start must mount it again.
        mounts.umount(root)
        stack.start()
        rows = csv_rows(lxc_ok(stack, "storage", "list", "--format", "csv"))
        assert {loop, plain, "default"} <= set(rows)
        assert metadata(stack, f"/1.0/storage-pools/{plain}")["config"]["user.k"] == "v"
        assert wait_for(lambda: mounts.is_mount(root), 30, f"{root} mounted again")
        assert metadata(stack, f"/1.0/storage-pools/{loop}")["status"] == "Created"
    finally:
        lxc_ok(stack, "storage", "delete", loop)
        lxc_ok(stack, "storage", "delete", plain)
    assert not root.exists()
