"""The gateway in front of the real instance service (a whole stack under the supervisor):
LXD shapes of profiles and projects, the async project rename seen by every gateway replica,
and the ``warren_history`` API with the ``warren history`` command."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from stack import http_unix

REPO = Path(__file__).resolve().parents[2]
WARREN_REPLICAS = {"gateway": 2}
pytestmark = pytest.mark.timeout(180)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def ok(stack: Any, method: str, path: str, body: Any = None, headers=None, expect: int = 200):
    status, reply_headers, reply = stack.request(method, path, body, headers)
    assert status == expect, f"{method} {path} -> {status} {reply}"
    return reply_headers, reply


def second_socket(stack: Any) -> Path:
    """The API socket of gateway replica 2 (replica 1 owns unix.socket)."""
    return stack.dir / "gateway-2.socket"


def test_profile_round_trip_has_lxd_shapes(module_warren) -> None:
    w, name = module_warren, unique("gwp")
    headers, reply = ok(w, "POST", "/1.0/profiles", {"name": name, "config": None}, expect=201)
    assert headers["location"] == f"/1.0/profiles/{name}" and reply["metadata"] is None

    headers, reply = ok(w, "GET", f"/1.0/profiles/{name}")
    etag = headers["etag"]
    assert etag.startswith('"') and reply["metadata"]["config"] == {}
    assert f"/1.0/profiles/{name}" in ok(w, "GET", "/1.0/profiles")[1]["metadata"]
    listed = ok(w, "GET", "/1.0/profiles?recursion=1")[1]["metadata"]
    assert any(p["name"] == name for p in listed)

    stale = {"If-Match": '"0000"'}
    ok(w, "PUT", f"/1.0/profiles/{name}", {"config": {"user.a": "1"}}, stale, expect=412)
    _, reply = ok(
        w, "PUT", f"/1.0/profiles/{name}", {"config": {"user.a": "1"}}, {"If-Match": etag}
    )
    assert reply["metadata"] == {}
    # PATCH merges what the body carries; a null field counts as absent.
    ok(w, "PATCH", f"/1.0/profiles/{name}", {"config": {"user.b": "2"}, "devices": None})
    assert ok(w, "GET", f"/1.0/profiles/{name}")[1]["metadata"]["config"] == {
        "user.a": "1",
        "user.b": "2",
    }

    new = f"{name}-new"
    headers, _ = ok(w, "POST", f"/1.0/profiles/{name}", {"name": new}, expect=201)
    assert headers["location"] == f"/1.0/profiles/{new}"
    _, reply = ok(w, "DELETE", f"/1.0/profiles/{new}")
    assert reply["metadata"] == {}
    ok(w, "GET", f"/1.0/profiles/{new}", expect=404)


def test_project_urls_state_and_async_rename_on_every_replica(module_warren) -> None:
    w, name = module_warren, unique("gwj")
    ok(w, "POST", "/1.0/projects", {"name": name, "config": {"limits.instances": "3"}}, expect=201)
    urls = ok(w, "GET", f"/1.0/profiles?project={name}")[1]["metadata"]
    assert urls == [f"/1.0/profiles/default?project={name}"]
    resources = ok(w, "GET", f"/1.0/projects/{name}/state")[1]["metadata"]["resources"]
    assert resources["instances"] == {"Limit": 3, "Usage": 0}
    assert resources["memory"] == {"Limit": -1, "Usage": 0}

    new = f"{name}-new"
    headers, reply = ok(w, "POST", f"/1.0/projects/{name}", {"name": new}, expect=202)
    op = reply["metadata"]
    assert reply["type"] == "async" and headers["location"] == f"/1.0/operations/{op['id']}"
    waited = ok(w, "GET", f"/1.0/operations/{op['id']}/wait?timeout=30")[1]["metadata"]
    assert waited["status"] == "Success", waited
    # The operation is in the log, so the other gateway replica knows it too.
    status, _, other = http_unix(second_socket(w), "GET", f"/1.0/operations/{op['id']}")
    assert status == 200 and other["metadata"]["status"] == "Success"
    ok(w, "GET", f"/1.0/projects/{name}", expect=404)
    ok(w, "DELETE", f"/1.0/projects/{new}")


def warren_cli(w: Any, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WARREN_SOCKET": str(w.socket), "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_history_api_and_cli_show_who_did_what_and_past_states(module_warren) -> None:
    w, name = module_warren, unique("gwh")
    ok(w, "POST", "/1.0/profiles", {"name": name}, expect=201)
    ok(w, "PATCH", f"/1.0/profiles/{name}", {"config": {"limits.cpu": "2"}})
    ok(w, "PATCH", f"/1.0/profiles/{name}", {"config": {"user.a": "b"}})
    ok(w, "POST", f"/1.0/profiles/{name}", {"name": f"{name}-x"}, expect=201)
    ok(w, "DELETE", f"/1.0/profiles/{name}-x")

    history = ok(w, "GET", f"/1.0/history/profile/{name}")[1]["metadata"]
    types = [e["type"] for e in history["events"]]
    assert types == [
        "profile-created",
        "profile-updated",
        "profile-updated",
        "profile-renamed",
        "profile-deleted",
    ]
    assert history["kind"] == "profile" and history["state"] is None  # deleted by now
    assert all(e["requestor"] for e in history["events"])
    second = history["events"][1]
    past = ok(w, "GET", f"/1.0/history/profile/{name}?at={second['seq']}")[1]["metadata"]
    assert past["state"]["config"] == {"limits.cpu": "2"} and past["state"]["name"] == name
    at_time = ok(w, "GET", f"/1.0/history/profile/{name}?at={second['occurred_at']}")[1]
    assert at_time["metadata"]["state"]["config"] == {"limits.cpu": "2"}

    shown = warren_cli(w, "history", "profile", name, "--at", str(second["seq"]))
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "SEQ" in out and "WHO" in out and "WHAT" in out
    assert "config.limits.cpu: (unset) -> 2" in out
    assert f"renamed {name} -> {name}-x" in out and "deleted" in out
    assert f"State as of {second['seq']}:" in out and "limits.cpu: 2" in out

    as_json = warren_cli(w, "history", "profiles", name, "--json")
    assert as_json.returncode == 0 and f'"object_id": "{history["object_id"]}"' in as_json.stdout

    missing = warren_cli(w, "history", "profile", unique("never"))
    assert missing.returncode == 1 and missing.stderr.startswith("Error: ")


def test_every_history_url_advertised_answers(module_warren) -> None:
    w = module_warren
    kinds = ok(w, "GET", "/1.0/history")[1]["metadata"]
    assert kinds == [
        f"/1.0/history/{kind}"
        for kind in (
            "profile",
            "project",
            "instance",
            "network",
            "storage-pool",
            "image",
            "image-alias",
        )
    ]
    for url in kinds:
        names = ok(w, "GET", url)[1]["metadata"]
        assert isinstance(names, list)
        for item in ok(w, "GET", f"{url}?recursion=1")[1]["metadata"]:
            assert item["holders"] and ok(w, "GET", item["url"])[1]["metadata"]["events"]
    assert "/1.0/history/profile/default" in ok(w, "GET", "/1.0/history/profile")[1]["metadata"]
    assert "/1.0/history/network/" + w.default_network in ok(w, "GET", kinds[3])[1]["metadata"]
    ok(w, "GET", "/1.0/history/network-forward", expect=404)
    ok(w, "GET", "/1.0/history/profile?project=never-was", expect=404)


def test_history_reaches_earlier_holders_of_a_name_and_deleted_projects(module_warren) -> None:
    w, name = module_warren, unique("gwr")
    ok(w, "POST", "/1.0/profiles", {"name": name}, expect=201)
    ok(w, "PATCH", f"/1.0/profiles/{name}", {"config": {"user.v": "1"}})
    ok(w, "DELETE", f"/1.0/profiles/{name}")
    ok(w, "POST", "/1.0/profiles", {"name": name}, expect=201)

    history = ok(w, "GET", f"/1.0/history/profile/{name}")[1]["metadata"]
    first, second = history["holders"]
    assert history["object_id"] == second["object_id"] and first["deleted"]
    old = ok(w, "GET", f"/1.0/history/profile/{name}?id={first['object_id']}")[1]["metadata"]
    assert [e["type"] for e in old["events"]][-1] == "profile-deleted"
    assert old["events"][1]["payload"]["config"] == {"user.v": "1"}
    assert old["events"][0]["payload"]["project"] == "default"
    ok(w, "GET", f"/1.0/history/profile/{name}?id=nope", expect=404)

    shown = warren_cli(w, "history", "profile", name)
    assert shown.returncode == 0, shown.stderr
    assert "2 objects carried the name" in shown.stdout
    assert f"* {second['object_id']}" in shown.stdout and first["object_id"] in shown.stdout
    picked = warren_cli(w, "history", "profile", name, "--id", first["object_id"])
    assert picked.returncode == 0, picked.stderr
    assert "config.user.v: (unset) -> 1" in picked.stdout and "(deleted)" in picked.stdout

    # A profile of a project renamed, then deleted: found by either project name.
    project, renamed, inner = unique("gmp"), unique("gmp2"), unique("gx")
    ok(w, "POST", "/1.0/projects", {"name": project}, expect=201)
    ok(w, "POST", f"/1.0/profiles?project={project}", {"name": inner}, expect=201)
    ok(w, "PATCH", f"/1.0/profiles/{inner}?project={project}", {"config": {"user.a": "1"}})
    ok(w, "DELETE", f"/1.0/profiles/{inner}?project={project}")
    op = ok(w, "POST", f"/1.0/projects/{project}", {"name": renamed}, expect=202)[1]["metadata"]
    ok(w, "GET", f"/1.0/operations/{op['id']}/wait?timeout=30")
    ok(w, "DELETE", f"/1.0/projects/{renamed}")
    for where in (project, renamed):
        found = ok(w, "GET", f"/1.0/history/profile/{inner}?project={where}")[1]["metadata"]
        assert found["project"] == renamed and len(found["events"]) == 3
    urls = ok(w, "GET", f"/1.0/history/profile?project={renamed}")[1]["metadata"]
    assert f"/1.0/history/profile/{inner}?project={renamed}" in urls

    listed = warren_cli(w, "history", "profile", "--project", renamed)
    assert listed.returncode == 0, listed.stderr
    assert inner in listed.stdout and "deleted" in listed.stdout
    inside = warren_cli(w, "history", "profile", inner, "--project", project)
    assert inside.returncode == 0, inside.stderr
    assert (
        f"in project {renamed}" in inside.stdout and "config.user.a: (unset) -> 1" in inside.stdout
    )
