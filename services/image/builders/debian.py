"""The Debian image: ``debootstrap --variant=minbase`` from the mirror apt uses on this machine.

An init is included (``sysvinit-core``: light, and needs no systemd support from the host),
with ``ifupdown`` + ``isc-dhcp-client`` so ``eth0`` comes up by DHCP, and ``procps`` (``ps``).
The tree is then made container-ready (no getty on virtual consoles, SIGPWR halts cleanly as
LXC expects, no host ``resolv.conf``, a placeholder ``hostname`` that the image's template
replaces with the instance name, no package caches) and packed into a unified tarball;
device nodes under ``/dev`` are left out (the container runtime populates ``/dev``). The
staging directory is removed afterwards, after unmounting anything debootstrap left mounted in
it on failure.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from services.image.builders.common import (
    TEMPLATE_FILES,
    BuildResult,
    creation_date,
    finished,
    host_architecture,
    image_metadata,
)
from services.image.builders.writer import ImageTarWriter

INCLUDE = ("sysvinit-core", "ifupdown", "isc-dhcp-client", "iproute2", "netbase", "procps")
RELEASES = {"bookworm": "12", "trixie": "13", "bullseye": "11"}
SKIP_CONTENT = ("proc", "sys", "dev", "run", "tmp", "var/cache/apt/archives", "var/lib/apt/lists")

#: /etc/hostname in the image, until the instance's first start renders its name there.
HOSTNAME_PLACEHOLDER = "LXC_NAME\n"
INTERFACES = """\
auto lo
iface lo inet loopback

auto eth0
iface eth0 inet dhcp
"""


def _deb822_mirrors(text: str, suite: str) -> list[str]:
    found = []
    for stanza in re.split(r"\n\s*\n", text):
        fields = {}
        for line in stanza.splitlines():
            if ":" in line and not line.startswith(("#", " ", "\t")):
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.split()
        if "deb" in fields.get("types", []) and suite in fields.get("suites", []):
            found += fields.get("uris", [])
    return found


def _one_line_mirrors(text: str, suite: str) -> list[str]:
    found = []
    for line in text.splitlines():
        words = [w for w in re.sub(r"\[[^]]*\]", "", line).split() if w]
        if len(words) >= 3 and words[0] == "deb" and words[2] == suite:
            found.append(words[1])
    return found


def debian_mirror(suite: str = "bookworm", apt_dir: str | Path = "/etc/apt") -> str:
    """The first http(s) mirror apt here uses for ``suite`` (``sources.list`` and ``.d/``)."""
    apt_dir = Path(apt_dir)
    files = [apt_dir / "sources.list"]
    if (apt_dir / "sources.list.d").is_dir():
        files += sorted((apt_dir / "sources.list.d").iterdir())
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        if path.suffix == ".sources":
            mirrors = _deb822_mirrors(text, suite)
        else:
            mirrors = _one_line_mirrors(text, suite)
        for uri in mirrors:
            if uri.startswith(("http://", "https://")):
                return uri
    raise RuntimeError(f"no Debian mirror for {suite!r} in {apt_dir}; pass --mirror")


def _unmount_under(root: Path) -> None:
    """Lazily unmount whatever is mounted at or below ``root``, deepest first."""
    prefix = str(root.resolve())
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted(points, key=len, reverse=True):
        if point == prefix or point.startswith(prefix + "/"):
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)


def _container_ready(rootfs: Path) -> None:
    """Adjust the debootstrapped tree for life as a system container."""
    # Not the build host's name (debootstrap copied it): a placeholder, as distrobuilder's
    # images have, that the image's hostname template replaces with the instance name at the
    # first start (sysvinit's hostname.sh then sets the kernel host name from it).
    (rootfs / "etc/hostname").write_text(HOSTNAME_PLACEHOLDER)
    (rootfs / "etc/hosts").write_text("127.0.0.1\tlocalhost\n::1\tlocalhost\n")
    (rootfs / "etc/resolv.conf").unlink(missing_ok=True)  # the host's: DHCP writes the real one
    (rootfs / "etc/resolv.conf").write_text("")
    (rootfs / "etc/network").mkdir(exist_ok=True)
    (rootfs / "etc/network/interfaces").write_text(INTERFACES)
    inittab = rootfs / "etc/inittab"
    if inittab.exists():
        # A container has a console but no virtual terminals: gettys on tty1-6 would respawn
        # forever; one on the console is what `lxc console` talks to.
        # LXC stops a container by sending SIGPWR to its init: make that a clean halt.
        lines = [
            f"#{line}" if re.match(r"^\d+:\d+:respawn:/sbin/getty", line) else line
            for line in inittab.read_text().splitlines()
            if not line.startswith("pf::powerwait:")
        ]
        lines.append("pf::powerwait:/sbin/shutdown -t1 -a -h now")
        lines.append("co:2345:respawn:/sbin/getty --noclear 38400 console linux")
        inittab.write_text("\n".join(lines) + "\n")
    for sub in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for entry in (rootfs / sub).glob("*"):
            if entry.is_file() and entry.name != "lock":
                entry.unlink()


def _keep(rel: str, st: os.stat_result) -> bool:
    """Pack an entry? Directories are kept; contents of runtime filesystems are not."""
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) or stat.S_ISSOCK(st.st_mode):
        return False
    parent = os.path.dirname(rel)
    return not any(parent == s or parent.startswith(s + "/") for s in SKIP_CONTENT)


def build_debian(
    output_dir: str | Path,
    *,
    mirror: str | None = None,
    suite: str = "bookworm",
    include: tuple[str, ...] = INCLUDE,
) -> BuildResult:
    """Build ``debian-<suite>-<arch>.tar.gz`` in ``output_dir`` (takes about a minute)."""
    started = time.perf_counter()
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise RuntimeError("debootstrap is missing (apt-get install debootstrap)")
    mirror = mirror or debian_mirror(suite)
    output_dir = Path(output_dir)
    arch = host_architecture()
    stage = Path(tempfile.mkdtemp(prefix=".debian-stage-", dir=output_dir))
    try:
        rootfs = stage / "rootfs"
        log = stage / "debootstrap.log"
        with open(log, "wb") as out:
            proc = subprocess.run(
                [
                    debootstrap,
                    "--variant=minbase",
                    f"--include={','.join(include)}",
                    suite,
                    str(rootfs),
                    mirror,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
            )
        if proc.returncode != 0:
            tail = log.read_text(errors="replace").strip().splitlines()[-5:]
            raise RuntimeError(f"debootstrap failed ({proc.returncode}): " + " | ".join(tail))
        _container_ready(rootfs)
        created = creation_date()
        stamp = datetime.fromtimestamp(created, UTC).strftime("%Y%m%d_%H%M")
        release = RELEASES.get(suite, suite)
        meta = image_metadata(created, "Debian", suite, f"Debian {suite} {arch} ({stamp})")
        meta.properties["version"] = release
        dest = output_dir / f"debian-{suite}-{arch}.tar.gz"
        with ImageTarWriter(dest, mtime=created) as tar:
            tar.metadata(meta)
            for name, text in TEMPLATE_FILES.items():
                tar.template(name, text)
            tar.add_tree(rootfs, keep=_keep)
        return finished(dest, started)
    finally:
        _unmount_under(stage)
        shutil.rmtree(stage, ignore_errors=True)
