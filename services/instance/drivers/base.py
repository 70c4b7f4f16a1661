"""The instance driver interface: an abstract base class and capabilities declared as data."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from schemas.errors import BadRequest
from services.instance.drivers.spec import (
    ExecRequest,
    InstanceSpec,
    InstanceState,
    Limits,
    NicSpec,
    Status,
)


@dataclass(frozen=True)
class DriverCapabilities:
    """What a driver can do; orchestration branches on these, never on a driver's name."""

    kind: Literal["container", "virtual-machine"]
    live_limits: bool  # limits can change while running
    freeze: bool
    checkpoint: bool
    exec: bool


class ExecProcess(ABC):
    """A command started inside an instance by :meth:`InstanceDriver.spawn`."""

    pid: int  # on the host

    @abstractmethod
    async def wait(self) -> int:
        """Wait for the command to end; its exit code (128+N when killed by signal N)."""

    @abstractmethod
    def signal(self, signum: int) -> None:
        """Send a signal to the command (nothing happens once it has ended)."""


class InstanceDriver(ABC):
    """One backend (LXC, QEMU, ...) that runs instances on this host.

    Every method is a coroutine; blocking host calls run in a thread. Instances are addressed by
    their host name (``spec.name``). Errors are schemas.errors classes: NotFound for an unknown
    instance, Conflict for a wrong state (e.g. starting a running one), BadRequest for bad input
    and for exec into a frozen or stopped instance (as LXD answers), DriverError when the host
    fails.
    """

    name: ClassVar[str]
    capabilities: ClassVar[DriverCapabilities]

    def __init__(self, root: Path) -> None:
        """``root`` is a directory this driver owns (e.g. $WARREN_DIR/lxc)."""
        self.root = root

    @abstractmethod
    async def create(self, spec: InstanceSpec) -> None:
        """Define a stopped instance; Conflict if it exists already."""

    @abstractmethod
    async def update(self, spec: InstanceSpec) -> None:
        """Replace the definition; takes effect on the next start (limits: see set_limits)."""

    @abstractmethod
    async def start(self, name: str) -> InstanceState:
        """Start a stopped instance and return its state; Conflict if it is not stopped."""

    @abstractmethod
    async def stop(self, name: str, *, timeout: float = 30.0, force: bool = False) -> None:
        """Stop: ask init to shut down within ``timeout`` seconds, then kill; or kill at once.

        A frozen instance is thawed first; ``timeout <= 0`` kills at once; stopping a stopped
        instance does nothing (reconciliation may repeat it).
        """

    @abstractmethod
    async def freeze(self, name: str) -> None:
        """Freeze every process of a running instance (a frozen one stays frozen)."""

    @abstractmethod
    async def unfreeze(self, name: str) -> None:
        """Thaw a frozen instance (a running one stays running)."""

    @abstractmethod
    async def state(self, name: str) -> InstanceState:
        """Status and live figures, the interfaces inside included (a netns read: listings
        of many instances should prefer :meth:`statuses` when figures are not asked)."""

    @abstractmethod
    async def set_limits(self, name: str, limits: Limits) -> None:
        """Apply limits to a running instance now (absent limits are reset to unlimited)."""

    async def set_nics(self, name: str, nics: tuple[NicSpec, ...]) -> None:
        """Bring a running instance's nics in line with ``nics`` now (hot-plug and unplug);
        call :meth:`update` with the same nics afterwards so the next start matches."""
        raise BadRequest(f"the {self.name} driver cannot change the nics of a running instance")

    @abstractmethod
    async def spawn(self, name: str, request: ExecRequest) -> ExecProcess:
        """Start a command inside a running instance, with the caller's file descriptors.

        A pty's secondary end given as stdin becomes the command's controlling terminal; the
        caller resizes it on the pty's main end and may signal the command through the result.
        """

    async def exec(self, name: str, request: ExecRequest) -> int:
        """Run a command to completion inside a running instance; returns its exit code."""
        return await (await self.spawn(name, request)).wait()

    @abstractmethod
    async def delete(self, name: str) -> None:
        """Remove a stopped instance's definition (never its rootfs, which storage owns).

        Conflict while it runs. Also removes a half-created instance (a directory without a
        definition) and whatever host objects (cgroups) a stopped instance left behind.
        """

    @abstractmethod
    async def log_files(self, name: str) -> dict[str, Path]:
        """The instance's log files by name (e.g. "lxc.log", "console.log"), for /logs."""

    @abstractmethod
    async def exists(self, name: str) -> bool:
        """Whether the instance is defined on this host."""

    async def status(self, name: str) -> Status:
        """Just the status of one instance (cheaper than :meth:`state` where drivers can)."""
        return (await self.state(name)).status

    async def statuses(self) -> dict[str, Status]:
        """The status of every running or frozen instance (absent ones are stopped), in one
        go: what a listing of many instances needs. Drivers may do it more cheaply."""
        found: dict[str, Status] = {}
        for name in await self.list():
            if await self.exists(name):
                status = (await self.state(name)).status
                if status is not Status.STOPPED:
                    found[name] = status
        return found

    @abstractmethod
    async def list(self) -> list[str]:
        """Host names of every instance this driver has on this host (for reconciliation).

        Includes half-created ones (``exists`` is False for those; ``delete`` removes them).
        """
