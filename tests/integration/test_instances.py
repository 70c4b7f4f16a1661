"""Instances through the whole stack (real nats-server, services, gateway, LXC containers),
for what a user relies on beyond the client scenarios: limits really applied, privilege and
id maps, profiles and projects that instances use, and the node agent's reconcile (a
container killed behind its back, orphans a crash left, a restart of the whole stack)."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from stack import Stack, http_unix, wait_for

from services.image.builders.busybox import build_busybox

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(not Path("/bin/busybox").exists(), reason="busybox-static not installed"),
    pytest.mark.skipif(os.geteuid() != 0, reason="containers need root"),
]

CGROUP = Path("/sys/fs/cgroup")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def call(stack: Stack, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    status, _, answer = http_unix(stack.socket, method, path, body, timeout=60)
    return status, answer


def run_op(stack: Stack, method: str, path: str, body: Any = None) -> dict[str, Any]:
    """Send a request answered with an operation; wait for it and return the final object."""
    status, answer = call(stack, method, path, body)
    assert status == 202, (status, answer)
    op = answer["metadata"]["id"]
    status, final = call(stack, "GET", f"/1.0/operations/{op}/wait?timeout=120")
    assert status == 200, final
    return final["metadata"]


def ok_op(stack: Stack, method: str, path: str, body: Any = None) -> None:
    final = run_op(stack, method, path, body)
    assert final["status"] == "Success", final


def get(stack: Stack, path: str) -> Any:
    status, answer = call(stack, "GET", path)
    assert status == 200, answer
    return answer["metadata"]


def launch(stack: Stack, name: str, **extra: Any) -> None:
    body = {"name": name, "source": {"type": "image", "alias": "busybox"}, **extra}
    ok_op(stack, "POST", "/1.0/instances", body)
    ok_op(stack, "PUT", f"/1.0/instances/{name}/state", {"action": "start"})


def init_pid(stack: Stack, name: str) -> int:
    return int(get(stack, f"/1.0/instances/{name}/state")["pid"])


def cgroup_of(pid: int, controller: str) -> Path:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return CGROUP / controller / path.lstrip("/")
    raise AssertionError(f"no {controller} cgroup for {pid}")


@pytest.fixture(scope="module")
def stack(module_warren: Stack, tmp_path_factory: pytest.TempPathFactory) -> Stack:
    image = build_busybox(tmp_path_factory.mktemp("busybox")).path
    result = module_warren.lxc("image", "import", str(image), "--alias", "busybox")
    assert result.returncode == 0, result.stderr
    return module_warren


def test_limits_are_applied_at_start_and_live(stack: Stack) -> None:
    name = unique("lim")
    launch(stack, name, config={"limits.memory": "64MB", "limits.processes": "50"})
    pid = init_pid(stack, name)
    memory = cgroup_of(pid, "memory")
    assert int((memory / "memory.limit_in_bytes").read_text()) == 64_000_000
    assert (cgroup_of(pid, "pids") / "pids.max").read_text().strip() == "50"
    status, answer = call(
        stack, "PATCH", f"/1.0/instances/{name}", {"config": {"limits.memory": "96MB"}}
    )
    assert status == 200, answer
    # The kernel rounds a limit down to whole pages.
    assert int((memory / "memory.limit_in_bytes").read_text()) == 96_000_000 // 4096 * 4096
    ok_op(stack, "PUT", f"/1.0/instances/{name}/state", {"action": "stop", "force": True})
    ok_op(stack, "DELETE", f"/1.0/instances/{name}")


def test_a_profile_change_reaches_the_running_instances_using_it(stack: Stack) -> None:
    profile, name = unique("limits"), unique("prof-user")
    body = {"name": profile, "config": {"limits.memory": "64MB"}}
    assert call(stack, "POST", "/1.0/profiles", body)[0] == 201
    launch(stack, name, profiles=["default", profile])
    memory = cgroup_of(init_pid(stack, name), "memory") / "memory.limit_in_bytes"
    assert int(memory.read_text()) == 64_000_000
    patch = {"config": {"limits.memory": "128MB"}}
    assert call(stack, "PATCH", f"/1.0/profiles/{profile}", patch)[0] == 200
    wait_for(lambda: int(memory.read_text()) == 128_000_000, 30, "the profile's new limit")
    expanded = get(stack, f"/1.0/instances/{name}")["expanded_config"]
    assert expanded["limits.memory"] == "128MB"
    ok_op(stack, "PUT", f"/1.0/instances/{name}/state", {"action": "stop", "force": True})
    ok_op(stack, "DELETE", f"/1.0/instances/{name}")
    assert call(stack, "DELETE", f"/1.0/profiles/{profile}")[0] == 200


def test_unprivileged_by_default_privileged_on_request(stack: Stack) -> None:
    plain, root = unique("unpriv"), unique("priv")
    launch(stack, plain)
    launch(stack, root, config={"security.privileged": "true"})
    uid_map = Path(f"/proc/{init_pid(stack, plain)}/uid_map").read_text().split()
    assert uid_map == ["0", "1000000", "65536"]
    assert Path(f"/proc/{init_pid(stack, root)}/uid_map").read_text().split()[:2] == ["0", "0"]
    assert os.stat(f"/proc/{init_pid(stack, plain)}").st_uid == 1000000
    for name in (plain, root):
        ok_op(stack, "PUT", f"/1.0/instances/{name}/state", {"action": "stop", "force": True})
        ok_op(stack, "DELETE", f"/1.0/instances/{name}")


def test_profiles_in_use_follow_renames_and_cannot_go(stack: Stack) -> None:
    profile, name = unique("prof"), unique("user")
    assert (
        call(stack, "POST", "/1.0/profiles", {"name": profile, "config": {"user.x": "1"}})[0] == 201
    )
    ok_op(
        stack,
        "POST",
        "/1.0/instances",
        {"name": name, "source": {"alias": "busybox"}, "profiles": ["default", profile]},
    )
    instance = get(stack, f"/1.0/instances/{name}")
    assert instance["expanded_config"]["user.x"] == "1"
    assert instance["expanded_devices"]["root"]["pool"] == "default"
    assert f"/1.0/instances/{name}" in get(stack, f"/1.0/profiles/{profile}")["used_by"]
    # A rename reaches the instance, as in LXD (instances refer to the profile itself).
    renamed = unique("prof")
    assert call(stack, "POST", f"/1.0/profiles/{profile}", {"name": renamed})[0] == 201
    profile = renamed
    instance = get(stack, f"/1.0/instances/{name}")
    assert instance["profiles"] == ["default", profile]
    assert instance["expanded_config"]["user.x"] == "1"
    assert f"/1.0/instances/{name}" in get(stack, f"/1.0/profiles/{profile}")["used_by"]
    status, answer = call(stack, "DELETE", f"/1.0/profiles/{profile}")
    assert status == 409 and "in use" in answer["error"], answer
    ok_op(stack, "DELETE", f"/1.0/instances/{name}")
    assert call(stack, "DELETE", f"/1.0/profiles/{profile}")[0] == 200


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"name": "bad_name", "source": {"alias": "busybox"}}, 400, "Invalid instance name"),
        ({"name": "x1", "source": {"alias": "nope"}}, 404, "not found"),
        ({"name": "x2", "source": {"alias": "busybox"}, "profiles": ["nope"]}, 400, "nope"),
        ({"name": "x3", "source": {"alias": "busybox"}, "config": {"bogus": "1"}}, 400, "bogus"),
        ({"name": "x4", "source": {"alias": "busybox"}, "profiles": []}, 400, "root"),
        (
            {
                "name": "x5",
                "source": {"alias": "busybox"},
                "devices": {"data": {"type": "disk", "source": "/srv", "path": "/data"}},
            },
            400,
            'Device "data" (type disk) is not supported yet',
        ),
    ],
)
def test_bad_creates_are_refused_and_leave_nothing(
    stack: Stack, body: dict[str, Any], status: int, words: str
) -> None:
    before = sorted(os.listdir(stack.dir / "lxc")) if (stack.dir / "lxc").exists() else []
    got, answer = call(stack, "POST", "/1.0/instances", body)
    assert got == status and words in answer["error"], answer
    assert call(stack, "GET", f"/1.0/instances/{body['name']}")[0] == 404
    after = sorted(os.listdir(stack.dir / "lxc")) if (stack.dir / "lxc").exists() else []
    assert after == before


def test_a_duplicate_name_is_a_conflict(stack: Stack) -> None:
    name = unique("dup")
    ok_op(stack, "POST", "/1.0/instances", {"name": name, "source": {"alias": "busybox"}})
    status, answer = call(
        stack, "POST", "/1.0/instances", {"name": name, "source": {"alias": "busybox"}}
    )
    assert status == 409 and "already exists" in answer["error"], answer
    ok_op(stack, "DELETE", f"/1.0/instances/{name}")


def test_an_ephemeral_instance_is_deleted_when_stopped(stack: Stack) -> None:
    name = unique("eph")
    launch(stack, name, ephemeral=True)
    ok_op(stack, "PUT", f"/1.0/instances/{name}/state", {"action": "stop", "force": True})
    assert call(stack, "GET", f"/1.0/instances/{name}")[0] == 404
    assert name not in {i["name"] for i in get(stack, "/1.0/instances?recursion=1")}


def test_a_container_killed_behind_warrens_back_is_seen_stopped(stack: Stack) -> None:
    name = unique("killed")
    launch(stack, name)
    subprocess.run(["kill", "-9", str(init_pid(stack, name))], check=True)
    wait_for(lambda: get(stack, f"/1.0/instances/{name}")["status"] == "Stopped", 30, "stopped")
    ok_op(stack, "PUT", f"/1.0/instances/{name}/state", {"action": "start"})
    assert get(stack, f"/1.0/instances/{name}")["status"] == "Running"
    ok_op(stack, "PUT", f"/1.0/instances/{name}/state", {"action": "stop", "force": True})
    ok_op(stack, "DELETE", f"/1.0/instances/{name}")


def test_restart_restores_instances_and_removes_orphans(warren: Stack, tmp_path: Path) -> None:
    image = build_busybox(tmp_path).path
    assert warren.lxc("image", "import", str(image), "--alias", "busybox").returncode == 0
    running, stopped, auto = unique("run"), unique("stop"), unique("auto")
    launch(warren, running)
    ok_op(warren, "POST", "/1.0/instances", {"name": stopped, "source": {"alias": "busybox"}})
    launch(warren, auto, config={"boot.autostart": "true"})
    auto_pid = init_pid(warren, auto)
    # An orphan a crash could leave: an LXC directory no instance owns.
    orphan = warren.dir / "lxc" / f"w-{uuid.uuid4().hex}"
    orphan.mkdir()
    warren.stop()
    subprocess.run(["kill", "-9", str(auto_pid)], check=True)  # as a host reboot would
    warren.start()

    def settled() -> bool:
        listed = {i["name"]: i["status"] for i in get(warren, "/1.0/instances?recursion=1")}
        return listed == {running: "Running", stopped: "Stopped", auto: "Running"}

    wait_for(settled, 60, "instances restored, the autostart one started again")
    wait_for(lambda: not orphan.exists(), 30, "the orphan removed")


def test_an_instance_history_survives_rename_and_delete(stack: Stack) -> None:
    name, new = unique("hist"), unique("hist-new")
    launch(stack, name)
    assert call(stack, "PATCH", f"/1.0/instances/{name}", {"config": {"user.a": "1"}})[0] == 200
    ok_op(stack, "PUT", f"/1.0/instances/{name}/state", {"action": "stop", "force": True})
    ok_op(stack, "POST", f"/1.0/instances/{name}", {"name": new})
    ok_op(stack, "DELETE", f"/1.0/instances/{new}")
    history = get(stack, f"/1.0/history/instance/{new}")
    types = [e["type"] for e in history["events"]]
    assert types == [
        "instance-created",
        "instance-started",
        "instance-updated",
        "instance-stopped",
        "instance-renamed",
        "instance-deleted",
    ]
    assert history["state"] is None
    updated = history["events"][2]
    past = get(stack, f"/1.0/history/instance/{new}?at={updated['seq']}")["state"]
    assert past["name"] == name and past["config"]["user.a"] == "1"
    assert all(e["requestor"] == "root" for e in history["events"])


def test_an_instance_name_used_twice_keeps_both_histories(stack: Stack) -> None:
    name = unique("twice")
    for _ in range(2):
        launch(stack, name)
        ok_op(stack, "PUT", f"/1.0/instances/{name}/state", {"action": "stop", "force": True})
        ok_op(stack, "DELETE", f"/1.0/instances/{name}")
    launch(stack, name)
    history = get(stack, f"/1.0/history/instance/{name}")
    first, second, third = history["holders"]
    assert history["object_id"] == third["object_id"] and not third["deleted"]
    assert first["deleted"] and second["deleted"] and first["object_id"] != second["object_id"]
    old = get(stack, f"/1.0/history/instance/{name}?id={first['object_id']}")
    assert [e["type"] for e in old["events"]][-2:] == ["instance-stopped", "instance-deleted"]
    assert old["state"] is None and old["events"][0]["payload"]["project"] == "default"
    assert "project_id" not in old["events"][0]["payload"]
    assert f"/1.0/history/instance/{name}" in get(stack, "/1.0/history/instance")
    ok_op(stack, "PUT", f"/1.0/instances/{name}/state", {"action": "stop", "force": True})
    ok_op(stack, "DELETE", f"/1.0/instances/{name}")


def test_deletes_racing_reads_and_state_changes_disturb_nothing(stack: Stack) -> None:
    # A container being deleted must never make another request fail (listings once raised
    # "not found on this host" for whichever container vanished mid-scan).
    from concurrent.futures import ThreadPoolExecutor

    keep = unique("keep")
    victims = [unique("gone") for _ in range(8)]
    for name in [keep, *victims]:
        launch(stack, name)

    def remove(name: str) -> None:
        ok_op(stack, "PUT", f"/1.0/instances/{name}/state", {"action": "stop", "force": True})
        ok_op(stack, "DELETE", f"/1.0/instances/{name}")

    failures: list[Any] = []
    with ThreadPoolExecutor(max_workers=4) as pool:
        removals = [pool.submit(remove, name) for name in victims]
        while not all(r.done() for r in removals):
            for path in ("/1.0/instances?recursion=1", f"/1.0/instances/{keep}/state"):
                status, answer = call(stack, "GET", path)
                if status != 200:
                    failures.append((path, answer))
            for action in ("freeze", "unfreeze"):
                final = run_op(stack, "PUT", f"/1.0/instances/{keep}/state", {"action": action})
                if final["status"] != "Success":
                    failures.append((action, final))
        for removal in removals:
            removal.result()
    assert failures == []
    assert {i["name"] for i in get(stack, "/1.0/instances?recursion=1")} >= {keep}
    assert not set(victims) & {i["name"] for i in get(stack, "/1.0/instances?recursion=1")}
    ok_op(stack, "PUT", f"/1.0/instances/{keep}/state", {"action": "stop", "force": True})
    ok_op(stack, "DELETE", f"/1.0/instances/{keep}")
