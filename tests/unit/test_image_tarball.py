"""Unpacking and inspecting good images: unified and split, every compression, squashfs,
fingerprints, and damaged files that must leave nothing behind."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from test_image_support import (
    METADATA_YAML,
    M,
    metadata_members,
    rootfs_members,
    tar_bytes,
    unified,
    write_tar,
)

from schemas.errors import BadRequest, Conflict
from services.common.imagefiles.fingerprint import HashingReader, fingerprint, fingerprint_split
from services.common.imagefiles.tarball import inspect_image, unpack_image

ROOT = os.geteuid() == 0


def leftovers(parent: Path, keep: set[str]) -> list[str]:
    """Entries of ``parent`` other than the input files: a failed unpack must leave none."""
    return sorted(p.name for p in parent.iterdir() if p.name not in keep)


def check_root(rootfs: Path) -> None:
    """The tree written from :func:`rootfs_members`, checked entry by entry."""
    assert (rootfs / "bin/busybox").read_bytes() == b"\x7fELF fake"
    assert stat.S_IMODE((rootfs / "bin/busybox").stat().st_mode) == 0o755
    assert os.readlink(rootfs / "bin/sh") == "/bin/busybox"
    assert os.readlink(rootfs / "bin/ls") == "busybox"
    assert os.readlink(rootfs / "etc/mtab") == "../proc/self/mounts"
    assert stat.S_IMODE((rootfs / "etc/shadow").stat().st_mode) == 0o600
    su, sudo = (rootfs / "usr/bin/su").stat(), (rootfs / "usr/bin/sudo").stat()
    assert su.st_ino == sudo.st_ino and su.st_nlink == 2
    assert stat.S_ISFIFO((rootfs / "run/initctl").lstat().st_mode)
    assert stat.S_IMODE((rootfs / "tmp").stat().st_mode) == 0o1777
    assert (rootfs / "etc/passwd").stat().st_mtime == 1700000000
    assert (rootfs / "home/user").stat().st_mtime == 1700000000  # set after its children
    if ROOT:
        assert stat.S_IMODE(su.st_mode) == 0o4755  # chown did not clear setuid
        home = (rootfs / "home/user").stat()
        assert (home.st_uid, home.st_gid, stat.S_IMODE(home.st_mode)) == (1000, 1000, 0o700)
        assert (rootfs / "home/user/notes").stat().st_uid == 1000


@pytest.mark.parametrize("compression", ["gz", "xz", "bz2", "", "zst"])
def test_unified_round_trip(tmp_path: Path, compression: str) -> None:
    if compression == "zst" and shutil.which("zstd") is None:
        pytest.skip("zstd not installed")
    image = unified(tmp_path / "image.tar", compression)
    info = unpack_image(tmp_path / "out", image)
    assert info.kind == "unified"
    assert info.fingerprint == hashlib.sha256(image.read_bytes()).hexdigest()
    assert info.size == image.stat().st_size
    assert info.metadata.properties["os"] == "testos"
    assert info.metadata.templates["/etc/hostname"].template == "hostname.tpl"
    out = tmp_path / "out"
    assert (out / "metadata.yaml").read_bytes() == METADATA_YAML
    assert (out / "templates/hostname.tpl").exists()
    check_root(out / "rootfs")
    assert inspect_image(image) == info
    assert leftovers(tmp_path, {"image.tar", "out"}) == []


@pytest.mark.parametrize("prefix", ["", "./"])
def test_split_round_trip(tmp_path: Path, prefix: str) -> None:
    meta = write_tar(tmp_path / "meta.tar.xz", metadata_members(), "xz")
    rootfs = write_tar(tmp_path / "rootfs.tar.gz", rootfs_members(prefix), "gz")
    info = unpack_image(tmp_path / "out", meta, rootfs)
    assert info.kind == "split" and info.rootfs_format == "gzip"
    both = meta.read_bytes() + rootfs.read_bytes()
    assert info.fingerprint == hashlib.sha256(both).hexdigest()
    assert info.fingerprint == fingerprint_split(meta, rootfs) == fingerprint(meta, rootfs)
    assert info.size == len(both)
    check_root(tmp_path / "out/rootfs")
    assert inspect_image(meta, rootfs) == info


def test_unified_fingerprint_is_the_file_hash(tmp_path: Path) -> None:
    image = unified(tmp_path / "image.tar.gz")
    assert fingerprint(image) == hashlib.sha256(image.read_bytes()).hexdigest()
    assert inspect_image(image).fingerprint == fingerprint(image)


def test_hashing_reader_shares_one_hash(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"x" * 3000)
    b.write_bytes(b"y" * 5000)
    h = hashlib.sha256()
    with open(a, "rb") as fa, open(b, "rb") as fb:
        first, second = HashingReader(fa, h), HashingReader(fb, h)
        assert first.read(10) == b"x" * 10
        first.drain()
        second.drain()
    assert (first.size, second.size) == (3000, 5000)
    assert h.hexdigest() == hashlib.sha256(b"x" * 3000 + b"y" * 5000).hexdigest()


def test_target_that_exists_is_refused(tmp_path: Path) -> None:
    image = unified(tmp_path / "image.tar.gz")
    (tmp_path / "out").mkdir()
    with pytest.raises(Conflict):
        unpack_image(tmp_path / "out", image)
    assert list((tmp_path / "out").iterdir()) == []


def _truncations(tmp_path: Path) -> dict[str, bytes]:
    good_gz = tar_bytes(metadata_members() + rootfs_members(), "gz")
    plain = tar_bytes(metadata_members() + rootfs_members())
    # Cut exactly at a header boundary after some members (end-of-archive blocks gone too):
    # tarfile alone would take this for a complete archive.
    boundary = 512 * 12
    assert plain[boundary : boundary + 512].strip(b"\0")
    corrupt = bytearray(good_gz)
    corrupt[len(corrupt) // 2 : len(corrupt) // 2 + 64] = b"\xff" * 64
    return {
        "gzip-half": good_gz[: len(good_gz) // 2],
        "gzip-no-trailer": good_gz[:-6],
        "gzip-corrupt": bytes(corrupt),
        "tar-header-boundary": plain[:boundary],
        "tar-mid-data": plain[: 512 * 12 + 100],
        "tar-bad-header": plain[:boundary] + b"\x01" * 512 + plain[boundary + 512 :],
        "xz-half": tar_bytes(metadata_members() + rootfs_members(), "xz")[:300],
        "garbage": b"this is not an image at all" * 40,
        "empty": b"",
    }


@pytest.mark.parametrize(
    "case",
    [
        "gzip-half",
        "gzip-no-trailer",
        "gzip-corrupt",
        "tar-header-boundary",
        "tar-mid-data",
        "tar-bad-header",
        "xz-half",
        "garbage",
        "empty",
    ],
)
def test_damaged_image_leaves_nothing(tmp_path: Path, case: str) -> None:
    image = tmp_path / "image"
    image.write_bytes(_truncations(tmp_path)[case])
    with pytest.raises(BadRequest):
        unpack_image(tmp_path / "out", image)
    with pytest.raises(BadRequest):
        inspect_image(image)
    assert leftovers(tmp_path, {"image"}) == []


def test_damaged_split_rootfs_leaves_nothing(tmp_path: Path) -> None:
    meta = write_tar(tmp_path / "meta.tar", metadata_members())
    rootfs = tmp_path / "rootfs.tar.gz"
    whole = tar_bytes(rootfs_members(""), "gz")
    rootfs.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(BadRequest, match="corrupt or truncated"):
        unpack_image(tmp_path / "out", meta, rootfs)
    assert leftovers(tmp_path, {"meta.tar", "rootfs.tar.gz"}) == []


def test_invalid_metadata_leaves_nothing(tmp_path: Path) -> None:
    bad = [M("metadata.yaml", data=b"creation_date: 1\n"), *rootfs_members()]
    image = write_tar(tmp_path / "image.tar", bad)
    with pytest.raises(BadRequest, match="architecture"):
        unpack_image(tmp_path / "out", image)
    assert leftovers(tmp_path, {"image.tar"}) == []


needs_squashfs = pytest.mark.skipif(
    shutil.which("mksquashfs") is None or shutil.which("unsquashfs") is None,
    reason="squashfs-tools not installed",
)


def _squash(tmp_path: Path, populate) -> Path:  # type: ignore[no-untyped-def]
    src = tmp_path / "src"
    src.mkdir()
    populate(src)
    out = tmp_path / "rootfs.squashfs"
    subprocess.run(
        ["mksquashfs", str(src), str(out), "-noappend", "-no-progress", "-quiet"],
        check=True,
        capture_output=True,
    )
    shutil.rmtree(src)
    return out


@needs_squashfs
def test_split_squashfs_rootfs(tmp_path: Path) -> None:
    def populate(src: Path) -> None:
        (src / "bin").mkdir()
        (src / "bin/busybox").write_bytes(b"bb")
        os.symlink("/bin/busybox", src / "bin/sh")

    meta = write_tar(tmp_path / "meta.tar", metadata_members())
    rootfs = _squash(tmp_path, populate)
    info = unpack_image(tmp_path / "out", meta, rootfs)
    assert info.rootfs_format == "squashfs"
    assert info.fingerprint == hashlib.sha256(meta.read_bytes() + rootfs.read_bytes()).hexdigest()
    assert os.readlink(tmp_path / "out/rootfs/bin/sh") == "/bin/busybox"
    assert inspect_image(meta, rootfs).fingerprint == info.fingerprint


@needs_squashfs
def test_squashfs_escaping_symlink_rejected(tmp_path: Path) -> None:
    def populate(src: Path) -> None:
        (src / "etc").mkdir()
        os.symlink("../../../etc/shadow", src / "etc/shadow")

    meta = write_tar(tmp_path / "meta.tar", metadata_members())
    rootfs = _squash(tmp_path, populate)
    with pytest.raises(BadRequest, match="escapes the root"):
        unpack_image(tmp_path / "out", meta, rootfs)
    assert leftovers(tmp_path, {"meta.tar", "rootfs.squashfs"}) == []
