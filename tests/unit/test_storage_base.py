"""Storage driver plumbing: registry, capabilities, config validation, sizes, names, errors."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from schemas.errors import BadRequest, ErrorCode, WarrenError
from services.storage import mounts
from services.storage.drivers import DRIVERS, Capabilities, StorageDriver, StorageError
from services.storage.drivers.base import (
    check_fingerprint,
    check_volume_name,
    host,
    parse_size,
    run,
)


def test_registry_holds_drivers_with_frozen_capabilities():
    assert set(DRIVERS) == {"dir", "btrfs"}
    for name, cls in DRIVERS.items():
        assert issubclass(cls, StorageDriver)
        assert cls.driver == name
        assert isinstance(cls.capabilities, Capabilities)
        with pytest.raises(dataclasses.FrozenInstanceError):
            cls.capabilities.cow_clone = "overlay"  # type: ignore[misc]
    assert DRIVERS["dir"].capabilities.cow_clone == "overlay"
    assert DRIVERS["btrfs"].capabilities.cow_clone == "snapshot"


@pytest.mark.parametrize(
    ("text", "size"),
    [("4096", 4096), ("300MiB", 300 * 2**20), ("5GB", 5 * 10**9), ("1GiB", 2**30), ("2kb", 2000)],
)
def test_parse_size(text: str, size: int):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "ten", "5XB", "-1GiB"])
def test_parse_size_rejects_garbage(text: str):
    with pytest.raises(BadRequest):
        parse_size(text)


def test_names_are_single_safe_path_components():
    fp = "ab" * 32
    assert check_fingerprint(fp) == fp
    assert check_volume_name("c1.x_y-z") == "c1.x_y-z"
    for bad in ("../x", "AB" * 32, "ab" * 31, ""):
        with pytest.raises(BadRequest):
            check_fingerprint(bad)
    for bad in ("a/b", "..", ".hidden", "", "x" * 200):
        with pytest.raises(BadRequest):
            check_volume_name(bad)


@pytest.mark.parametrize("driver", sorted(DRIVERS))
def test_unknown_config_keys_are_rejected(driver: str, tmp_path: Path):
    with pytest.raises(BadRequest, match="bogus"):
        DRIVERS[driver]("p", {"bogus": "1"}, tmp_path)
    with pytest.raises(BadRequest):
        DRIVERS[driver]("bad/name", {}, tmp_path)


async def test_btrfs_refuses_a_directory_not_on_btrfs(tmp_path: Path):
    pool = DRIVERS["btrfs"]("p", {"source": str(tmp_path)}, tmp_path / "w")
    with pytest.raises(BadRequest, match="not a directory on btrfs"):
        await pool.create()


async def test_btrfs_refuses_a_tiny_loop_file(tmp_path: Path):
    pool = DRIVERS["btrfs"]("p", {"size": "1MiB"}, tmp_path)
    with pytest.raises(BadRequest, match="at least"):
        await pool.create()
    assert not (tmp_path / "disks" / "p.img").exists()


async def test_dir_refuses_a_non_empty_source(tmp_path: Path):
    (tmp_path / "something").write_text("x")
    with pytest.raises(BadRequest, match="not an empty directory"):
        await DRIVERS["dir"]("p", {"source": str(tmp_path)}, tmp_path).create()


async def test_host_failures_become_storage_errors(tmp_path: Path):
    with pytest.raises(StorageError) as caught:
        await host((tmp_path / "missing").read_text)
    assert isinstance(caught.value, WarrenError)
    assert caught.value.code is ErrorCode.INTERNAL
    with pytest.raises(StorageError, match="No such file"):
        run(["ls", str(tmp_path / "missing")])
    with pytest.raises(StorageError):
        run(["/nonexistent/binary"])


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_mount_helpers_see_paths_with_spaces(tmp_path: Path):
    # mountinfo escapes a space as \040: the helpers must decode it to find the mount.
    target = tmp_path / "a dir"
    target.mkdir()
    assert not mounts.is_mount(target)
    mounts.mount("tmpfs", target, "tmpfs", "size=1m")
    try:
        assert mounts.is_mount(target)
        assert mounts.fs_type(target / "inside") == "tmpfs"
        assert mounts.mounts_under(tmp_path) == [str(target)]
    finally:
        mounts.umount_all(tmp_path)
    assert mounts.mounts_under(tmp_path) == []
