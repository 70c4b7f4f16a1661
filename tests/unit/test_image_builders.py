"""Builder helpers: the Debian mirror apt uses, static binary detection, what goes in the tar."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from services.image.builders.busybox import is_static
from services.image.builders.debian import _container_ready, _keep, debian_mirror

DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
"""


def test_mirror_from_deb822(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d/a-other.list").write_text(
        "deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main\n"
    )
    (tmp_path / "sources.list.d/debian.sources").write_text(DEB822)
    assert debian_mirror("bookworm", tmp_path) == "http://deb.debian.org/debian"
    with pytest.raises(RuntimeError, match="no Debian mirror"):
        debian_mirror("trixie", tmp_path)


def test_mirror_from_one_line_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list").write_text(
        "# deb http://old.example/debian bookworm main\n"
        "deb-src http://src.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian bookworm main contrib\n"
    )
    assert debian_mirror("bookworm", tmp_path) == "http://mirror.example/debian"


def test_static_detection(tmp_path: Path) -> None:
    if Path("/bin/busybox").exists():
        assert is_static("/bin/busybox")
    assert not is_static("/bin/ls")  # dynamically linked on Debian
    (tmp_path / "script").write_text("#!/bin/sh\n")
    assert not is_static(str(tmp_path / "script"))


@pytest.mark.parametrize(
    ("rel", "kept"),
    [
        ("etc/passwd", True),
        ("dev", True),
        ("proc", True),
        ("proc/cpuinfo", False),
        ("var/lib/apt/lists/x_Packages", False),
        ("var/lib/apt/listsx", True),
        ("tmp/leftover", False),
        ("usr/lib/tmp/file", True),
    ],
)
def test_tree_filter(tmp_path: Path, rel: str, kept: bool) -> None:
    f = tmp_path / "f"
    f.write_text("")
    assert _keep(rel, os.lstat(f)) is kept


def test_tree_filter_drops_device_nodes() -> None:
    assert _keep("dev/null", os.lstat("/dev/null")) is False


INITTAB = """\
id:2:initdefault:
si::sysinit:/etc/init.d/rcS
l2:2:wait:/etc/init.d/rc 2
pf::powerwait:/etc/init.d/powerfail start
1:2345:respawn:/sbin/getty --noclear 38400 tty1
2:23:respawn:/sbin/getty 38400 tty2
"""


def test_container_ready(tmp_path: Path) -> None:
    # The parts of a debootstrapped tree it adjusts, as debootstrap leaves them.
    for sub in ("etc", "var/cache/apt/archives", "var/lib/apt/lists"):
        (tmp_path / sub).mkdir(parents=True)
    (tmp_path / "etc/hostname").write_text("buildhost\n")  # copied from the build host
    (tmp_path / "etc/resolv.conf").write_text("nameserver 10.0.0.1\n")
    (tmp_path / "etc/inittab").write_text(INITTAB)
    (tmp_path / "var/cache/apt/archives/libc6.deb").write_text("")
    (tmp_path / "var/lib/apt/lists/x_Packages").write_text("")
    (tmp_path / "var/lib/apt/lists/lock").write_text("")
    _container_ready(tmp_path)
    # Not the build host's name: a placeholder the hostname template replaces.
    assert (tmp_path / "etc/hostname").read_text() == "LXC_NAME\n"
    assert (tmp_path / "etc/resolv.conf").read_text() == ""
    assert "iface eth0 inet dhcp" in (tmp_path / "etc/network/interfaces").read_text()
    lines = (tmp_path / "etc/inittab").read_text().splitlines()
    assert [line for line in lines if "getty" in line and not line.startswith("#")] == [
        "co:2345:respawn:/sbin/getty --noclear 38400 console linux"
    ]
    assert [line for line in lines if line.startswith("pf:")] == [
        "pf::powerwait:/sbin/shutdown -t1 -a -h now"
    ]
    assert "si::sysinit:/etc/init.d/rcS" in lines
    assert list((tmp_path / "var/cache/apt/archives").iterdir()) == []
    assert [p.name for p in (tmp_path / "var/lib/apt/lists").iterdir()] == ["lock"]
