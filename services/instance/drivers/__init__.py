"""Instance drivers: a registry of backends behind one interface (DESIGN.md section 5)."""

from __future__ import annotations

from services.instance.drivers.base import DriverCapabilities, InstanceDriver
from services.instance.drivers.errors import DriverError
from services.instance.drivers.lxc import LxcDriver

DRIVERS: dict[str, type[InstanceDriver]] = {LxcDriver.name: LxcDriver}

__all__ = ["DRIVERS", "DriverCapabilities", "DriverError", "InstanceDriver", "LxcDriver"]
