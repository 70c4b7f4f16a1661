"""The real LXD 5.0 ``lxc`` client's image commands against a Warren stack.

Builds the busybox image, imports it (unified and split), lists, inspects, aliases, exports
(byte-identical files), deletes; bad uploads fail clearly and leave nothing behind; the image
service killed in the middle of an upload leaves nothing half made.
"""

from __future__ import annotations

import hashlib
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from _helpers import LxcMonitor, lifecycle, lxc_ok, mentions, metadata, prime_listener, unique
from stack import UnixHTTPConnection, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from test_image_service_support import hostile_image, split_image

from services.image.builders.busybox import build_busybox

pytestmark = [
    pytest.mark.skipif(shutil.which("lxc") is None, reason="the lxc client is missing"),
    pytest.mark.skipif(not Path("/bin/busybox").exists(), reason="busybox-static not installed"),
    pytest.mark.timeout(180),
]


@pytest.fixture(scope="module")
def busybox(tmp_path_factory) -> Path:
    return Path(build_busybox(tmp_path_factory.mktemp("busybox")).path)


def fingerprints(stack: Any) -> list[str]:
    return [url.rsplit("/", 1)[-1] for url in metadata(stack, "/1.0/images")]


def image_blobs(stack: Any) -> list[str]:
    root = stack.dir / "blobs"
    return sorted(p.name for p in root.rglob("*") if p.is_file()) if root.exists() else []


def spool_files(stack: Any) -> list[str]:
    root = stack.dir / "tmp" / "image-uploads"
    return sorted(p.name for p in root.rglob("upload-*")) if root.exists() else []


def test_import_list_info_alias_export_delete(module_warren, busybox, tmp_path):
    stack = module_warren
    sha = hashlib.sha256(busybox.read_bytes()).hexdigest()
    out = lxc_ok(stack, "image", "import", str(busybox), "--alias", "busybox")
    assert f"Image imported with fingerprint: {sha}" in out
    listed = lxc_ok(stack, "image", "list", "--format", "csv")
    assert f"busybox,{sha[:12]},no," in listed
    info = lxc_ok(stack, "image", "info", "busybox")
    assert f"Fingerprint: {sha}" in info and "Architecture: x86_64" in info
    assert "os: busybox" in info and "- busybox" in info

    second = unique("bb")
    lxc_ok(stack, "image", "alias", "create", second, sha[:12])
    renamed = second + "-r"
    lxc_ok(stack, "image", "alias", "rename", second, renamed)
    aliases = lxc_ok(stack, "image", "alias", "list", "--format", "csv")
    assert f"{renamed},{sha[:12]}" in aliases and f"{second}," not in aliases
    lxc_ok(stack, "image", "alias", "delete", renamed)
    assert renamed not in lxc_ok(stack, "image", "alias", "list", "--format", "csv")

    # `lxc image edit` reads the new YAML from stdin when it is not a terminal (a PUT).
    lxc_ok(stack, "image", "edit", "busybox", input="properties:\n  os: edited\npublic: true\n")
    shown = yaml.safe_load(lxc_ok(stack, "image", "show", "busybox"))
    assert shown["properties"] == {"os": "edited"} and shown["public"] is True

    out_dir = tmp_path / "export"
    out_dir.mkdir()
    lxc_ok(stack, "image", "export", "busybox", str(out_dir))
    exported = out_dir / busybox.name
    assert exported.read_bytes() == busybox.read_bytes()

    again = stack.lxc("image", "import", str(busybox))
    assert again.returncode != 0
    assert "Image with same fingerprint already exists" in again.stderr

    lxc_ok(stack, "image", "delete", "busybox")
    assert sha not in fingerprints(stack)
    assert "busybox" not in lxc_ok(stack, "image", "alias", "list", "--format", "csv")
    assert sha not in image_blobs(stack)


def test_split_import_and_export(module_warren, busybox, tmp_path):
    stack = module_warren
    meta, rootfs = split_image(busybox.read_bytes())
    (tmp_path / "meta.tar.gz").write_bytes(meta)
    (tmp_path / "rootfs.tar.gz").write_bytes(rootfs)
    sha = hashlib.sha256(meta + rootfs).hexdigest()
    alias = unique("split")
    out = lxc_ok(
        stack,
        "image",
        "import",
        str(tmp_path / "meta.tar.gz"),
        str(tmp_path / "rootfs.tar.gz"),
        "--alias",
        alias,
    )
    assert sha in out
    out_dir = tmp_path / "export"
    out_dir.mkdir()
    lxc_ok(stack, "image", "export", alias, str(out_dir))
    # LXD names a split export after the rootfs file, the metadata with a "meta-" prefix.
    assert (out_dir / "meta-rootfs.tar.gz").read_bytes() == meta
    assert (out_dir / "rootfs.tar.gz").read_bytes() == rootfs
    lxc_ok(stack, "image", "delete", alias)
    assert sha not in fingerprints(stack)


@pytest.mark.parametrize("kind", ["truncated", "hostile"])
def test_bad_uploads_fail_clearly_and_leave_nothing(module_warren, busybox, tmp_path, kind):
    stack = module_warren
    data = busybox.read_bytes()
    data = data[: len(data) // 2] if kind == "truncated" else hostile_image()
    path = tmp_path / "bad.tar.gz"
    path.write_bytes(data)
    before, blobs_before = fingerprints(stack), image_blobs(stack)
    result = stack.lxc("image", "import", str(path))
    assert result.returncode != 0
    expected = "corrupt or truncated archive" if kind == "truncated" else "'..' path component"
    assert expected in result.stderr
    assert fingerprints(stack) == before
    assert image_blobs(stack) == blobs_before
    assert spool_files(stack) == []


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def test_image_service_killed_mid_upload(module_warren, busybox):
    stack = module_warren
    data = busybox.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    before = fingerprints(stack)
    conn = UnixHTTPConnection(stack.socket, timeout=60)
    try:
        conn.putrequest("POST", "/1.0/images")
        conn.putheader("Content-Type", "application/octet-stream")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        conn.send(_chunk(data[:300_000]))
        # The service is spooling this upload: kill it there.
        wait_for(lambda: spool_files(stack), 30, "the upload to start spooling")
        old = stack.kill("image", signal.SIGKILL)
        # Once a new process runs the old one's connection is surely gone, so the gateway's
        # next chunk finds no responder (a chunk in flight at the kill times out instead).
        stack.wait_restarted("image", old)
        try:
            conn.send(_chunk(data[300_000:]) + b"0\r\n\r\n")
            response = conn.getresponse()
            status = response.status
            response.read()
        except (BrokenPipeError, ConnectionResetError):
            status = 0  # the gateway may refuse the rest of the body outright
        assert status != 202 and (status == 0 or status >= 500)
    finally:
        conn.close()
    # The new process removed the dead one's spool file; nothing was stored.
    wait_for(lambda: spool_files(stack) == [], 30, "the abandoned spool file to go")
    assert fingerprints(stack) == before
    assert sha not in image_blobs(stack)
    out = lxc_ok(stack, "image", "import", str(busybox))
    assert sha in out
    lxc_ok(stack, "image", "delete", sha)


@pytest.mark.parametrize(
    "content_type",
    ["multipart/form-data; boundary=xyz", "multipart/form-data"],
)
def test_malformed_multipart_is_a_bad_request(module_warren, content_type):
    before = fingerprints(module_warren)
    status, _, body = module_warren.request(
        "POST", "/1.0/images", b"garbage", headers={"Content-Type": content_type}
    )
    assert status == 400 and "Invalid multipart image" in body["error"], body
    assert fingerprints(module_warren) == before


def test_split_upload_without_rootfs_is_refused_and_dropped(module_warren, busybox):
    meta, _ = split_image(busybox.read_bytes())
    body = (
        b"--b0\r\n"
        b'Content-Disposition: form-data; name="metadata"; filename="meta.tar.gz"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n" + meta + b"\r\n--b0--\r\n"
    )
    headers = {"Content-Type": "multipart/form-data; boundary=b0"}
    status, _, reply = module_warren.request("POST", "/1.0/images", body, headers=headers)
    assert status == 400 and "expected a rootfs or rootfs.img part" in reply["error"], reply
    # The half-received upload is dropped at once (the service was told), not left to time out.
    wait_for(lambda: spool_files(module_warren) == [], 30, "the half upload to be dropped")


def test_json_sources_are_refused_clearly(module_warren):
    status, _, body = module_warren.request(
        "POST", "/1.0/images", {"source": {"type": "url", "url": "https://example.org/x"}}
    )
    assert status == 501
    assert "upload" in body["error"]


def test_lifecycle_events(module_warren, busybox):
    stack = module_warren
    sha = hashlib.sha256(busybox.read_bytes()).hexdigest()
    alias = unique("ev")
    image_src, alias_src = f"/1.0/images/{sha}", f"/1.0/images/aliases/{alias}"
    sources = {image_src, alias_src}
    monitor = LxcMonitor(stack)
    try:
        prime_listener(stack, lambda probe: mentions(monitor.events(), probe))
        lxc_ok(stack, "image", "import", str(busybox), "--alias", alias)
        lxc_ok(stack, "image", "delete", alias)
        events = monitor.wait_for(
            lambda evs: ("image-deleted", image_src) in lifecycle(evs, sources),
            "the image-deleted event",
        )
    finally:
        monitor.stop()
    assert lifecycle(events, sources) == [
        ("image-created", image_src),
        ("image-alias-created", alias_src),
        ("image-alias-deleted", alias_src),
        ("image-deleted", image_src),
    ]


def test_images_belong_to_their_project(module_warren, busybox):
    stack = module_warren
    project = unique("imgp")
    lxc_ok(stack, "project", "create", project)
    try:
        sha = hashlib.sha256(busybox.read_bytes()).hexdigest()
        lxc_ok(stack, "image", "import", str(busybox), "--project", project, "--alias", "bb")
        assert sha in [
            u.split("?")[0].rsplit("/", 1)[-1]
            for u in metadata(stack, f"/1.0/images?project={project}")
        ]
        assert sha not in fingerprints(stack)
        assert "bb" not in lxc_ok(stack, "image", "alias", "list", "--format", "csv")
        lxc_ok(stack, "image", "delete", "bb", "--project", project)
    finally:
        lxc_ok(stack, "project", "delete", project)


def test_list_filters(module_warren, busybox):
    """``api_filtering`` covers images: ``lxc image list type=...`` sends the filter to the
    server (which must apply it, or the client shows every image)."""
    stack = module_warren
    sha = hashlib.sha256(busybox.read_bytes()).hexdigest()
    alias = unique("flt")
    lxc_ok(stack, "image", "import", str(busybox), "--alias", alias)
    try:
        assert sha[:12] in lxc_ok(stack, "image", "list", "type=container", "--format", "csv")
        vms = lxc_ok(stack, "image", "list", "type=virtual-machine", "--format", "csv")
        assert sha[:12] not in vms
        url = f"/1.0/images/{sha}"
        assert url in metadata(stack, "/1.0/images?filter=properties.os+eq+busybox")
        assert metadata(stack, "/1.0/images?filter=properties.os+eq+nope") == []
        objects = metadata(stack, "/1.0/images?filter=type+eq+container&recursion=1")
        assert sha in [o["fingerprint"] for o in objects]
        status, _, body = stack.request("GET", "/1.0/images?filter=bogus")
        assert status in (400, 500) and "Invalid filter" in body["error"]
    finally:
        lxc_ok(stack, "image", "delete", alias)
