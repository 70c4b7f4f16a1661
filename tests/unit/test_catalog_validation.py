"""Names, config keys, values and devices are refused as LXD 5.0.2 refuses them (messages
recorded from the real daemon)."""

from __future__ import annotations

import pytest

from schemas.errors import BadRequest
from services.instance.catalog import validation
from services.instance.catalog.devices import check_devices
from services.instance.catalog.keys import check_profile_config, check_project_config
from services.instance.catalog.nic_devices import missing_network, network_refs


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "No name provided"),
        ("a/b", "Profile names may not contain slashes"),
        (".", 'Invalid profile name "."'),
        ("..", 'Invalid profile name ".."'),
    ],
)
def test_bad_profile_names(name: str, message: str) -> None:
    with pytest.raises(BadRequest) as err:
        validation.check_profile_name(name)
    assert err.value.message == message


@pytest.mark.parametrize("name", ["a b", "web", "x.y", "a_b", "Ω"])
def test_profile_names_lxd_accepts(name: str) -> None:
    validation.check_profile_name(name)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "No name provided"),
        ("a/b", "Project names may not contain slashes"),
        ("a b", "Project names may not contain spaces"),
        ("a_b", "Project names may not contain underscores"),
        ("a'b", "Project names may not contain quotes"),
        ('a"b', "Project names may not contain quotes"),
        ("*", "Reserved project name"),
        ("..", 'Invalid project name ".."'),
    ],
)
def test_bad_project_names(name: str, message: str) -> None:
    with pytest.raises(BadRequest) as err:
        validation.check_project_name(name)
    assert err.value.message == message


@pytest.mark.parametrize("name", ["a.b", "x?y", "x:y", "a-b", "a*b", "A"])
def test_project_names_lxd_accepts(name: str) -> None:
    validation.check_project_name(name)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"foo": "bar"}, "Unknown configuration key: foo"),
        ({"limits.cpu": "abc"}, "Invalid CPU limit syntax"),
        ({"limits.cpu": "-1"}, "Invalid CPU limit syntax"),
        ({"limits.memory": "abc"}, "Invalid value: abc"),
        ({"limits.memory": "1.5GB"}, "Invalid value: 1.5GB"),
        ({"limits.memory": "1G"}, "Invalid value: 1G"),
        ({"limits.memory": "0"}, "Memory limit can't be 0"),
        ({"security.nesting": "maybe"}, 'Invalid value for a boolean "maybe"'),
        ({"volatile.foo": "x"}, "Volatile keys can only be set on instances"),
        ({"image.os": "x"}, "Image keys can only be set on instances"),
        ({"limits.processes": "z"}, 'Invalid value for an integer "z"'),
        ({"limits.cpu.priority": "11"}, 'Invalid value for a limit "11". Must be between 0 and 10'),
        ({"limits.memory.enforce": "x"}, 'Invalid value "x" (not one of [soft hard])'),
        (
            {"cluster.evacuate": "x"},
            'Invalid value "x" (not one of [auto migrate live-migrate stop])',
        ),
        ({"snapshots.expiry": "x"}, "Invalid expiry expression"),
        ({"limits.cpu.allowance": "x"}, "Invalid allowance: x"),
        (
            {"security.idmap.base": "x"},
            'Invalid value for uint32 "x": strconv.ParseUint: parsing "x": invalid syntax',
        ),
    ],
)
def test_bad_profile_config(config: dict[str, str], message: str) -> None:
    with pytest.raises(BadRequest) as err:
        check_profile_config(config)
    assert err.value.message == message


def test_profile_config_lxd_accepts() -> None:
    check_profile_config(
        {
            "limits.cpu": "0-3",
            "limits.memory": "50%",
            "limits.memory.swap": "TRUE",
            "security.nesting": "on",
            "security.privileged": "",
            "user.anything.at.all": "x",
            "environment.HOME": "/root",
            "linux.sysctl.net.ipv4.ip_forward": "1",
            "limits.kernel.nofile": "abc",
            "raw.lxc": "lxc.foo=1",
            "boot.autostart.priority": "-5",
            "limits.cpu.allowance": "25ms/100ms",
            "snapshots.schedule": "0 6 * * *, @daily",
            "snapshots.expiry": "1d 2w",
            "cloud-init.user-data": "#cloud-config",
        }
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"foo": "1"}, 'Invalid project configuration key "foo"'),
        (
            {"features.storage.buckets": "true"},
            'Invalid project configuration key "features.storage.buckets"',
        ),
        (
            {"features.profiles": "maybe"},
            'Invalid project configuration key "features.profiles" value: '
            'Invalid value for a boolean "maybe"',
        ),
        (
            {"limits.containers": "x"},
            'Invalid project configuration key "limits.containers" value: Invalid value for '
            'uint32 "x": strconv.ParseUint: parsing "x": invalid syntax',
        ),
        (
            {"restricted.containers.nesting": "foo"},
            'Invalid project configuration key "restricted.containers.nesting" value: '
            'Invalid value "foo" (not one of [block allow])',
        ),
        (
            {"backups.compression_algorithm": "foo"},
            'Invalid project configuration key "backups.compression_algorithm" value: '
            'Invalid compression algorithm "foo"',
        ),
    ],
)
def test_bad_project_config(config: dict[str, str], message: str) -> None:
    with pytest.raises(BadRequest) as err:
        check_project_config(config)
    assert err.value.message == message


def test_project_config_lxd_accepts() -> None:
    check_project_config(
        {
            "features.networks": "true",
            "user.a": "b",
            "restricted": "true",
            "restricted.devices.disk": "managed",
            "restricted.containers.privilege": "isolated",
            "limits.memory": "1GB",
            "images.auto_update_interval": "3",
            "backups.compression_algorithm": "gzip",
        }
    )


NO_SOURCE = 'Disk entry is missing the required "source" or "path" property'
BAD_DEVICE_NAME = (
    "Name can only contain alphanumeric, forward slash, hyphen, colon, underscore and full "
    "stop characters"
)


@pytest.mark.parametrize(
    ("devices", "message"),
    [
        ({"d": {"path": "/x"}}, 'Failed loading device "d": Missing device type in config'),
        ({"d": {"type": "bogus"}}, 'Failed loading device "d": Unsupported device type'),
        ({"d": {"type": "nic"}}, 'Failed loading device "d": Unsupported device type'),
        ({"d": {"type": "disk"}}, NO_SOURCE),
        ({"d": {"type": "disk", "path": "/x"}}, NO_SOURCE),
        ({"d": {"type": "disk", "path": "/"}}, 'Root disk entry must have a "pool" property set'),
        ({"d": {"type": "disk", "source": "/x", "foo": "1"}}, 'Invalid device option "foo"'),
        (
            {"d": {"type": "nic", "nictype": "bridged"}},
            'Invalid value for device option "parent": Required value',
        ),
        (
            {"d": {"type": "proxy"}},
            'Invalid value for device option "listen": Unknown protocol type ""',
        ),
        ({"x y": {"type": "none"}}, BAD_DEVICE_NAME),
        ({"": {"type": "none"}}, "Name must be 1-63 characters long"),
    ],
)
def test_bad_devices(devices: dict[str, dict[str, str]], message: str) -> None:
    name = next(iter(devices))
    with pytest.raises(BadRequest) as err:
        check_devices(devices)
    assert err.value.message == f'Device validation failed for "{name}": {message}'


def test_devices_lxd_accepts() -> None:
    check_devices(
        {
            "root": {"type": "disk", "path": "/", "pool": "default"},
            "data": {"type": "disk", "source": "/srv", "path": "/srv", "readonly": "true"},
            "eth0": {"type": "nic", "network": "warrenbr0", "name": "eth0"},
            "eth1": {"type": "nic", "nictype": "bridged", "parent": "br0"},
            "null": {"type": "unix-char", "path": "/dev/null"},
            "web": {"type": "proxy", "listen": "tcp:0.0.0.0:80", "connect": "tcp:127.0.0.1:80"},
            "block": {"type": "none"},
        }
    )


def test_empty_values_unset_keys() -> None:
    assert validation.clean_config({"user.a": "", "user.b": "1"}) == {"user.b": "1"}


def test_network_refs_name_the_network_nics_a_write_adds_or_changes() -> None:
    old = {"eth0": {"type": "nic", "network": "br0"}, "root": {"type": "disk", "path": "/"}}
    new = {
        **old,
        "eth1": {"type": "nic", "network": "br1"},
        "eth2": {"type": "nic", "nictype": "bridged", "parent": "br2"},
        "eth3": {"type": "nic", "network": "br0", "name": "eth3"},
    }
    assert network_refs(new) == [("eth0", "br0"), ("eth1", "br1"), ("eth3", "br0")]
    assert network_refs(new, old) == [("eth1", "br1"), ("eth3", "br0")]
    changed = {"eth0": {"type": "nic", "network": "br0", "mtu": "1400"}}
    assert network_refs(changed, old) == [("eth0", "br0")]
    assert missing_network("eth0", "nonexist", "default") == (
        'Device validation failed for "eth0": Failed loading device "eth0": Failed to load '
        'network "nonexist" for project "default": Network not found'
    )
