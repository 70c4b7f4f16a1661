"""Network drivers: a registry of backends behind one interface (DESIGN.md section 5).

driver = DRIVERS["bridge"](settings.warren_dir / "networks")
await driver.ensure(BridgeSpec(name="br1", ipv4=IPv4Interface("10.1.2.1/24"), ipv4_nat=True))
"""

from __future__ import annotations

from services.network.drivers.base import BridgeSpec, NetworkDriver
from services.network.drivers.bridge import BridgeDriver
from services.network.drivers.errors import DriverError

DRIVERS: dict[str, type[NetworkDriver]] = {BridgeDriver.name: BridgeDriver}

__all__ = ["DRIVERS", "BridgeDriver", "BridgeSpec", "DriverError", "NetworkDriver"]
