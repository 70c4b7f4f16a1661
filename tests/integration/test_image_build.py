"""The image builders, run as a user runs them, produce images our own inspector accepts.

The busybox build is instant and always runs; the Debian one takes about a minute and needs
the Debian mirror, so it is opt-in (``WARREN_TEST_DEBIAN=1``).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from services.common.imagefiles.tarball import inspect_image, unpack_image
from services.image.builders.busybox import is_static

REPO = Path(__file__).resolve().parents[2]
ROOT = os.geteuid() == 0


def build(kind: str, output: Path, *args: str, epoch: str | None = None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if epoch is not None:
        env["SOURCE_DATE_EPOCH"] = epoch
    proc = subprocess.run(
        [sys.executable, "-m", "services.image.build", kind, "--output", str(output), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


needs_busybox = pytest.mark.skipif(
    not Path("/bin/busybox").exists(), reason="busybox-static not installed"
)


@needs_busybox
def test_busybox_image_is_valid(tmp_path: Path) -> None:
    result = build("busybox", tmp_path / "out", epoch="1700000000")
    image = Path(result["path"])
    assert image.parent == tmp_path / "out" and image.name.endswith(".tar.gz")
    info = inspect_image(image)
    assert (info.kind, info.fingerprint, info.size) == (
        "unified",
        result["fingerprint"],
        result["size"],
    )
    assert info.metadata.creation_date == 1700000000
    assert info.metadata.properties["os"] == "busybox"
    assert info.metadata.properties["release"][0].isdigit()
    assert set(info.metadata.templates) == {"/etc/hostname", "/etc/hosts"}

    unpack_image(tmp_path / "image", image)
    rootfs = tmp_path / "image/rootfs"
    assert (tmp_path / "image/templates/hostname.tpl").read_text() == "{{ container.name }}\n"
    assert is_static(str(rootfs / "bin/busybox"))
    for applet in ("sbin/init", "bin/sh", "sbin/udhcpc", "sbin/ip"):
        assert os.readlink(rootfs / applet) == "/bin/busybox", applet
    assert "::sysinit:/etc/init.d/rcS" in (rootfs / "etc/inittab").read_text()
    for script in ("etc/init.d/rcS", "usr/share/udhcpc/default.script"):
        assert (rootfs / script).stat().st_mode & stat.S_IXUSR
        check = subprocess.run(["/bin/busybox", "sh", "-n", str(rootfs / script)])
        assert check.returncode == 0, script
    assert stat.S_IMODE((rootfs / "tmp").stat().st_mode) == 0o1777
    assert (rootfs / "etc/passwd").read_text().startswith("root:x:0:0:")


@needs_busybox
def test_busybox_build_is_reproducible(tmp_path: Path) -> None:
    first = build("busybox", tmp_path / "a", epoch="1700000000")
    second = build("busybox", tmp_path / "b", epoch="1700000000")
    later = build("busybox", tmp_path / "c", epoch="1700000001")
    assert first["fingerprint"] == second["fingerprint"] != later["fingerprint"]


@needs_busybox
@pytest.mark.skipif(not ROOT or shutil.which("chroot") is None, reason="chroot needs root")
def test_busybox_rootfs_runs(tmp_path: Path) -> None:
    image = Path(build("busybox", tmp_path)["path"])
    unpack_image(tmp_path / "image", image)
    proc = subprocess.run(
        [
            "chroot",
            str(tmp_path / "image/rootfs"),
            "/bin/sh",
            "-c",
            "echo hi from $(cat /etc/hostname)",
        ],
        capture_output=True,
        text=True,
        env={"PATH": "/bin:/sbin:/usr/bin:/usr/sbin"},
    )
    assert (proc.returncode, proc.stdout) == (0, "hi from busybox\n")


def test_builder_reports_errors(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.image.build",
            "busybox",
            "--output",
            str(tmp_path),
            "--busybox",
            "/etc/hostname",
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and "not a static busybox" in proc.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("WARREN_TEST_DEBIAN") != "1", reason="set WARREN_TEST_DEBIAN=1")
@pytest.mark.skipif(
    not ROOT or shutil.which("debootstrap") is None, reason="needs root and debootstrap"
)
def test_debian_image_is_valid(tmp_path: Path) -> None:
    result = build("debian", tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [Path(result["path"]).name]
    info = inspect_image(result["path"])
    assert info.fingerprint == result["fingerprint"]
    assert info.metadata.properties["os"] == "Debian"
    assert info.metadata.properties["release"] == "bookworm"
    unpack_image(tmp_path / "image", result["path"])
    rootfs = tmp_path / "image/rootfs"
    assert (rootfs / "sbin/init").is_file()
    # Not the build host's name: a placeholder the hostname template replaces at first start.
    assert (rootfs / "etc/hostname").read_text() == "LXC_NAME\n"
    assert "pf::powerwait:/sbin/shutdown -t1 -a -h now" in (rootfs / "etc/inittab").read_text()
    assert "iface eth0 inet dhcp" in (rootfs / "etc/network/interfaces").read_text()
    assert list((rootfs / "dev").iterdir()) == []
    assert list((rootfs / "var/cache/apt/archives").glob("*.deb")) == []
    proc = subprocess.run(
        ["chroot", str(rootfs), "/usr/bin/dpkg-query", "-W", "sysvinit-core"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0 and proc.stdout.startswith("sysvinit-core")
