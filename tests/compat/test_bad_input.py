"""Bad input over HTTP gets the status the real LXD 5.0.2 gives, an LXD error body, and changes
nothing: neither the state (every project and profile, with ETags) nor the event log.

The expected statuses were recorded from a real LXD 5.0.2 (tests/compat/LXD-REFERENCE.md).
Where LXD 5.0.2 answers 500 for a plain client mistake (a duplicate profile name, an unknown
key on PUT/PATCH, renaming onto a taken name), the sensible 4xx is accepted too: the test
still fails on success or on any other status.
"""

from __future__ import annotations

from typing import Any

import pytest
from _helpers import dump, last_seq, metadata, unique

pytestmark = pytest.mark.timeout(180)

RUN = unique("bad")
PROFILE = f"{RUN}-profile"
OTHER = f"{RUN}-other"
PROJECT = f"{RUN}-project"
BUSY_PROJECT = f"{RUN}-busy"


@pytest.fixture(scope="module", autouse=True)
def existing_objects(target: Any) -> Any:
    """Objects the bad requests aim at; removed afterwards."""
    made = [
        ("/1.0/profiles", {"name": PROFILE, "config": {"user.a": "1"}}),
        ("/1.0/profiles", {"name": OTHER}),
        ("/1.0/projects", {"name": PROJECT}),
        ("/1.0/projects", {"name": BUSY_PROJECT}),
        (f"/1.0/profiles?project={BUSY_PROJECT}", {"name": "inside"}),
    ]
    for path, body in made:
        status, _, reply = target.request("POST", path, body)
        assert status == 201, f"POST {path} -> {status} {reply}"
    yield
    for path in (
        f"/1.0/profiles/inside?project={BUSY_PROJECT}",
        f"/1.0/projects/{BUSY_PROJECT}",
        f"/1.0/projects/{PROJECT}",
        f"/1.0/profiles/{OTHER}",
        f"/1.0/profiles/{PROFILE}",
    ):
        target.request("DELETE", path)


P = f"/1.0/profiles/{PROFILE}"
MISSING_NIC = {"eth0": {"type": "nic", "network": "nonexist"}}
J = f"/1.0/projects/{PROJECT}"

# (id, method, path, body: dict / raw str / None, statuses LXD-compatible, extra headers)
CASES: list[tuple[str, str, str, Any, set[int], dict[str, str]]] = [
    # invalid names
    ("profile-name-slash", "POST", "/1.0/profiles", {"name": "a/b"}, {400}, {}),
    ("profile-name-empty", "POST", "/1.0/profiles", {"name": ""}, {400}, {}),
    ("profile-name-missing", "POST", "/1.0/profiles", {"config": {}}, {400}, {}),
    ("profile-name-dot", "POST", "/1.0/profiles", {"name": "."}, {400}, {}),
    ("profile-name-dotdot", "POST", "/1.0/profiles", {"name": ".."}, {400}, {}),
    ("profile-name-number", "POST", "/1.0/profiles", {"name": 5}, {400}, {}),
    ("project-name-slash", "POST", "/1.0/projects", {"name": "a/b"}, {400}, {}),
    ("project-name-empty", "POST", "/1.0/projects", {"name": ""}, {400}, {}),
    ("project-name-space", "POST", "/1.0/projects", {"name": "has space"}, {400}, {}),
    ("project-name-underscore", "POST", "/1.0/projects", {"name": "a_b"}, {400}, {}),
    ("project-name-quote", "POST", "/1.0/projects", {"name": "a'b"}, {400}, {}),
    ("project-name-star", "POST", "/1.0/projects", {"name": "*"}, {400}, {}),
    ("project-name-dotdot", "POST", "/1.0/projects", {"name": ".."}, {400}, {}),
    ("rename-profile-slash", "POST", P, {"name": "x/y"}, {400}, {}),
    ("rename-profile-empty", "POST", P, {"name": ""}, {400}, {}),
    ("rename-profile-no-name", "POST", P, {}, {400}, {}),
    ("project-name-missing", "POST", "/1.0/projects", {"config": {}}, {400}, {}),
    # unknown or invalid config
    ("profile-unknown-key", "POST", "/1.0/profiles",
     {"name": unique("bad-key"), "config": {"foo.bar": "1"}}, {400}, {}),
    ("profile-bad-cpu-limit", "POST", "/1.0/profiles",
     {"name": unique("bad-cpu"), "config": {"limits.cpu": "abc"}}, {400}, {}),
    ("profile-config-not-string", "POST", "/1.0/profiles",
     {"name": unique("bad-type"), "config": {"limits.cpu": 2}}, {400}, {}),
    ("profile-put-unknown-key", "PUT", P, {"config": {"foo": "1"}}, {400, 500}, {}),
    ("profile-patch-unknown-key", "PATCH", P, {"config": {"foo": "1"}}, {400, 500}, {}),
    ("project-unknown-key", "POST", "/1.0/projects",
     {"name": unique("bad-key"), "config": {"foo.bar": "1"}}, {400}, {}),
    ("project-bad-feature-value", "POST", "/1.0/projects",
     {"name": unique("bad-val"), "config": {"features.profiles": "maybe"}}, {400}, {}),
    ("project-put-unknown-key", "PUT", J, {"config": {"foo": "1"}}, {400}, {}),
    # a nic on a network that does not exist (LXD says 404 on PUT and PATCH)
    ("profile-nic-missing-network", "POST", "/1.0/profiles",
     {"name": unique("bad-nic"), "devices": MISSING_NIC}, {400}, {}),
    ("profile-put-nic-missing-network", "PUT", P, {"devices": MISSING_NIC}, {404}, {}),
    ("profile-patch-nic-missing-network", "PATCH", P, {"devices": MISSING_NIC}, {404}, {}),
    # malformed JSON
    ("profiles-post-not-json", "POST", "/1.0/profiles", "not json", {400}, {}),
    ("profiles-post-truncated", "POST", "/1.0/profiles", '{"name": "x",', {400}, {}),
    ("profiles-post-empty-body", "POST", "/1.0/profiles", "", {400}, {}),
    ("profiles-post-array", "POST", "/1.0/profiles", "[]", {400}, {}),
    ("profile-put-truncated", "PUT", P, '{"config":', {400}, {}),
    ("profile-patch-truncated", "PATCH", P, '{"config":', {400}, {}),
    ("profile-rename-truncated", "POST", P, '{"name":', {400}, {}),
    ("projects-post-truncated", "POST", "/1.0/projects", '{"name": "x"', {400}, {}),
    # wrong methods and unknown endpoints
    ("profiles-patch", "PATCH", "/1.0/profiles", {}, {501}, {}),
    ("profiles-put", "PUT", "/1.0/profiles", {}, {501}, {}),
    ("profiles-delete", "DELETE", "/1.0/profiles", None, {501}, {}),
    ("projects-patch", "PATCH", "/1.0/projects", {}, {501}, {}),
    ("projects-delete", "DELETE", "/1.0/projects", None, {501}, {}),
    ("server-delete", "DELETE", "/1.0", None, {501}, {}),
    ("server-post", "POST", "/1.0", {}, {501}, {}),
    ("operations-post", "POST", "/1.0/operations", {}, {501}, {}),
    ("unknown-endpoint", "GET", "/1.0/nothing-here", None, {404}, {}),
    ("unknown-version", "GET", "/2.0", None, {404}, {}),
    # unknown projects and objects
    ("profiles-unknown-project", "GET", "/1.0/profiles?project=nope", None, {404}, {}),
    ("profile-unknown-project", "GET", "/1.0/profiles/default?project=nope", None, {404}, {}),
    ("create-in-unknown-project", "POST", "/1.0/profiles?project=nope",
     {"name": unique("nope")}, {404}, {}),
    ("get-unknown-project", "GET", "/1.0/projects/nope", None, {404}, {}),
    ("get-unknown-profile", "GET", "/1.0/profiles/nope", None, {404}, {}),
    ("put-unknown-profile", "PUT", "/1.0/profiles/nope", {"config": {}}, {404}, {}),
    ("patch-unknown-profile", "PATCH", "/1.0/profiles/nope", {"config": {}}, {404}, {}),
    ("delete-unknown-profile", "DELETE", "/1.0/profiles/nope", None, {404}, {}),
    ("rename-unknown-profile", "POST", "/1.0/profiles/nope", {"name": "x2"}, {404, 500}, {}),
    ("delete-unknown-project", "DELETE", "/1.0/projects/nope", None, {404}, {}),
    # refused changes
    ("delete-default-profile", "DELETE", "/1.0/profiles/default", None, {403}, {}),
    ("rename-default-profile", "POST", "/1.0/profiles/default", {"name": "x"}, {403}, {}),
    ("delete-default-project", "DELETE", "/1.0/projects/default", None, {403}, {}),
    ("rename-default-project", "POST", "/1.0/projects/default", {"name": "x"}, {403}, {}),
    ("duplicate-profile", "POST", "/1.0/profiles", {"name": PROFILE}, {409, 500}, {}),
    ("duplicate-project", "POST", "/1.0/projects", {"name": PROJECT}, {409}, {}),
    ("rename-onto-taken-name", "POST", P, {"name": OTHER}, {409, 500}, {}),
    ("delete-non-empty-project", "DELETE", f"/1.0/projects/{BUSY_PROJECT}", None,
     {409, 500}, {}),
    ("put-stale-etag", "PUT", P, {"config": {}}, {412}, {"If-Match": '"0000"'}),
    ("patch-stale-etag", "PATCH", P, {"config": {}}, {412}, {"If-Match": "0000"}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "body", "statuses", "headers"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_bad_request_gets_lxd_status_and_changes_nothing(
    target: Any,
    method: str,
    path: str,
    body: Any,
    statuses: set[int],
    headers: dict[str, str],
) -> None:
    nats_url = getattr(target, "nats_url", "")
    state_before, seq_before = dump(target), last_seq(nats_url)

    status, _, reply = target.request(method, path, body, headers)

    assert status in statuses, f"{method} {path} {body!r} -> {status} {reply}"
    assert isinstance(reply, dict), reply
    assert reply.get("type") == "error", reply
    assert reply.get("error_code") == status, reply
    assert isinstance(reply.get("error"), str) and reply["error"], reply
    assert dump(target) == state_before
    assert last_seq(nats_url) == seq_before


def test_objects_survived_the_bad_requests(target: Any) -> None:
    assert metadata(target, P)["config"] == {"user.a": "1"}
    assert metadata(target, f"/1.0/profiles/{OTHER}")["name"] == OTHER
    assert metadata(target, "/1.0/profiles/default")["name"] == "default"
    assert metadata(target, "/1.0/projects/default")["name"] == "default"
    assert metadata(target, f"/1.0/profiles/inside?project={BUSY_PROJECT}")["name"] == "inside"
