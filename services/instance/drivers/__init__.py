"""Instance drivers: a registry of backends behind one interface (DESIGN.md section 5).

Usage from the instance service (names are host names from ``spec.host_name_for(id)``)::

    driver = DRIVERS["lxc"](settings.warren_dir / "lxc")
    await driver.create(InstanceSpec(name=host, rootfs=volume_path, idmap=IdMap()))
    await driver.start(host)
    code = await driver.exec(host, ExecRequest(command=["sh", "-c", "echo hi"], stdout=fd))

Orchestration branches on ``driver.capabilities`` (a frozen dataclass), never on names.
Unprivileged instances need every directory above their rootfs to be searchable (o+x) by the
container's root (a high host uid), or LXC refuses to start them.
"""

from __future__ import annotations

from services.instance.drivers.base import DriverCapabilities, ExecProcess, InstanceDriver
from services.instance.drivers.errors import DriverError
from services.instance.drivers.lxc import LxcDriver

DRIVERS: dict[str, type[InstanceDriver]] = {LxcDriver.name: LxcDriver}

__all__ = [
    "DRIVERS",
    "DriverCapabilities",
    "DriverError",
    "ExecProcess",
    "InstanceDriver",
    "LxcDriver",
]
