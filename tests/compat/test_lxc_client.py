"""The real LXD 5.0 ``lxc`` client (Debian ``lxd-client``) against Warren over LXD_SOCKET.

Each command's effect is checked with a fresh GET over the REST API, not only through the
client's own output. Run with ``WARREN_COMPAT_LXD_SOCKET=<lxd unix.socket>`` to check these
expectations against a real LXD.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from _helpers import (
    LxcMonitor,
    lifecycle,
    lxc_ok,
    mentions,
    metadata,
    prime_listener,
    status_of,
    unique,
)
from stack import wait_for

NO_CLIENT = shutil.which("lxc") is None
pytestmark = [
    pytest.mark.skipif(NO_CLIENT, reason="the lxc client (lxd-client) is missing"),
    pytest.mark.timeout(180),
]


def csv_names(output: str) -> list[str]:
    """First column of ``--format csv`` output, without the ``(current)`` marker."""
    return [line.split(",")[0].removesuffix(" (current)") for line in output.splitlines() if line]


def delete_quietly(target: Any, path: str) -> None:
    status, _, body = target.request("DELETE", path)
    assert status in (200, 404), f"cleanup DELETE {path} -> {status} {body}"


@pytest.fixture
def profile(target: Any) -> Iterator[str]:
    """A fresh profile made by ``lxc profile create``."""
    name = unique("cli")
    out = lxc_ok(target, "profile", "create", name)
    assert f"Profile {name} created" in out
    yield name
    delete_quietly(target, f"/1.0/profiles/{name}")


# -- server ---------------------------------------------------------------------------------
def test_lxc_info_shows_the_server(target: Any) -> None:
    info = yaml.safe_load(lxc_ok(target, "info"))
    server = metadata(target, "/1.0")
    assert info["api_version"] == "1.0"
    assert info["auth"] == "trusted"
    assert info["api_extensions"] == server["api_extensions"]
    # What the profile and project commands below rely on.
    assert {"etag", "patch", "projects", "profile_usedby"} <= set(info["api_extensions"])


# -- profiles -------------------------------------------------------------------------------
def test_profile_create_then_list_and_show(target: Any, profile: str) -> None:
    assert metadata(target, f"/1.0/profiles/{profile}")["name"] == profile
    names = csv_names(lxc_ok(target, "profile", "list", "--format", "csv"))
    assert profile in names and "default" in names
    assert len(names) == len(set(names))
    table = lxc_ok(target, "profile", "list")
    assert "NAME" in table and f"| {profile} " in table
    shown = yaml.safe_load(lxc_ok(target, "profile", "show", profile))
    assert shown["name"] == profile
    assert shown["config"] == {} and shown["devices"] == {}
    default = yaml.safe_load(lxc_ok(target, "profile", "show", "default"))
    assert default["name"] == "default"


def test_profile_edit_reads_yaml_from_stdin(target: Any, profile: str) -> None:
    document = (
        "config:\n"
        '  limits.cpu: "2"\n'
        "  user.note: set by edit\n"
        "description: edited through stdin\n"
        "devices: {}\n"
    )
    lxc_ok(target, "profile", "edit", profile, input=document)
    fresh = metadata(target, f"/1.0/profiles/{profile}")
    assert fresh["config"] == {"limits.cpu": "2", "user.note": "set by edit"}
    assert fresh["description"] == "edited through stdin"
    shown = yaml.safe_load(lxc_ok(target, "profile", "show", profile))
    assert shown["config"] == fresh["config"]


def test_profile_set_get_unset(target: Any, profile: str) -> None:
    lxc_ok(target, "profile", "set", profile, "limits.memory=256MiB")
    lxc_ok(target, "profile", "set", profile, "user.colour", "blue")  # the older two-word form
    config = metadata(target, f"/1.0/profiles/{profile}")["config"]
    assert config == {"limits.memory": "256MiB", "user.colour": "blue"}
    assert lxc_ok(target, "profile", "get", profile, "limits.memory").strip() == "256MiB"

    lxc_ok(target, "profile", "unset", profile, "limits.memory")
    assert metadata(target, f"/1.0/profiles/{profile}")["config"] == {"user.colour": "blue"}


def test_profile_rename_keeps_content(target: Any, profile: str) -> None:
    lxc_ok(target, "profile", "set", profile, "user.kept=yes")
    new = f"{profile}-renamed"
    out = lxc_ok(target, "profile", "rename", profile, new)
    assert f"Profile {profile} renamed to {new}" in out
    try:
        assert target.request("GET", f"/1.0/profiles/{profile}")[0] == 404
        assert metadata(target, f"/1.0/profiles/{new}")["config"] == {"user.kept": "yes"}
        names = csv_names(lxc_ok(target, "profile", "list", "--format", "csv"))
        assert new in names and profile not in names
    finally:
        delete_quietly(target, f"/1.0/profiles/{new}")


def test_profile_delete(target: Any, profile: str) -> None:
    out = lxc_ok(target, "profile", "delete", profile)
    assert f"Profile {profile} deleted" in out
    assert target.request("GET", f"/1.0/profiles/{profile}")[0] == 404
    assert profile not in csv_names(lxc_ok(target, "profile", "list", "--format", "csv"))


def test_deleting_the_default_profile_fails_with_a_message(target: Any) -> None:
    before = metadata(target, "/1.0/profiles/default")
    result = target.lxc("profile", "delete", "default")
    assert result.returncode != 0
    assert result.stderr.startswith("Error: ") and "default" in result.stderr
    assert metadata(target, "/1.0/profiles/default") == before


def test_unknown_config_key_is_rejected(target: Any, profile: str) -> None:
    lxc_ok(target, "profile", "set", profile, "user.before=1")
    result = target.lxc("profile", "set", profile, "nonsense.key=1")
    assert result.returncode != 0
    assert result.stderr.startswith("Error: ") and "nonsense.key" in result.stderr
    assert metadata(target, f"/1.0/profiles/{profile}")["config"] == {"user.before": "1"}


# -- projects -------------------------------------------------------------------------------
@pytest.fixture
def project(target: Any) -> Iterator[str]:
    name = unique("clip")
    out = lxc_ok(target, "project", "create", name, "-c", "user.owner=tests")
    assert f"Project {name} created" in out
    yield name
    lxc_ok(target, "project", "switch", "default")
    status, _, body = target.request("GET", f"/1.0/profiles?project={name}")
    if status == 200:
        for url in body["metadata"]:
            profile_name = url.split("?")[0].rsplit("/", 1)[1]
            if profile_name != "default":
                delete_quietly(target, f"/1.0/profiles/{profile_name}?project={name}")
    delete_quietly(target, f"/1.0/projects/{name}")


def test_project_create_list_show(target: Any, project: str) -> None:
    fresh = metadata(target, f"/1.0/projects/{project}")
    assert fresh["name"] == project
    assert fresh["config"]["user.owner"] == "tests"
    # LXD turns the features on for a new project unless told otherwise.
    assert fresh["config"]["features.profiles"] == "true"
    names = csv_names(lxc_ok(target, "project", "list", "--format", "csv"))
    assert project in names and "default" in names
    shown = yaml.safe_load(lxc_ok(target, "project", "show", project))
    assert shown["name"] == project and shown["config"] == fresh["config"]


def test_project_switch_changes_the_clients_project(target: Any, project: str) -> None:
    outside = unique("cli-outside")
    status, _, body = target.request("POST", "/1.0/profiles", {"name": outside})
    assert status == 201, body
    try:
        lxc_ok(target, "project", "switch", project)
        listing = lxc_ok(target, "project", "list", "--format", "csv")
        assert f"{project} (current)," in listing

        inside = unique("cli-inside")
        lxc_ok(target, "profile", "create", inside)
        names = csv_names(lxc_ok(target, "profile", "list", "--format", "csv"))
        assert sorted(names) == sorted(["default", inside])
        assert metadata(target, f"/1.0/profiles/{inside}?project={project}")["name"] == inside
        assert target.request("GET", f"/1.0/profiles/{inside}")[0] == 404

        lxc_ok(target, "project", "switch", "default")
        names = csv_names(lxc_ok(target, "profile", "list", "--format", "csv"))
        assert outside in names and inside not in names
    finally:
        lxc_ok(target, "project", "switch", "default")
        delete_quietly(target, f"/1.0/profiles/{outside}")


def test_project_delete(target: Any, project: str) -> None:
    out = lxc_ok(target, "project", "delete", project)
    assert f"Project {project} deleted" in out
    assert target.request("GET", f"/1.0/projects/{project}")[0] == 404
    assert project not in csv_names(lxc_ok(target, "project", "list", "--format", "csv"))


def test_project_with_profiles_cannot_be_deleted(target: Any, project: str) -> None:
    lxc_ok(target, "profile", "create", unique("cli-keep"), "--project", project)
    result = target.lxc("project", "delete", project)
    assert result.returncode != 0 and result.stderr.startswith("Error: ")
    assert metadata(target, f"/1.0/projects/{project}")["name"] == project


def test_deleting_the_default_project_fails_with_a_message(target: Any) -> None:
    result = target.lxc("project", "delete", "default")
    assert result.returncode != 0
    assert result.stderr.startswith("Error: ") and "default" in result.stderr
    assert metadata(target, "/1.0/projects/default")["name"] == "default"


# -- operations -----------------------------------------------------------------------------
def test_operation_list(target: Any) -> None:
    table = lxc_ok(target, "operation", "list")
    assert "ID" in table and "STATUS" in table
    listed = lxc_ok(target, "operation", "list", "--format", "csv")
    for row in listed.splitlines():
        assert len(row.split(",")) == 6, row


def test_operation_events_and_how_long_a_finished_operation_stays_listed(target: Any) -> None:
    """``lxc project rename`` runs an operation: Pending, Running, Success events without a
    project (LXD runs project operations in none); listed right after, gone ~5 s later."""
    monitor = LxcMonitor(target, "--type=lifecycle", kind="operation")
    project = unique("opl")
    try:
        prime_listener(target, lambda probe: mentions(monitor.events(), probe))
        lxc_ok(target, "project", "create", project)
        lxc_ok(target, "project", "rename", project, f"{project}-r")
        finished = time.monotonic()
        listed = lxc_ok(target, "operation", "list", "--format", "csv")

        def renaming(evs: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [
                e
                for e in evs
                if e["type"] == "operation" and e["metadata"]["description"] == "Renaming project"
            ]

        events = renaming(
            monitor.wait_for(
                lambda evs: any(e["metadata"]["status"] == "Success" for e in renaming(evs)),
                "the rename's Success event",
            )
        )
    finally:
        monitor.stop()
        delete_quietly(target, f"/1.0/projects/{project}-r")
        delete_quietly(target, f"/1.0/projects/{project}")
    # LXD sends Pending and Running from two goroutines: their order is not fixed there.
    assert {e["metadata"]["status"] for e in events} == {"Pending", "Running", "Success"}
    assert len({e["metadata"]["id"] for e in events}) == 1
    assert all("project" not in e for e in events)
    op_id = events[0]["metadata"]["id"]
    assert f"{op_id},TASK,Renaming project,SUCCESS,NO," in listed

    def forgotten() -> bool:
        return op_id not in lxc_ok(target, "operation", "list", "--format", "csv")

    wait_for(forgotten, 15, "the finished operation to leave the list")
    assert time.monotonic() - finished < 12  # LXD: 5 s after it ends (not minutes)
    assert status_of(target, f"/1.0/operations/{op_id}") == 404


# -- monitor --------------------------------------------------------------------------------
def test_monitor_prints_profile_lifecycle_events(target: Any) -> None:
    monitor = LxcMonitor(target)
    try:
        prime_listener(target, lambda probe: mentions(monitor.events(), probe))
        name = unique("mon")
        new = f"{name}-renamed"
        lxc_ok(target, "profile", "create", name)
        lxc_ok(target, "profile", "set", name, "user.a=b")
        lxc_ok(target, "profile", "rename", name, new)
        lxc_ok(target, "profile", "delete", new)
        sources = {f"/1.0/profiles/{name}", f"/1.0/profiles/{new}"}
        events = monitor.wait_for(
            lambda evs: ("profile-deleted", f"/1.0/profiles/{new}") in lifecycle(evs, sources),
            "profile-deleted in lxc monitor's output",
        )
    finally:
        monitor.stop()
    assert lifecycle(events, sources) == [
        ("profile-created", f"/1.0/profiles/{name}"),
        ("profile-updated", f"/1.0/profiles/{name}"),
        ("profile-renamed", f"/1.0/profiles/{new}"),
        ("profile-deleted", f"/1.0/profiles/{new}"),
    ]
    renamed = next(e for e in events if e["metadata"]["action"] == "profile-renamed")
    assert renamed["metadata"]["context"]["old_name"] == name
    assert all(e["project"] == "default" for e in events if e["metadata"]["source"] in sources)


def test_monitor_prints_project_lifecycle_events(target: Any) -> None:
    monitor = LxcMonitor(target, "--all-projects")
    try:
        prime_listener(target, lambda probe: mentions(monitor.events(), probe))
        project = unique("monp")
        inner = unique("mon-inner")
        lxc_ok(target, "project", "create", project)
        lxc_ok(target, "project", "set", project, "user.k=v")
        lxc_ok(target, "profile", "create", inner, "--project", project)
        lxc_ok(target, "profile", "delete", inner, "--project", project)
        lxc_ok(target, "project", "delete", project)
        sources = {f"/1.0/projects/{project}", f"/1.0/profiles/{inner}?project={project}"}
        events = monitor.wait_for(
            lambda evs: ("project-deleted", f"/1.0/projects/{project}") in lifecycle(evs, sources),
            "project-deleted in lxc monitor's output",
        )
    finally:
        monitor.stop()
    assert lifecycle(events, sources) == [
        ("project-created", f"/1.0/projects/{project}"),
        ("project-updated", f"/1.0/projects/{project}"),
        ("profile-created", f"/1.0/profiles/{inner}?project={project}"),
        ("profile-deleted", f"/1.0/profiles/{inner}?project={project}"),
        ("project-deleted", f"/1.0/projects/{project}"),
    ]
    # LXD tags events about a project's objects, and about the project itself, with its name.
    tagged = {e["project"] for e in events if e["metadata"]["source"] in sources}
    assert tagged == {project}


def handled(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """``(method, url)`` of the "Handling API request" logging events, in arrival order."""
    return [
        (e["metadata"]["context"]["method"], e["metadata"]["context"]["url"])
        for e in events
        if e.get("type") == "logging" and e["metadata"]["message"] == "Handling API request"
    ]


def test_monitor_prints_logging_events(target: Any) -> None:
    """``lxc monitor --type=logging``: every API request (debug), an unknown path (info), the
    steps of an operation (debug); ``--pretty --loglevel=`` filters by level."""
    monitor = LxcMonitor(target, kind="logging")
    info = LxcMonitor(target, "--pretty", "--loglevel=info", kind="logging")
    debug = LxcMonitor(target, "--pretty", "--loglevel=debug", kind="logging")
    try:
        prime_listener(
            target,
            lambda probe: (
                any(probe in url for _, url in handled(monitor.events()))
                and f"/1.0/profiles/{probe}" in debug.text()
            ),
        )
        name, project, marker = unique("logp"), unique("logpr"), unique("bad")
        lxc_ok(target, "profile", "create", name)
        lxc_ok(target, "profile", "rename", name, f"{name}-r")
        lxc_ok(target, "profile", "delete", f"{name}-r")
        lxc_ok(target, "project", "create", project)
        lxc_ok(target, "project", "rename", project, f"{project}-r")  # an operation
        lxc_ok(target, "project", "delete", f"{project}-r")
        status, _, _ = target.request("POST", f"/1.0/profiles?m={marker}", "not json")
        assert status == 400
        assert target.request("GET", f"/1.0/nothing-{marker}")[0] == 404

        def done(evs: list[dict[str, Any]]) -> bool:
            messages = {e["metadata"]["message"] for e in evs if marker in json.dumps(e)}
            renamed = {
                e["metadata"]["message"]
                for e in evs
                if e["metadata"]["context"].get("description") == "Renaming project"
            }
            return "Sending top level 404" in messages and "Success for operation" in renamed

        events = monitor.wait_for(done, "the unknown path's logging event")
        wait_for(lambda: marker in info.text(), 20, "the 404 in the --loglevel=info monitor")
        wait_for(lambda: marker in debug.text(), 20, "the 404 in the --loglevel=debug monitor")
        info_text, debug_text = info.text(), debug.text()
    finally:
        for m in (monitor, info, debug):
            m.stop()
    requests = handled(events)
    for wanted in (
        ("POST", "/1.0/profiles"),
        ("POST", f"/1.0/profiles/{name}"),
        ("DELETE", f"/1.0/profiles/{name}-r"),
        ("POST", "/1.0/projects"),
        ("POST", f"/1.0/projects/{project}"),
        ("DELETE", f"/1.0/projects/{project}-r"),
        ("POST", f"/1.0/profiles?m={marker}"),
    ):
        assert wanted in requests, (wanted, requests)
    logged = [e for e in events if e.get("type") == "logging"]
    assert all("project" not in e for e in logged)
    request = next(
        e["metadata"] for e in logged if e["metadata"]["message"] == "Handling API request"
    )
    assert request["level"] == "debug"
    assert set(request["context"]) == {"ip", "method", "protocol", "url", "username"}
    assert request["context"]["ip"] == "@" and request["context"]["protocol"] == "unix"

    steps = {
        e["metadata"]["message"]: e["metadata"]
        for e in logged
        if e["metadata"]["context"].get("description") == "Renaming project"
    }
    assert set(steps) == {"New operation", "Started operation", "Success for operation"}
    for step in steps.values():
        assert step["level"] == "debug"
        assert set(step["context"]) == {"class", "description", "operation", "project"}
        assert step["context"]["class"] == "task" and step["context"]["project"] == ""
    assert len({s["context"]["operation"] for s in steps.values()}) == 1

    missing = next(e["metadata"] for e in logged if f"nothing-{marker}" in json.dumps(e))
    assert missing == {
        "message": "Sending top level 404",
        "level": "info",
        "context": {"method": "GET", "remote": "@", "url": f"/1.0/nothing-{marker}"},
    }
    # --loglevel=info drops the debug lines; debug keeps them.
    assert "Sending top level 404" in info_text and "Handling API request" not in info_text
    assert 'msg="Handling API request"' in debug_text
    assert f"url=/1.0/profiles/{name} " in debug_text
