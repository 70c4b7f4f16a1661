"""Hostile images are rejected with a BadRequest naming the member, and write nothing anywhere.

Every archive here is built the way an attacker would build it; each case checks the error,
that the target does not exist, that no temporary directory is left, and that the sentinel
directory outside the target is untouched.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from test_image_support import M, metadata_members, rootfs_members, write_tar

from schemas.errors import BadRequest
from services.common.imagefiles.members import climbs_out, split_name
from services.common.imagefiles.tarball import inspect_image, unpack_image
from services.common.imagefiles.tree import TreeWriter

ROOT = os.geteuid() == 0


def _cases(outside: Path) -> dict[str, tuple[list[M], str]]:
    """name -> (members appended to a good image, expected words in the error)."""
    o = str(outside)
    return {
        "dotdot": ([M("rootfs/../evil", data=b"x")], "'..'"),
        "dotdot-deep": ([M("rootfs/etc/../../../evil", data=b"x")], "'..'"),
        "absolute": ([M(f"{o}/evil", data=b"x")], "absolute path"),
        "absolute-rootfs": ([M("/rootfs/etc/evil", data=b"x")], "absolute path"),
        "symlink-climbs": ([M("rootfs/bin/up", "symlink", link="../../..")], "escapes the root"),
        "symlink-climbs-root": ([M("rootfs/up", "symlink", link="..")], "escapes the root"),
        "symlink-climbs-nested": (
            [M("rootfs/a/b/c", "symlink", link="../../x/../../../etc")],
            "escapes the root",
        ),
        "symlink-then-write": (
            [M("rootfs/a", "symlink", link=o), M("rootfs/a/pwned", data=b"x")],
            "through the symlink",
        ),
        "symlink-then-dir": (
            [M("rootfs/a", "symlink", link=o), M("rootfs/a/sub", "dir")],
            "through the symlink",
        ),
        "symlink-replaces-dir": (
            [M("rootfs/etc", "symlink", link=o), M("rootfs/etc/pwned", data=b"x")],
            "replaces an earlier dir",
        ),
        "file-then-child": ([M("rootfs/etc/passwd/x", data=b"x")], "not a directory"),
        "hardlink-absolute": ([M("rootfs/h", "hardlink", link="/etc/shadow")], "absolute path"),
        "hardlink-dotdot": ([M("rootfs/h", "hardlink", link="../../etc/shadow")], "'..'"),
        "hardlink-missing": (
            [M("rootfs/h", "hardlink", link="rootfs/later"), M("rootfs/later", data=b"x")],
            "not an earlier regular file",
        ),
        "hardlink-to-dir": ([M("rootfs/h", "hardlink", link="rootfs/etc")], "not an earlier"),
        "hardlink-to-symlink": (
            [M("rootfs/h", "hardlink", link="rootfs/bin/sh")],
            "not an earlier",
        ),
        "char-device": ([M("rootfs/dev/mem", "chr", major=1, minor=1)], "device nodes"),
        "block-device": ([M("rootfs/dev/sda", "blk", major=8, minor=0)], "device nodes"),
        "stray-top-level": ([M("evil.sh", data=b"x")], "not part of an LXD image"),
        "template-symlink": (
            [M("templates/hosts.tpl", "symlink", link="/etc/shadow")],
            "only files and dirs",
        ),
        "metadata-symlink": ([M("metadata.yaml", "symlink", link="/etc/shadow")], "regular file"),
        "rootfs-not-dir": ([], "rootfs must be a directory"),
    }


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    sentinel = tmp_path / "outside"
    sentinel.mkdir()
    (sentinel / "keep").write_text("untouched")
    return sentinel


@pytest.mark.parametrize("case", list(_cases(Path("/x"))))
def test_hostile_unified_member_rejected(tmp_path: Path, outside: Path, case: str) -> None:
    extra, words = _cases(outside)[case]
    members = metadata_members() + rootfs_members() + extra
    if case == "rootfs-not-dir":
        members = [*metadata_members(), M("rootfs", data=b"not a dir")]
    image = write_tar(tmp_path / "image.tar", members)
    with pytest.raises(BadRequest, match=words) as err:
        _unpack(tmp_path, image)
    # The message names the offending member: the last one added, except where the member that
    # sets the trap is itself refused (a symlink replacing a directory).
    offender = {
        "symlink-replaces-dir": "rootfs/etc",
        "rootfs-not-dir": "rootfs",
        "hardlink-missing": "rootfs/h",
    }.get(case, extra[-1].name if extra else "")
    assert f"archive member {offender!r}" in err.value.message
    with pytest.raises(BadRequest, match=words):
        inspect_image(image)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image.tar", "outside", "work"]
    assert list((tmp_path / "work").iterdir()) == []
    assert sorted(p.name for p in outside.iterdir()) == ["keep"]
    assert (outside / "keep").read_text() == "untouched"


def _unpack(tmp_path: Path, image: Path, *rootfs: Path, **kw: bool) -> None:
    (tmp_path / "work").mkdir(exist_ok=True)
    unpack_image(tmp_path / "work" / "out", image, *rootfs, **kw)


def test_split_rootfs_escape_rejected(tmp_path: Path, outside: Path) -> None:
    meta = write_tar(tmp_path / "meta.tar", metadata_members())
    rootfs = write_tar(
        tmp_path / "rootfs.tar",
        [M("./etc", "dir"), M("./etc/x", "symlink", link=str(outside)), M("./etc/x/y", data=b"")],
    )
    with pytest.raises(BadRequest, match="through the symlink"):
        _unpack(tmp_path, meta, rootfs)
    assert list((tmp_path / "work").iterdir()) == []
    assert sorted(p.name for p in outside.iterdir()) == ["keep"]


def test_split_metadata_may_not_carry_rootfs(tmp_path: Path) -> None:
    meta = write_tar(tmp_path / "meta.tar", [*metadata_members(), M("rootfs", "dir")])
    rootfs = write_tar(tmp_path / "rootfs.tar", rootfs_members(""))
    with pytest.raises(BadRequest, match="not part of an LXD image"):
        _unpack(tmp_path, meta, rootfs)


def test_missing_metadata_rejected(tmp_path: Path) -> None:
    image = write_tar(tmp_path / "image.tar", rootfs_members())
    with pytest.raises(BadRequest, match=r"no metadata\.yaml"):
        _unpack(tmp_path, image)
    assert list((tmp_path / "work").iterdir()) == []


def test_missing_rootfs_rejected(tmp_path: Path) -> None:
    image = write_tar(tmp_path / "image.tar", metadata_members())
    with pytest.raises(BadRequest, match="no rootfs"):
        inspect_image(image)


@pytest.mark.skipif(not ROOT, reason="mknod of device nodes needs root")
def test_devices_allowed_when_asked(tmp_path: Path) -> None:
    extra = [M("rootfs/dev/null", "chr", mode=0o666, major=1, minor=3)]
    image = write_tar(tmp_path / "image.tar", metadata_members() + rootfs_members() + extra)
    _unpack(tmp_path, image, allow_devices=True)
    node = (tmp_path / "work/out/rootfs/dev/null").lstat()
    assert stat.S_ISCHR(node.st_mode) and os.major(node.st_rdev) == 1
    assert os.minor(node.st_rdev) == 3 and stat.S_IMODE(node.st_mode) == 0o666


def test_writer_never_follows_a_host_symlink(tmp_path: Path, outside: Path) -> None:
    """Defence in depth: even a path the policy let through cannot be redirected on disk."""
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(outside, root / "link")
    image = write_tar(tmp_path / "x.tar", [M("f", data=b"x")])
    import tarfile

    with tarfile.open(image) as tar:
        member = tar.getmember("f")
    with TreeWriter(str(root), preserve_owner=False) as writer:
        with pytest.raises(BadRequest, match="refusing to write through"):
            writer.add(("link", "pwned"), "file", member, None)
    assert sorted(p.name for p in outside.iterdir()) == ["keep"]


@pytest.mark.parametrize(
    ("parent", "target", "escapes"),
    [
        ((), "..", True),
        ((), "a/../..", True),
        (("usr", "lib"), "../../bin/x", False),
        (("usr", "lib"), "../../../bin/x", True),
        (("a",), "./.././b", False),
        (("a",), "b/../../..", True),
    ],
)
def test_climbs_out(parent: tuple[str, ...], target: str, escapes: bool) -> None:
    assert climbs_out(parent, target) is escapes


def test_split_name() -> None:
    assert split_name("./a//b/./c/") == ("a", "b", "c")
    assert split_name("./") == ()
    with pytest.raises(BadRequest):
        split_name("a/../b")
    with pytest.raises(BadRequest):
        split_name("/a")
