"""Project limits, restrictions and features (pure): what Warren enforces, with LXD 5.0's
messages, and what it refuses to store until it can enforce it.

Enforced as LXD enforces them: ``limits.instances``, ``limits.containers`` and
``limits.virtual-machines`` (Warren makes containers only, so the last never bites), both when
an instance is created and when a limit is set below what the project holds. LXD 5.0.2
answers those refusals with a 500; Warren gives the fitting 409 with LXD's message.

``limits.networks`` is stored as LXD stores it for a project without ``features.networks``,
where it has no effect: Warren's networks all live in the ``default`` project.

Not enforced yet, so refused unless set to their default (or unset): the aggregate limits
(``limits.cpu``, ``limits.memory``, ``limits.processes``, ``limits.disk``), ``restricted`` and
every ``restricted.*`` key, and ``features.networks=true`` outside the ``default`` project.
Only changed keys are checked: a value the log already holds stays as it is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from schemas.errors import BadRequest, Conflict
from services.instance.catalog.meta import DEFAULT
from services.instance.catalog.values import is_true

CONTAINER = "container"
VIRTUAL_MACHINE = "virtual-machine"
#: The per-type count limits, by the instance type they count.
TYPE_LIMITS = {CONTAINER: "limits.containers", VIRTUAL_MACHINE: "limits.virtual-machines"}
TOTAL_LIMIT = "limits.instances"

#: Limits LXD enforces by adding up instance options (none of which Warren totals yet).
AGGREGATE_LIMITS = ("limits.cpu", "limits.disk", "limits.memory", "limits.processes")
#: LXD 5.0's defaults of the restrictions that have one (the others default to unset).
RESTRICTION_DEFAULTS: dict[str, tuple[str, ...]] = {
    "restricted.backups": ("block",),
    "restricted.cluster.target": ("block",),
    "restricted.containers.interception": ("block",),
    "restricted.containers.lowlevel": ("block",),
    "restricted.containers.nesting": ("block",),
    # LXD 5.0 spells its default "unpriviliged" and accepts the right spelling too.
    "restricted.containers.privilege": ("unpriviliged", "unprivileged"),
    "restricted.devices.disk": ("managed",),
    "restricted.devices.gpu": ("block",),
    "restricted.devices.infiniband": ("block",),
    "restricted.devices.nic": ("managed",),
    "restricted.devices.pci": ("block",),
    "restricted.devices.proxy": ("block",),
    "restricted.devices.unix-block": ("block",),
    "restricted.devices.unix-char": ("block",),
    "restricted.devices.unix-hotplug": ("block",),
    "restricted.devices.usb": ("block",),
    "restricted.snapshots": ("block",),
    "restricted.virtual-machines.lowlevel": ("block",),
}
NETWORKS_FEATURE = "features.networks"


class Typed(Protocol):
    """Anything with an LXD instance type (an instance state)."""

    @property
    def type(self) -> str: ...


@dataclass(frozen=True)
class Usage:
    """What a project holds that its count limits apply to."""

    containers: int = 0
    virtual_machines: int = 0

    @property
    def instances(self) -> int:
        return self.containers + self.virtual_machines

    def of_type(self, kind: str) -> int:
        return self.virtual_machines if kind == VIRTUAL_MACHINE else self.containers

    @classmethod
    def of(cls, instances: Iterable[Typed]) -> Usage:
        kinds = [i.type for i in instances]
        vms = sum(1 for kind in kinds if kind == VIRTUAL_MACHINE)
        return cls(containers=len(kinds) - vms, virtual_machines=vms)


def _not_supported(key: str) -> BadRequest:
    return BadRequest(
        f'Project configuration key "{key}" is not supported by Warren yet '
        "(it would not be enforced): leave it unset or at its default"
    )


def _is_default(key: str, value: str) -> bool:
    if key == "restricted":
        return not is_true(value)
    if key in AGGREGATE_LIMITS:
        return False
    return value in RESTRICTION_DEFAULTS.get(key, ())


def check_supported(project: str, old: Mapping[str, str], new: Mapping[str, str]) -> None:
    """Refuse setting what Warren cannot enforce yet (first offending key, sorted).

    ``old`` is the config the project has (empty on create), ``new`` the one asked for, both
    without empty values (an empty value is an unset key)."""
    for key in sorted(new):
        value = new[key]
        if old.get(key) == value:
            continue
        if key == NETWORKS_FEATURE and is_true(value) and project != DEFAULT:
            raise BadRequest(
                f'Project feature "{NETWORKS_FEATURE}" is not supported by Warren yet: '
                "networks live in the default project"
            )
        if key == "restricted" or key.startswith("restricted.") or key in AGGREGATE_LIMITS:
            if not _is_default(key, value):
                raise _not_supported(key)


def without_networks_feature(project: str, config: dict[str, str]) -> dict[str, str]:
    """The config as Warren runs it: ``features.networks`` is off outside ``default`` (a log
    written before Warren refused it may still say ``true``)."""
    if project != DEFAULT and is_true(config.get(NETWORKS_FEATURE)):
        return {**config, NETWORKS_FEATURE: "false"}
    return config


def check_limit_changes(
    project: str, old: Mapping[str, str], new: Mapping[str, str], usage: Usage
) -> None:
    """Refuse count limits set below what the project holds, as LXD's project update does
    (only changed limits; several at once are checked in key order)."""
    for key in sorted((TOTAL_LIMIT, *TYPE_LIMITS.values())):
        value = new.get(key, "")
        if value == "" or value == old.get(key, ""):
            continue
        limit = int(value)
        if key == TOTAL_LIMIT:
            if limit < usage.instances:
                raise Conflict(
                    f'Can\'t change limits.instances in project "{project}": '
                    f'"limits.instances" is too low: there currently are {usage.instances} '
                    f'total instances in project "{project}"'
                )
            continue
        kind = next(k for k, limit_key in TYPE_LIMITS.items() if limit_key == key)
        count = usage.of_type(kind)
        if limit < count:
            raise Conflict(
                f'Can\'t change "{key}" in project "{project}": "{key}" is too low: there '
                f'currently are {count} instances of type {kind} in project "{project}"'
            )


def check_room(
    project: str, config: Mapping[str, str], usage: Usage, kind: str = CONTAINER
) -> None:
    """Refuse one more instance of ``kind`` in a project at its limit (LXD checks the
    per-type limit first, then the total)."""
    value = config.get(TYPE_LIMITS[kind], "")
    if value != "" and usage.of_type(kind) >= int(value):
        raise Conflict(
            f'Reached maximum number of instances of type "{kind}" in project "{project}"'
        )
    value = config.get(TOTAL_LIMIT, "")
    if value != "" and usage.instances >= int(value):
        raise Conflict(f'Reached maximum number of instances in project "{project}"')
