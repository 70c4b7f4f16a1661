"""``warren_history`` of networks, storage pools, images and image aliases through the gateway
(a whole stack under the supervisor: each kind is answered by the service owning it): every
event with who and when, the object as of an earlier sequence, and every holder of a reused
name; and the ``warren history`` command for them."""

from __future__ import annotations

import io
import tarfile
import uuid
from typing import Any

import pytest
from test_gateway_catalog import ok, warren_cli

pytestmark = pytest.mark.timeout(180)


def short(prefix: str) -> str:
    """A unique name short enough for a bridge (15 characters)."""
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def history(w: Any, kind: str, name: str, query: str = "") -> dict[str, Any]:
    return ok(w, "GET", f"/1.0/history/{kind}/{name}{query}")[1]["metadata"]


def wait(w: Any, reply: dict[str, Any]) -> dict[str, Any]:
    """The final state of the operation an async reply started."""
    op = reply["metadata"]["id"]
    done = ok(w, "GET", f"/1.0/operations/{op}/wait?timeout=60")[1]["metadata"]
    assert done["status"] == "Success", done
    return done


def tiny_image() -> bytes:
    """A unified image tarball of its own (a fingerprint no other test has)."""
    out = io.BytesIO()
    files = {
        "metadata.yaml": b"architecture: x86_64\ncreation_date: 1700000000\n"
        b"properties:\n  os: tiny\n",
        "rootfs/etc/hostname": uuid.uuid4().hex.encode(),
    }
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _checked_events(found: dict[str, Any], types: list[str]) -> list[dict[str, Any]]:
    events = found["events"]
    assert [e["type"] for e in events] == types
    assert all(e["requestor"] and e["occurred_at"].endswith("Z") for e in events)
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs)
    return events


def test_network_history_rename_reuse_and_past_states(module_warren) -> None:
    w, name, new = module_warren, short("hn"), short("hm")
    config = {"ipv4.address": "none"}
    ok(w, "POST", "/1.0/networks", {"name": name, "config": config}, expect=201)
    ok(w, "PATCH", f"/1.0/networks/{name}", {"description": "first"})
    ok(w, "POST", f"/1.0/networks/{name}", {"name": new}, expect=201)
    ok(w, "DELETE", f"/1.0/networks/{new}")

    found = history(w, "network", new)
    events = _checked_events(
        found, ["network-created", "network-updated", "network-renamed", "network-deleted"]
    )
    assert found["kind"] == "network" and found["name"] == new and found["state"] is None
    assert found["project"] is None and events[2]["payload"]["old_name"] == name
    created = history(w, "network", new, f"?at={events[0]['seq']}")["state"]
    assert created["name"] == name and created["description"] == ""
    assert created["config"]["ipv4.address"] == "none" and "status" not in created
    updated = history(w, "network", new, f"?at={events[1]['occurred_at']}")["state"]
    assert updated["description"] == "first"
    assert history(w, "network", new, f"?at={events[0]['seq'] - 1}")["state"] is None

    # The name is reused: both networks carried it, the live one is shown.
    ok(w, "POST", "/1.0/networks", {"name": name, "config": config}, expect=201)
    again = history(w, "network", name)
    first, second = again["holders"]
    assert first["object_id"] == found["object_id"] and first["deleted"]
    assert first["name"] == new and second["object_id"] == again["object_id"]
    assert again["state"]["name"] == name and again["state"]["status"] == "Created"
    old = history(w, "network", name, f"?id={first['object_id']}")
    assert len(old["events"]) == 4
    urls = ok(w, "GET", "/1.0/history/network")[1]["metadata"]
    assert f"/1.0/history/network/{name}" in urls and f"/1.0/history/network/{new}" in urls

    shown = warren_cli(w, "history", "network", name)
    assert shown.returncode == 0, shown.stderr
    assert "2 objects carried the name" in shown.stdout and "Current state:" in shown.stdout
    ok(w, "DELETE", f"/1.0/networks/{name}")


def test_storage_pool_history_and_a_reused_name(module_warren) -> None:
    w, name = module_warren, short("hp")
    ok(w, "POST", "/1.0/storage-pools", {"name": name, "driver": "dir"}, expect=201)
    ok(w, "PATCH", f"/1.0/storage-pools/{name}", {"config": {"user.a": "1"}})
    ok(w, "PATCH", f"/1.0/storage-pools/{name}", {"description": "d"})
    ok(w, "DELETE", f"/1.0/storage-pools/{name}")
    ok(w, "POST", "/1.0/storage-pools", {"name": name, "driver": "dir"}, expect=201)

    now = history(w, "storage-pool", name)
    first, second = now["holders"]
    assert first["deleted"] and not second["deleted"] and second["object_id"] == now["object_id"]
    assert now["state"]["driver"] == "dir" and now["state"]["status"] == "Created"
    gone = history(w, "storage-pool", name, f"?id={first['object_id']}")
    events = _checked_events(
        gone,
        [
            "storage-pool-created",
            "storage-pool-updated",
            "storage-pool-updated",
            "storage-pool-deleted",
        ],
    )
    assert gone["state"] is None
    past = history(w, "storage-pool", name, f"?id={first['object_id']}&at={events[1]['seq']}")
    assert past["state"]["config"]["user.a"] == "1" and past["state"]["description"] == ""
    assert past["state"]["used_by"] == []
    listed = ok(w, "GET", "/1.0/history/storage-pool?recursion=1")[1]["metadata"]
    entry = next(n for n in listed if n["name"] == name)
    assert [h["deleted"] for h in entry["holders"]] == [True, False]
    assert any(n["name"] == "default" for n in listed)

    shown = warren_cli(w, "history", "pool", name, "--id", first["object_id"])
    assert shown.returncode == 0, shown.stderr
    assert "config.user.a: (unset) -> 1" in shown.stdout and "(deleted)" in shown.stdout
    ok(w, "DELETE", f"/1.0/storage-pools/{name}")


def test_image_and_alias_history(module_warren) -> None:
    w, alias, moved = module_warren, short("ha"), short("hb")
    headers = {"Content-Type": "application/octet-stream", "X-LXD-filename": "tiny.tar.gz"}
    status, _, reply = w.request("POST", "/1.0/images", tiny_image(), headers)
    assert status == 202, reply
    fingerprint = wait(w, reply)["metadata"]["fingerprint"]
    ok(w, "PATCH", f"/1.0/images/{fingerprint}", {"properties": {"os": "edited"}})
    ok(w, "POST", "/1.0/images/aliases", {"name": alias, "target": fingerprint}, expect=201)
    ok(w, "PATCH", f"/1.0/images/aliases/{alias}", {"description": "tiny one"})
    ok(w, "POST", f"/1.0/images/aliases/{alias}", {"name": moved}, expect=201)
    ok(w, "DELETE", f"/1.0/images/aliases/{moved}")
    ok(w, "POST", "/1.0/images/aliases", {"name": alias, "target": fingerprint}, expect=201)

    # An alias renamed away and its name reused: both holders, each with its own events.
    now = history(w, "image-alias", alias)
    first, second = now["holders"]
    assert (first["name"], first["deleted"], first["project"]) == (moved, True, "default")
    assert second["object_id"] == now["object_id"] and now["state"]["target"] == fingerprint
    renamed = history(w, "image-alias", moved)
    assert renamed["object_id"] == first["object_id"]
    events = _checked_events(
        renamed,
        [
            "image-alias-created",
            "image-alias-updated",
            "image-alias-renamed",
            "image-alias-deleted",
        ],
    )
    assert events[0]["payload"]["project"] == "default"
    as_updated = history(w, "image-alias", moved, f"?at={events[1]['seq']}")["state"]
    assert as_updated == {
        "name": alias,
        "description": "tiny one",
        "target": fingerprint,
        "type": "container",
    }

    wait(w, ok(w, "DELETE", f"/1.0/images/{fingerprint}", expect=202)[1])
    image = history(w, "image", fingerprint[:12])  # a unique prefix is enough, as in LXD
    events = _checked_events(image, ["image-created", "image-updated", "image-deleted"])
    assert image["name"] == fingerprint and image["state"] is None
    assert image["project"] == "default" and len(image["holders"]) == 1
    before = history(w, "image", fingerprint, f"?at={events[0]['seq']}")["state"]
    assert before["properties"]["os"] == "tiny" and before["fingerprint"] == fingerprint
    after = history(w, "image", fingerprint, f"?at={events[1]['seq']}")["state"]
    assert after["properties"]["os"] == "edited"
    # Deleting the image took its alias with it.
    assert history(w, "image-alias", alias)["events"][-1]["type"] == "image-alias-deleted"
    urls = ok(w, "GET", "/1.0/history/image")[1]["metadata"]
    assert f"/1.0/history/image/{fingerprint}" in urls
    ok(w, "GET", "/1.0/history/image/ffffffffffff", expect=404)
    ok(w, "GET", "/1.0/history/image-alias?project=never-was", expect=404)

    shown = warren_cli(w, "history", "alias", alias)
    assert shown.returncode == 0, shown.stderr
    assert f"* {second['object_id']}" in shown.stdout and "deleted" in shown.stdout
