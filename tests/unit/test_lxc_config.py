"""The LXC config Warren writes, and the driver spec's validation (no host calls)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.instance.drivers.lxc_config import (
    allowance_items,
    cpuset_of,
    limit_items,
    render_config,
    rootfs_of,
)
from services.instance.drivers.spec import ExecRequest, IdMap, InstanceSpec, Limits, host_name_for

ROOT = Path("/var/lib/warren/lxc")
NAME = host_name_for(uuid.UUID("12345678-1234-5678-1234-567812345678"))


def spec(**fields: object) -> InstanceSpec:
    base: dict[str, object] = {"name": NAME, "rootfs": Path("/pool/c1/rootfs"), "idmap": IdMap()}
    base.update(fields)
    return InstanceSpec(**base)


def render(s: InstanceSpec, memsw: bool = True) -> list[str]:
    text = render_config(s, ROOT, available_cpus=2, all_cpus="0-1", memsw=memsw)
    return text.splitlines()


def test_host_name_is_stable_and_host_safe():
    assert NAME == "w-12345678123456781234567812345678"
    assert host_name_for(str(uuid.UUID(NAME[2:]))) == NAME


def test_unprivileged_config_maps_ids_and_mounts_the_rootfs_idmapped():
    lines = render(spec(hostname="c1", environment={"A": "1 2"}))
    assert "lxc.uts.name = c1" in lines
    assert "lxc.rootfs.path = dir:/pool/c1/rootfs" in lines
    assert "lxc.idmap = u 0 1000000 65536" in lines
    assert "lxc.idmap = g 0 1000000 65536" in lines
    assert "lxc.rootfs.options = idmap=container" in lines
    assert "lxc.net.0.type = empty" in lines
    assert "lxc.mount.auto = proc:mixed sys:mixed cgroup:mixed:force" in lines
    assert f"lxc.console.logfile = {ROOT}/{NAME}/console.log" in lines
    assert f"lxc.log.file = {ROOT}/{NAME}/lxc.log" in lines
    assert "lxc.init.cmd = /sbin/init" in lines
    assert "lxc.environment = A=1 2" in lines
    # No include of common.conf (its hooks sleep on every stop), no AppArmor, no cgroup2 keys.
    assert not any(
        line.startswith(("lxc.include", "lxc.apparmor", "lxc.cgroup2", "lxc.hook"))
        for line in lines
    )


def test_shifted_rootfs_has_an_idmap_but_no_idmapped_mount():
    lines = render(spec(rootfs_idmapped_mount=False))
    assert "lxc.idmap = u 0 1000000 65536" in lines
    assert not any(line.startswith("lxc.rootfs.options") for line in lines)


def test_privileged_config_has_no_idmap_and_custom_paths():
    lines = render(
        spec(
            privileged=True,
            idmap=None,
            init=("/bin/busybox", "init"),
            console_log=Path("/logs/console"),
            log=Path("/logs/lxc"),
        )
    )
    assert not any(line.startswith(("lxc.idmap", "lxc.rootfs.options")) for line in lines)
    assert "lxc.init.cmd = /bin/busybox init" in lines
    assert "lxc.console.logfile = /logs/console" in lines
    assert "lxc.log.file = /logs/lxc" in lines


def test_limits_become_cgroup_v1_keys_memory_before_memsw():
    lines = render(spec(limits=Limits(cpu=4, cpu_allowance="20%", memory=64 << 20, processes=9)))
    cgroup = [line for line in lines if line.startswith("lxc.cgroup.") and "devices" not in line]
    assert cgroup == [
        "lxc.cgroup.cpuset.cpus = 0-1",  # 4 CPUs capped to the 2 there are
        "lxc.cgroup.cpu.shares = 204",
        "lxc.cgroup.cpu.cfs_quota_us = -1",
        f"lxc.cgroup.memory.limit_in_bytes = {64 << 20}",
        f"lxc.cgroup.memory.memsw.limit_in_bytes = {64 << 20}",
        "lxc.cgroup.pids.max = 9",
    ]
    assert not any("memsw" in line for line in render(spec(), memsw=False))


def test_no_limits_means_unlimited_values():
    items = dict(limit_items(Limits(), available_cpus=2, all_cpus="0-1", memsw=True))
    assert items["cpuset.cpus"] == "0-1"
    assert items["memory.limit_in_bytes"] == items["memory.memsw.limit_in_bytes"] == "-1"
    assert items["pids.max"] == "max"
    assert items["cpu.cfs_quota_us"] == "-1"


def test_cpu_sets_and_allowances():
    assert cpuset_of(1, 8) == "0"
    assert cpuset_of(3, 8) == "0-2"
    assert cpuset_of("1,3-4", 2) == "1,3-4"
    assert dict(allowance_items("25ms/100ms")) == {
        "cpu.shares": "1024",
        "cpu.cfs_period_us": "100000",
        "cpu.cfs_quota_us": "25000",
    }
    assert dict(allowance_items("100%"))["cpu.shares"] == "1024"


def test_rootfs_is_read_back_from_a_written_config():
    text = render_config(spec(), ROOT, available_cpus=2, all_cpus="0-1", memsw=True)
    assert rootfs_of(text) == Path("/pool/c1/rootfs")
    assert rootfs_of("lxc.uts.name = x\n") is None


@pytest.mark.parametrize(
    "fields",
    [
        {"privileged": True},  # privileged with an id map
        {"idmap": None},  # unprivileged without one
        {"name": "../etc"},
        {"name": "Upper"},
        {"rootfs": Path("relative/rootfs")},
        {"rootfs": Path("/pool/x\nlxc.apparmor.profile = unconfined")},
        {"hostname": "bad_host"},
        {"environment": {"A": "x\nlxc.init.cmd = /evil"}},
        {"environment": {"1A": "x"}},
        {"init": ()},
        {"init": ("/bin/sh -c",)},
        {"limits": {"memory": 1}},
    ],
)
def test_invalid_specs_are_refused(fields: dict[str, object]):
    with pytest.raises(ValidationError):
        InstanceSpec.model_validate({**spec().model_dump(), **fields})


@pytest.mark.parametrize(
    "fields",
    [
        {"cpu": 0},
        {"cpu": "0-"},
        {"cpu_allowance": "150%"},
        {"cpu_allowance": "0ms/100ms"},
        {"cpu_allowance": "fast"},
        {"memory": 1024},
        {"processes": 0},
    ],
)
def test_invalid_limits_are_refused(fields: dict[str, object]):
    with pytest.raises(ValidationError):
        Limits(**fields)


def test_exec_request_needs_a_command_and_sane_environment():
    with pytest.raises(ValidationError):
        ExecRequest(command=[])
    with pytest.raises(ValidationError):
        ExecRequest(command=["true"], environment={"A B": "1"})
    assert ExecRequest(command=["true"]).cwd == "/"
