"""pylxd (``Client(endpoint=<unix socket path>)``) against Warren: profiles, projects, events.

pylxd turns a path that exists into ``http+unix://`` for requests and ``ws+unix://`` for the
``/1.0/events`` websocket (ws4py). Run with ``WARREN_COMPAT_LXD_SOCKET`` to check against LXD.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from _helpers import metadata, prime_listener, unique
from stack import wait_for

pylxd = pytest.importorskip("pylxd")
from pylxd import EventType  # noqa: E402
from pylxd.exceptions import LXDAPIException, NotFound  # noqa: E402

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def client(target: Any) -> Any:
    return pylxd.Client(endpoint=str(target.socket))


def test_client_connects_over_the_unix_socket(client: Any) -> None:
    assert client.trusted
    assert client.host_info["api_version"] == "1.0"
    assert client.has_api_extension("projects")


# -- profiles -------------------------------------------------------------------------------
def test_profile_create_all_get(client: Any, target: Any) -> None:
    name = unique("py")
    created = client.profiles.create(
        name, config={"limits.cpu": "1", "user.a": "b"}, devices={}, description="from pylxd"
    )
    try:
        assert created.name == name
        assert name in [p.name for p in client.profiles.all()]
        got = client.profiles.get(name)
        assert got.config == {"limits.cpu": "1", "user.a": "b"}
        assert got.description == "from pylxd"
        assert got.devices == {}
        assert metadata(target, f"/1.0/profiles/{name}")["config"] == got.config
    finally:
        target.request("DELETE", f"/1.0/profiles/{name}")


def test_profile_save_rename_delete(client: Any, target: Any) -> None:
    name = unique("py")
    client.profiles.create(name, config={"user.a": "1"})
    profile = client.profiles.get(name)
    profile.config["user.b"] = "2"
    profile.description = "saved"
    profile.save()
    fresh = metadata(target, f"/1.0/profiles/{name}")
    assert fresh["config"] == {"user.a": "1", "user.b": "2"}
    assert fresh["description"] == "saved"

    new = f"{name}-renamed"
    profile.rename(new)
    assert not client.profiles.exists(name)
    assert client.profiles.get(new).config == {"user.a": "1", "user.b": "2"}

    client.profiles.get(new).delete()
    assert not client.profiles.exists(new)
    with pytest.raises(NotFound):
        client.profiles.get(new)


def test_profile_errors_are_raised_with_lxd_status(client: Any, target: Any) -> None:
    with pytest.raises(LXDAPIException) as failed:
        client.profiles.get("default").delete()
    assert failed.value.response.status_code == 403
    assert client.profiles.exists("default")

    name = unique("py-bad")
    with pytest.raises(LXDAPIException) as failed:
        client.profiles.create(name, config={"bogus.key": "1"})
    assert failed.value.response.status_code == 400
    assert "bogus.key" in str(failed.value)
    assert target.request("GET", f"/1.0/profiles/{name}")[0] == 404


# -- projects -------------------------------------------------------------------------------
def test_project_create_all_get_save_delete(client: Any, target: Any) -> None:
    name = unique("pyp")
    client.projects.create(name, config={"features.profiles": "true"}, description="d")
    try:
        assert name in [p.name for p in client.projects.all()]
        project = client.projects.get(name)
        assert project.config["features.profiles"] == "true"
        assert project.description == "d"
        project.description = "changed"
        project.save()
        assert metadata(target, f"/1.0/projects/{name}")["description"] == "changed"
    finally:
        client.projects.get(name).delete()
    assert not client.projects.exists(name)
    assert target.request("GET", f"/1.0/projects/{name}")[0] == 404


def test_client_bound_to_a_project_sees_its_profiles(client: Any, target: Any) -> None:
    name = unique("pyp")
    client.projects.create(name, config={"features.profiles": "true"})
    scoped = pylxd.Client(endpoint=str(target.socket), project=name)
    inner = unique("py-inner")
    try:
        scoped.profiles.create(inner)
        assert sorted(p.name for p in scoped.profiles.all()) == sorted(["default", inner])
        assert inner not in [p.name for p in client.profiles.all()]
        assert metadata(target, f"/1.0/profiles/{inner}?project={name}")["name"] == inner
    finally:
        target.request("DELETE", f"/1.0/profiles/{inner}?project={name}")
        target.request("DELETE", f"/1.0/projects/{name}")


# -- events ---------------------------------------------------------------------------------
def test_events_websocket_receives_lifecycle_events(client: Any, target: Any) -> None:
    ws = client.events(event_types={EventType.Lifecycle})
    ws.connect()
    runner = threading.Thread(target=ws.run, daemon=True)
    runner.start()

    def sources() -> list[tuple[str, str]]:
        return [(m["metadata"]["action"], m["metadata"]["source"]) for m in list(ws.messages)]

    try:
        prime_listener(target, lambda probe: any(probe in src for _, src in sources()))
        name = unique("pyev")
        new = f"{name}-renamed"
        client.profiles.create(name)
        profile = client.profiles.get(name)
        profile.config["user.x"] = "1"
        profile.save()
        profile.rename(new)
        client.profiles.get(new).delete()
        wanted = ("profile-deleted", f"/1.0/profiles/{new}")
        wait_for(lambda: wanted in sources(), 20, "profile-deleted on the pylxd websocket")
    finally:
        ws.close()
        runner.join(timeout=10)
    ours = [s for s in sources() if s[1] in (f"/1.0/profiles/{name}", f"/1.0/profiles/{new}")]
    assert ours == [
        ("profile-created", f"/1.0/profiles/{name}"),
        ("profile-updated", f"/1.0/profiles/{name}"),
        ("profile-renamed", f"/1.0/profiles/{new}"),
        ("profile-deleted", f"/1.0/profiles/{new}"),
    ]
    assert all(m["type"] == "lifecycle" for m in ws.messages)
