"""The busybox image: a static busybox with its applets, an init setup and a DHCP client script.

Built from the host's ``busybox-static`` (``/bin/busybox``) straight into the tarball, with no
staging directory, so it takes milliseconds. ``/sbin/init`` is busybox init: it runs
``/etc/init.d/rcS`` (host name, loopback, a DHCP client per interface, in the background so
booting never waits for a lease) and then idles, so the container stays up as a system
container. The DHCP client uses ``/usr/share/udhcpc/default.script``, busybox's default path.
"""

from __future__ import annotations

import re
import struct
import subprocess
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

BUSYBOX = "/bin/busybox"

DIRS = {
    "bin": 0o755,
    "sbin": 0o755,
    "usr": 0o755,
    "usr/bin": 0o755,
    "usr/sbin": 0o755,
    "usr/share": 0o755,
    "usr/share/udhcpc": 0o755,
    "etc": 0o755,
    "etc/init.d": 0o755,
    "dev": 0o755,
    "proc": 0o555,
    "sys": 0o555,
    "run": 0o755,
    "tmp": 0o1777,
    "root": 0o700,
    "home": 0o755,
    "mnt": 0o755,
    "var": 0o755,
    "var/log": 0o755,
    "var/tmp": 0o1777,
}

INITTAB = """\
# busybox init: run rcS once, then idle (a system container has no getty to respawn).
::sysinit:/etc/init.d/rcS
::restart:/sbin/init
::shutdown:/bin/sync
"""

RCS = """\
#!/bin/sh
# Boot script run by busybox init (see /etc/inittab).
# The container manager names the container (its UTS name); /etc/hostname only fills in.
case "$(hostname)" in
    ""|localhost|"(none)") [ -s /etc/hostname ] && hostname -F /etc/hostname ;;
esac
ip link set lo up 2>/dev/null
for dev in /sys/class/net/*; do
    name=${dev##*/}
    [ "$name" = lo ] || [ ! -e "$dev" ] && continue
    ip link set "$name" up 2>/dev/null
    # In the background: a container without a DHCP server must still boot at once.
    # -x hostname: the DHCP server learns the name, for its DNS.
    udhcpc -f -i "$name" -s /usr/share/udhcpc/default.script -p "/run/udhcpc.$name.pid" \\
        -x "hostname:$(hostname)" >/dev/null 2>&1 &
done
exit 0
"""

DHCP_SCRIPT = """\
#!/bin/sh
# udhcpc event script: apply the lease to the interface, default route and resolv.conf.
case "$1" in
    deconfig)
        ip -4 addr flush dev "$interface"
        ip link set "$interface" up
        ;;
    bound|renew)
        if ! ip -4 addr show dev "$interface" | grep -q "inet $ip/${mask:-24} "; then
            ip -4 addr flush dev "$interface"
            ip addr add "$ip/${mask:-24}" dev "$interface"
        fi
        if [ -n "$router" ]; then
            while ip route del default dev "$interface" 2>/dev/null; do :; done
            for r in $router; do
                ip route add default via "$r" dev "$interface" && break
            done
        fi
        {
            [ -n "$domain" ] && echo "search $domain"
            for d in $dns; do echo "nameserver $d"; done
        } > /etc/resolv.conf.new
        mv /etc/resolv.conf.new /etc/resolv.conf
        ;;
esac
exit 0
"""

FILES: dict[str, tuple[str, int]] = {
    "etc/passwd": ("root:x:0:0:root:/root:/bin/sh\n", 0o644),
    "etc/shadow": ("root:*:0:0:99999:7:::\n", 0o600),
    "etc/group": ("root:x:0:\n", 0o644),
    "etc/hostname": ("busybox\n", 0o644),
    "etc/hosts": ("127.0.0.1\tlocalhost\n::1\tlocalhost\n", 0o644),
    "etc/resolv.conf": ("", 0o644),
    "etc/inittab": (INITTAB, 0o644),
    "etc/init.d/rcS": (RCS, 0o755),
    "etc/profile": ('export PATH="/bin:/sbin:/usr/bin:/usr/sbin"\n', 0o644),
    "usr/share/udhcpc/default.script": (DHCP_SCRIPT, 0o755),
}


def is_static(path: str) -> bool:
    """Is the ELF file at ``path`` statically linked (no program interpreter)?"""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:  # 64-bit ELF only (every host Warren runs on)
            return False
        (phoff,) = struct.unpack_from("<Q", head, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    pt_interp = 3
    return all(struct.unpack_from("<I", table, i * phentsize)[0] != pt_interp for i in range(phnum))


def busybox_version(busybox: str) -> str:
    """The version busybox reports (``1.35.0``)."""
    out = subprocess.run([busybox], capture_output=True, text=True).stdout
    match = re.search(r"BusyBox v(\d[\w.]*)", out)
    if match is None:
        raise RuntimeError(f"{busybox} does not look like busybox")
    return match.group(1)


def applets(busybox: str) -> list[str]:
    """Paths (``usr/bin/env``) of every applet, as ``busybox --install`` would place them."""
    out = subprocess.run(
        [busybox, "--list-full"], capture_output=True, text=True, check=True
    ).stdout
    return sorted({line.strip().lstrip("/") for line in out.splitlines() if line.strip()})


def build_busybox(output_dir: str | Path, *, busybox: str = BUSYBOX) -> BuildResult:
    """Build ``busybox-<arch>.tar.gz`` in ``output_dir``; the path, fingerprint, size, time."""
    started = time.perf_counter()
    if not Path(busybox).is_file() or not is_static(busybox):
        raise RuntimeError(f"{busybox} is not a static busybox (apt-get install busybox-static)")
    version = busybox_version(busybox)
    created = creation_date()
    arch = host_architecture()
    stamp = datetime.fromtimestamp(created, UTC).strftime("%Y%m%d_%H%M")
    meta = image_metadata(created, "busybox", version, f"BusyBox {version} {arch} ({stamp})")
    dest = Path(output_dir) / f"busybox-{arch}.tar.gz"
    with ImageTarWriter(dest, mtime=created) as tar:
        tar.metadata(meta)
        for name, text in TEMPLATE_FILES.items():
            tar.template(name, text)
        tar.rootfs()
        for name, mode in DIRS.items():
            tar.add_dir(name, mode)
        tar.add_host_file("bin/busybox", busybox, 0o755)
        for applet in applets(busybox):
            if applet != "bin/busybox":
                tar.add_symlink(applet, "/bin/busybox")
        for name, (text, mode) in FILES.items():
            tar.add_file(name, text.encode(), mode)
        tar.add_symlink("var/run", "/run")
    return finished(dest, started)
