"""Project limits (pure): LXD 5.0.2's count checks and messages, and what Warren refuses to
store until it enforces it. Messages as recorded from LXD 5.0.2 (tests/compat/LXD-REFERENCE.md)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from schemas.errors import BadRequest, Conflict
from services.instance.catalog import limits
from services.instance.catalog.limits import Usage


@dataclass(frozen=True)
class Held:
    type: str


def test_usage_counts_instances_by_type() -> None:
    usage = Usage.of([Held("container"), Held("virtual-machine"), Held("container")])
    assert (usage.containers, usage.virtual_machines, usage.instances) == (2, 1, 3)
    assert usage.of_type("container") == 2 and usage.of_type("virtual-machine") == 1
    assert Usage.of([]).instances == 0


def test_room_checks_the_type_limit_then_the_total() -> None:
    both = {"limits.containers": "1", "limits.instances": "1"}
    with pytest.raises(Conflict) as err:
        limits.check_room("lim", both, Usage(containers=1))
    assert err.value.message == (
        'Reached maximum number of instances of type "container" in project "lim"'
    )
    config = {"limits.containers": "5", "limits.instances": "1"}
    with pytest.raises(Conflict) as err:
        limits.check_room("lim", config, Usage(containers=1))
    assert err.value.message == 'Reached maximum number of instances in project "lim"'
    # Virtual machines count towards the total, not towards containers.
    with pytest.raises(Conflict, match="instances in project"):
        limits.check_room("lim", {"limits.instances": "1"}, Usage(virtual_machines=1))
    limits.check_room("lim", {"limits.containers": "1"}, Usage(virtual_machines=3))
    limits.check_room("lim", {"limits.instances": "2"}, Usage(containers=1))
    limits.check_room("lim", {}, Usage(containers=100))
    with pytest.raises(Conflict, match='type "virtual-machine"'):
        limits.check_room("lim", {"limits.virtual-machines": "0"}, Usage(), "virtual-machine")


def test_a_limit_below_the_count_is_refused_with_lxd_messages() -> None:
    usage = Usage(containers=1)
    with pytest.raises(Conflict) as err:
        limits.check_limit_changes("lim", {}, {"limits.containers": "0"}, usage)
    assert err.value.message == (
        'Can\'t change "limits.containers" in project "lim": "limits.containers" is too low: '
        'there currently are 1 instances of type container in project "lim"'
    )
    with pytest.raises(Conflict) as err:
        limits.check_limit_changes("lim", {}, {"limits.instances": "0"}, usage)
    assert err.value.message == (
        'Can\'t change limits.instances in project "lim": "limits.instances" is too low: '
        'there currently are 1 total instances in project "lim"'
    )
    # Both at once: key order decides which is reported (LXD's order is a map's).
    with pytest.raises(Conflict, match=r'"limits\.containers" is too low'):
        limits.check_limit_changes(
            "lim", {}, {"limits.instances": "0", "limits.containers": "0"}, usage
        )
    limits.check_limit_changes("lim", {}, {"limits.instances": "1"}, usage)
    limits.check_limit_changes("lim", {}, {"limits.virtual-machines": "0"}, usage)
    # Unchanged limits are not checked again (LXD checks the changed keys only).
    same = {"limits.instances": "0"}
    limits.check_limit_changes("lim", same, same, usage)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("limits.cpu", "2"),
        ("limits.memory", "1GB"),
        ("limits.processes", "10"),
        ("limits.disk", "5GB"),
        ("restricted", "true"),
        ("restricted", "1"),
        ("restricted.containers.nesting", "allow"),
        ("restricted.containers.privilege", "isolated"),
        ("restricted.devices.disk", "block"),
        ("restricted.devices.disk.paths", "/srv"),
        ("restricted.idmap.uid", "1000"),
        ("restricted.cluster.groups", "g1"),
        ("restricted.snapshots", "allow"),
    ],
)
def test_unenforced_keys_are_refused(key: str, value: str) -> None:
    with pytest.raises(BadRequest) as err:
        limits.check_supported("p", {}, {key: value})
    assert err.value.message.startswith(
        f'Project configuration key "{key}" is not supported by Warren yet'
    )


def test_defaults_and_enforced_keys_are_accepted() -> None:
    limits.check_supported(
        "p",
        {},
        {
            "restricted": "false",
            "restricted.backups": "block",
            "restricted.containers.privilege": "unprivileged",
            "restricted.devices.nic": "managed",
            "restricted.devices.disk": "managed",
            "limits.instances": "3",
            "limits.containers": "2",
            "limits.virtual-machines": "0",
            "limits.networks": "1",
            "features.networks": "false",
            "user.x": "y",
        },
    )
    # What the project already holds is left alone.
    limits.check_supported("p", {"limits.cpu": "2"}, {"limits.cpu": "2"})


def test_networks_feature_only_in_default() -> None:
    with pytest.raises(BadRequest, match=r'"features\.networks" is not supported by Warren yet'):
        limits.check_supported("p", {}, {"features.networks": "true"})
    limits.check_supported("default", {}, {"features.networks": "true"})
    assert limits.without_networks_feature("p", {"features.networks": "yes"}) == {
        "features.networks": "false"
    }
    assert limits.without_networks_feature("default", {"features.networks": "true"}) == {
        "features.networks": "true"
    }
    assert limits.without_networks_feature("p", {"a": "b"}) == {"a": "b"}
