"""Projects and their profiles as LXD 5.0.2 has them, beyond create/list/delete: where the
profiles of a project without ``features.profiles`` live (and what their URLs say), nics on
missing networks, renames without a name, and the instance count limits (``lxc init`` refused
at the limit, a limit below the count refused), with LXD's own messages.

LXD 5.0.2 answers a reached or too low limit with a 500; Warren with a 409 (the same message).
Run with ``WARREN_COMPAT_LXD_SOCKET=<lxd unix.socket>`` to check against a real LXD.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _helpers import dump, lxc_ok, metadata, unique
from _helpers import status_of as http_status

from services.image.builders.busybox import build_busybox

pytestmark = [
    pytest.mark.skipif(shutil.which("lxc") is None, reason="the lxc client is missing"),
    pytest.mark.timeout(180),
]

FEATURES_OFF = {"features.images": "false", "features.profiles": "false"}
MISSING = "nonexist"
NIC = {"eth0": {"type": "nic", "network": MISSING}}
MISSING_NIC = (
    'Device validation failed for "eth0": Failed loading device "eth0": Failed to load '
    f'network "{MISSING}" for project "default": Network not found'
)


@pytest.fixture
def shared_project(target: Any) -> Iterator[str]:
    """A project without its own profiles (nor images): it uses the default project's."""
    name = unique("np")
    status, _, reply = target.request(
        "POST", "/1.0/projects", {"name": name, "config": FEATURES_OFF}
    )
    assert status == 201, reply
    yield name
    target.request("DELETE", f"/1.0/projects/{name}")


def test_profiles_of_a_project_without_its_own_live_in_default(
    target: Any, shared_project: str
) -> None:
    name, renamed = unique("inp"), unique("inp-r")
    q = f"?project={shared_project}"
    try:
        status, headers, reply = target.request("POST", f"/1.0/profiles{q}", {"name": name})
        assert status == 201, reply
        assert headers["location"] == f"/1.0/profiles/{name}"
        assert f"/1.0/profiles/{name}" in metadata(target, f"/1.0/profiles{q}")
        assert all("?project=" not in url for url in metadata(target, f"/1.0/profiles{q}"))
        assert metadata(target, f"/1.0/profiles/{name}")["name"] == name  # it is default's
        status, headers, reply = target.request(
            "POST", f"/1.0/profiles/{name}{q}", {"name": renamed}
        )
        assert status == 201, reply
        assert headers["location"] == f"/1.0/profiles/{renamed}"
    finally:
        for profile in (name, renamed):
            target.request("DELETE", f"/1.0/profiles/{profile}")


def test_a_profile_nic_on_a_missing_network_is_refused(target: Any) -> None:
    name = unique("nicp")
    before = dump(target)
    status, _, reply = target.request("POST", "/1.0/profiles", {"name": name, "devices": NIC})
    assert (status, reply["error"]) == (400, MISSING_NIC)
    assert http_status(target, f"/1.0/profiles/{name}") == 404
    assert dump(target) == before
    status, _, reply = target.request("POST", "/1.0/profiles", {"name": name})
    assert status == 201, reply
    try:
        before = dump(target)
        # LXD answers PUT and PATCH with a 404 here (the network is what is not found).
        for method in ("PUT", "PATCH"):
            status, _, reply = target.request(method, f"/1.0/profiles/{name}", {"devices": NIC})
            assert (status, reply["error"]) == (404, MISSING_NIC), method
        result = target.lxc("profile", "device", "add", name, "eth0", "nic", f"network={MISSING}")
        assert result.returncode != 0 and f"Error: {MISSING_NIC}" in result.stderr
        assert dump(target) == before
    finally:
        target.request("DELETE", f"/1.0/profiles/{name}")


def test_creates_and_renames_without_a_name(target: Any, shared_project: str) -> None:
    name = unique("noname")
    for path in ("/1.0/profiles", "/1.0/projects"):
        status, _, reply = target.request("POST", path, {})
        assert (status, reply["error"]) == (400, "No name provided"), path
    status, _, reply = target.request("POST", "/1.0/profiles", {"name": name})
    assert status == 201, reply
    try:
        status, _, reply = target.request("POST", f"/1.0/profiles/{name}", {})
        assert (status, reply["error"]) == (400, "No name provided")
    finally:
        target.request("DELETE", f"/1.0/profiles/{name}")
    # LXD renames a project in an operation, which fails; Warren refuses it at once.
    status, _, reply = target.request("POST", f"/1.0/projects/{shared_project}", {})
    if status == 202:
        op = reply["metadata"]["id"]
        final = metadata(target, f"/1.0/operations/{op}/wait?timeout=30")
        assert (final["status"], final["err"]) == ("Failure", "No name provided")
    else:
        assert (status, reply["error"]) == (400, "No name provided")
    assert metadata(target, f"/1.0/projects/{shared_project}")["name"] == shared_project


@pytest.fixture(scope="module")
def image(target: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An alias of the busybox image in the default project."""
    if not Path("/bin/busybox").exists():
        pytest.skip("busybox-static not installed")
    path = Path(build_busybox(tmp_path_factory.mktemp("busybox")).path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    alias = unique("busybox")
    owned = http_status(target, f"/1.0/images/{sha}") == 404
    if owned:
        lxc_ok(target, "image", "import", str(path), "--alias", alias)
    else:
        lxc_ok(target, "image", "alias", "create", alias, sha)
    yield alias
    if owned:
        target.lxc("image", "delete", sha)
    else:
        target.lxc("image", "alias", "delete", alias)


def refused(target: Any, *args: str) -> str:
    result = target.lxc(*args)
    assert result.returncode != 0, result.stdout
    return result.stderr.strip()


def test_instance_count_limits(target: Any, image: str, shared_project: str) -> None:
    p = shared_project
    first, second = unique("lim"), unique("lim")
    lxc_ok(target, "project", "set", p, "limits.containers", "1")
    try:
        lxc_ok(target, "init", image, first, "--project", p)
        assert refused(target, "init", image, second, "--project", p) == (
            f'Error: Reached maximum number of instances of type "container" in project "{p}"'
        )
        assert refused(target, "project", "set", p, "limits.instances", "0") == (
            f'Error: Can\'t change limits.instances in project "{p}": "limits.instances" is too '
            f'low: there currently are 1 total instances in project "{p}"'
        )
        assert refused(target, "project", "set", p, "limits.containers", "0") == (
            f'Error: Can\'t change "limits.containers" in project "{p}": "limits.containers" is '
            f'too low: there currently are 1 instances of type container in project "{p}"'
        )
        lxc_ok(target, "project", "set", p, "limits.containers", "5")
        lxc_ok(target, "project", "set", p, "limits.instances", "1")
        assert refused(target, "init", image, second, "--project", p) == (
            f'Error: Reached maximum number of instances in project "{p}"'
        )
        assert http_status(target, f"/1.0/instances/{second}?project={p}") == 404
        config = metadata(target, f"/1.0/projects/{p}")["config"]
        assert (config["limits.containers"], config["limits.instances"]) == ("5", "1")
        lxc_ok(target, "project", "unset", p, "limits.instances")
        lxc_ok(target, "init", image, second, "--project", p)
    finally:
        for name in (first, second):
            target.lxc("delete", "--force", name, "--project", p)
