"""What an instance driver is given (specs, limits, exec requests) and what it reports (state).

These models are the driver boundary: the instance service translates LXD config into them, and
every driver implementation accepts exactly these shapes.
"""

from __future__ import annotations

import re
import uuid
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# A host name must be usable as a directory name, a cgroup name and an LXC container name.
HOST_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
# Either "25ms/100ms" (a hard CFS quota) or "50%" (a relative weight).
_ALLOWANCE_RE = re.compile(r"^(\d{1,3})%$|^(\d+)ms/(\d+)ms$")
_CPUSET_RE = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")
_ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_IFNAME_RE = re.compile(r"^[^/:\s=]{1,15}$")
#: The byte that lets a gated command (``ExecRequest.gate``) run.
GATE_OPEN = b"\x01"
#: The exit code of a gated command whose gate was closed without it (it never ran).
GATE_CLOSED_CODE = 126


def host_name_for(instance_id: uuid.UUID | str) -> str:
    """The stable host-side name of an instance, from its aggregate id (names change on rename)."""
    return "w-" + uuid.UUID(str(instance_id)).hex


def _no_newline(value: str, what: str) -> str:
    # Driver config files are line based: a newline would smuggle in another key.
    if "\n" in value or "\r" in value or "\0" in value:
        raise ValueError(f"{what} must not contain newlines or NUL bytes")
    return value


class IdMap(BaseModel):
    """The host id range the container's ids 0..count-1 map to (a user namespace)."""

    model_config = ConfigDict(frozen=True)

    host_uid: int = Field(default=1_000_000, ge=1)
    host_gid: int = Field(default=1_000_000, ge=1)
    count: int = Field(default=65_536, ge=1)


class Limits(BaseModel):
    """Resource limits; None means unlimited (applying limits resets absent ones)."""

    model_config = ConfigDict(frozen=True)

    cpu: int | str | None = None  # a CPU count (int) or a CPU set such as "0-1,3"
    cpu_allowance: str | None = None  # "50%" (relative weight) or "25ms/100ms" (hard quota)
    memory: int | None = Field(default=None, ge=4 * 1024 * 1024)  # bytes
    processes: int | None = Field(default=None, ge=1)

    @field_validator("cpu")
    @classmethod
    def _cpu(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, int) and value < 1:
            raise ValueError("cpu count must be at least 1")
        if isinstance(value, str) and not _CPUSET_RE.match(value):
            raise ValueError(f"invalid CPU set {value!r}")
        return value

    @field_validator("cpu_allowance")
    @classmethod
    def _allowance(cls, value: str | None) -> str | None:
        if value is None:
            return value
        match = _ALLOWANCE_RE.match(value)
        if not match:
            raise ValueError(f"invalid CPU allowance {value!r} (want N% or Nms/Mms)")
        if match.group(1) is not None and not 0 < int(match.group(1)) <= 100:
            raise ValueError("CPU allowance percentage must be within 1..100")
        if match.group(2) is not None and (int(match.group(2)) < 1 or int(match.group(3)) < 1):
            raise ValueError("CPU allowance times must be positive")
        return value


class NicSpec(BaseModel):
    """One veth nic: its host end (``host_name``) on ``bridge``, its peer ``name`` inside."""

    model_config = ConfigDict(frozen=True)

    name: str  # the interface inside the instance
    bridge: str  # the host bridge the host end is enslaved to
    hwaddr: str  # lower-case, colon separated
    host_name: str  # the host end of the veth pair
    mtu: int | None = Field(default=None, ge=1280, le=16384)  # None: the kernel's default

    @field_validator("name", "bridge", "host_name")
    @classmethod
    def _ifname(cls, value: str) -> str:
        if not _IFNAME_RE.match(value) or value in (".", ".."):
            raise ValueError(f"invalid interface name {value!r}")
        return value

    @field_validator("hwaddr")
    @classmethod
    def _hwaddr(cls, value: str) -> str:
        value = value.lower()
        if not _MAC_RE.match(value):
            raise ValueError(f"invalid MAC address {value!r}")
        return value


class NetworkAddress(BaseModel):
    """An address of an interface, as LXD's instance state shows it."""

    family: str  # inet / inet6
    address: str
    netmask: str  # the prefix length
    scope: str  # global / link / local


class NetworkCounters(BaseModel):
    """Traffic of an interface, seen from inside the instance."""

    bytes_received: int = 0
    bytes_sent: int = 0
    packets_received: int = 0
    packets_sent: int = 0
    errors_received: int = 0
    errors_sent: int = 0
    packets_dropped_outbound: int = 0
    packets_dropped_inbound: int = 0


class NetworkInterface(BaseModel):
    """One interface inside a running instance (LXD's ``InstanceStateNetwork``)."""

    addresses: list[NetworkAddress] = Field(default_factory=list)
    counters: NetworkCounters = NetworkCounters()
    hwaddr: str = ""
    host_name: str = ""  # the host end of its veth pair ("" for others)
    mtu: int = 0
    state: str = "down"  # up / down
    type: str = "broadcast"  # broadcast / loopback / point-to-point


class InstanceSpec(BaseModel):
    """Everything a driver needs to define an instance on the host."""

    model_config = ConfigDict(frozen=True)

    name: str  # the host name (host_name_for(aggregate id)), not the user-visible name
    rootfs: Path  # a directory prepared (and owned) by the storage layer
    privileged: bool = False
    idmap: IdMap | None = None  # required when unprivileged, forbidden when privileged
    # True: the driver maps an unshifted rootfs with an idmapped mount; False: already shifted.
    rootfs_idmapped_mount: bool = True
    limits: Limits = Limits()
    environment: dict[str, str] = Field(default_factory=dict)  # for init
    hostname: str = "localhost"
    init: tuple[str, ...] = ("/sbin/init",)
    console_log: Path | None = None  # default: <instance dir>/console.log
    log: Path | None = None  # default: <instance dir>/lxc.log
    nics: tuple[NicSpec, ...] = ()

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not HOST_NAME_RE.match(value):
            raise ValueError(f"invalid host name {value!r}")
        return value

    @field_validator("rootfs", "console_log", "log")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        if value is not None:
            _no_newline(str(value), "a path")
            if not value.is_absolute():
                raise ValueError(f"path {value} must be absolute")
        return value

    @field_validator("hostname")
    @classmethod
    def _hostname(cls, value: str) -> str:
        if not re.match(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$", value):
            raise ValueError(f"invalid hostname {value!r}")
        return value

    @field_validator("environment")
    @classmethod
    def _environment(cls, value: dict[str, str]) -> dict[str, str]:
        for key, item in value.items():
            if not _ENV_KEY_RE.match(key):
                raise ValueError(f"invalid environment variable name {key!r}")
            _no_newline(item, f"environment variable {key}")
        return value

    @field_validator("init")
    @classmethod
    def _init(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("init command must not be empty")
        for arg in value:
            _no_newline(arg, "init arguments")
            if " " in arg:
                # lxc.init.cmd is split on spaces: an argument cannot carry one.
                raise ValueError("init arguments must not contain spaces")
        return value

    @field_validator("nics")
    @classmethod
    def _nics(cls, value: tuple[NicSpec, ...]) -> tuple[NicSpec, ...]:
        for attr in ("name", "host_name", "hwaddr"):
            seen = [getattr(nic, attr) for nic in value]
            if len(set(seen)) != len(seen):
                raise ValueError(f"two nics share a {attr}")
        return value

    @model_validator(mode="after")
    def _idmap_matches_privilege(self) -> InstanceSpec:
        if self.privileged and self.idmap is not None:
            raise ValueError("a privileged instance has no id map")
        if not self.privileged and self.idmap is None:
            raise ValueError("an unprivileged instance needs an id map")
        return self


class ExecRequest(BaseModel):
    """A command to run; the caller owns the file descriptors (None: /dev/null).

    For an interactive command, pass a pty's secondary end as stdin, stdout and stderr: it
    becomes the command's controlling terminal.

    ``gate``, a pipe's read end, splits the spawn in two: the command is made ready in the
    instance (the costly part) but runs only once one byte (``GATE_OPEN``) is written to the
    pipe; if the writer closes it first, it never runs and ends with ``GATE_CLOSED_CODE``.
    """

    command: list[str] = Field(min_length=1)
    environment: dict[str, str] = Field(default_factory=dict)
    cwd: str = "/"
    uid: int = Field(default=0, ge=0)
    gid: int = Field(default=0, ge=0)
    stdin: int | None = None
    stdout: int | None = None
    stderr: int | None = None
    gate: int | None = None

    @field_validator("environment")
    @classmethod
    def _environment(cls, value: dict[str, str]) -> dict[str, str]:
        for key, item in value.items():
            if not _ENV_KEY_RE.match(key) or "\0" in item:
                raise ValueError(f"invalid environment variable {key!r}")
        return value


class Status(StrEnum):
    """Instance status, spelled as LXD spells it."""

    RUNNING = "Running"
    STOPPED = "Stopped"
    FROZEN = "Frozen"


class InstanceState(BaseModel):
    """Live figures of an instance (zeros when stopped)."""

    status: Status
    pid: int = -1  # init's pid on the host; -1 when stopped (as LXD reports)
    processes: int = 0
    memory_usage: int = 0  # bytes
    memory_usage_peak: int = 0  # bytes
    cpu_usage_ns: int = 0
    #: Interfaces inside by name; read only when asked (``state(name)``), empty otherwise.
    network: dict[str, NetworkInterface] = Field(default_factory=dict)
