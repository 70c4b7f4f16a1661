"""The image service on a real nats-server: streamed uploads (unified and split), import
operations, bad uploads leaving nothing, export, aliases, delete."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import timedelta
from pathlib import Path

import nats
import pytest
from test_catalog_support import Instance
from test_image_service_support import Images, ImageService, hostile_image, split_image

from schemas import events, subjects
from schemas.bytestream import Frame, pack_frame, send_stream
from schemas.envelope import Event, utcnow
from schemas.errors import BadRequest, Conflict, NotFound
from services.image.builders.busybox import build_busybox

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not Path("/bin/busybox").exists(), reason="busybox-static not installed"),
]


@pytest.fixture(scope="module")
def busybox(tmp_path_factory) -> bytes:
    result = build_busybox(tmp_path_factory.mktemp("busybox"))
    return Path(result.path).read_bytes()


@pytest.fixture(scope="module")
async def service(nats_server, tmp_path_factory):
    warren_dir = tmp_path_factory.mktemp("warren")
    instance = await Instance(nats_server.url, warren_dir).start()  # owns the projects
    image = await ImageService(nats_server.url, warren_dir).start()
    yield image
    await image.stop()
    await instance.stop()


@pytest.fixture(scope="module")
async def images(nats_server, service):
    client = await Images.open(nats_server.url)
    yield client
    await client.close()


async def _image_events(images: Images, fingerprint: str) -> list[str]:
    types = []
    async for stored in images.store.replay(subjects.aggregate_events("image")):
        if stored.event.payload.get("fingerprint") == fingerprint:
            types.append(stored.event.type)
    return types


async def _delete(images: Images, fingerprint: str) -> None:
    result = await images.call(subjects.IMAGES_DELETE, {"fingerprint": fingerprint})
    assert result["operation"]["status"] == "Success", result


async def test_unified_upload_creates_the_image_and_its_blob(images, service, busybox):
    sha = hashlib.sha256(busybox).hexdigest()
    op = await images.upload(busybox, filename="busybox.tar.gz", properties={"user.x": "1"})
    assert op["status"] == "Success", op
    assert op["metadata"] == {"fingerprint": sha, "size": len(busybox)}
    got = await images.call(subjects.IMAGES_GET, {"fingerprint": sha[:12]})
    image = got["object"]
    assert image["fingerprint"] == sha and image["size"] == len(busybox)
    assert image["filename"] == "busybox.tar.gz" and image["architecture"] == "x86_64"
    assert image["properties"]["os"] == "busybox" and image["properties"]["user.x"] == "1"
    assert image["type"] == "container" and image["cached"] is False
    assert sha in await images.call(subjects.IMAGES_LIST, {"recursion": 0})
    assert f"images/{sha}" in service.blob_files()
    assert await _image_events(images, sha) == [events.IMAGE_CREATED]
    assert service.spool_files() == []

    again = await images.upload(busybox)
    assert again["status"] == "Failure"
    assert again["err"] == "Image with same fingerprint already exists"
    assert await _image_events(images, sha) == [events.IMAGE_CREATED]

    assert await images.export(sha) == [("busybox.tar.gz", busybox)]
    await _delete(images, sha)
    with pytest.raises(NotFound):
        await images.call(subjects.IMAGES_GET, {"fingerprint": sha})
    assert f"images/{sha}" not in service.blob_files()
    # The same image imported again after a delete is a new life of the same aggregate.
    assert (await images.upload(busybox))["status"] == "Success"
    await _delete(images, sha)
    assert await _image_events(images, sha) == [events.IMAGE_CREATED, events.IMAGE_DELETED] * 2


async def test_split_upload_and_export(images, service, busybox):
    meta, rootfs = split_image(busybox)
    fingerprint = hashlib.sha256(meta + rootfs).hexdigest()
    op = await images.upload(meta, rootfs, filename="rootfs.tar.gz")
    assert op["status"] == "Success", op
    assert op["metadata"]["fingerprint"] == fingerprint
    assert {f"images/{fingerprint}.meta", f"images/{fingerprint}.rootfs"} <= set(
        service.blob_files()
    )
    exported = await images.export(fingerprint)
    assert exported == [("meta-rootfs.tar.gz", meta), ("rootfs.tar.gz", rootfs)]
    await _delete(images, fingerprint)
    assert not [f for f in service.blob_files() if fingerprint in f]


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("truncated", "corrupt or truncated archive"),
        ("junk", "unsupported image file format"),
        ("hostile", "'..' path component"),
    ],
)
async def test_bad_uploads_leave_nothing(images, service, busybox, kind, message):
    data = {
        "truncated": busybox[: len(busybox) // 2],
        "junk": b"\x01not an image" * 100,
        "hostile": hostile_image(),
    }[kind]
    before = await images.call(subjects.IMAGES_LIST, {"recursion": 0})
    blobs_before = service.blob_files()
    op = await images.upload(data)
    assert op["status"] == "Failure" and message in op["err"], op
    assert op["status_code"] == 400
    assert await images.call(subjects.IMAGES_LIST, {"recursion": 0}) == before
    assert service.blob_files() == blobs_before
    assert service.spool_files() == []
    assert await _image_events(images, hashlib.sha256(data).hexdigest()) == []


async def test_announced_fingerprint_must_match(images, service, busybox):
    sha = hashlib.sha256(busybox).hexdigest()
    op = await images.upload(busybox, fingerprint="0" * 64)
    assert op["status"] == "Failure" and "Fingerprints don't match" in op["err"]
    assert f"images/{sha}" not in service.blob_files()
    assert sha not in await images.call(subjects.IMAGES_LIST, {"recursion": 0})


async def test_unknown_project_is_refused_before_any_byte(images):
    with pytest.raises(NotFound, match="Project not found"):
        await images.begin(project=f"nope-{uuid.uuid4().hex[:6]}")


async def test_abandoned_upload_is_cleaned_up(images, service):
    assert service.ctx is not None
    service.ctx.idle_timeout = 1.0
    try:
        upload_id = await images.begin()
        subject = subjects.stream(upload_id, 0)
        await images.bus.nc.request(subject, pack_frame(Frame(seq=0, data=b"x" * 1000)))
        # The sender goes silent: the receiver gives up, removes its spool file, unsubscribes.
        for _ in range(400):
            if not service.spool_files():
                break
            await asyncio.sleep(0.05)
        assert service.spool_files() == []
        with pytest.raises(nats.errors.NoRespondersError):
            for _ in range(100):
                await images.bus.nc.request(subject, pack_frame(Frame(seq=1, data=b"y")))
                await asyncio.sleep(0.05)
    finally:
        service.ctx.idle_timeout = 60.0


async def test_sender_abort_is_cleaned_up(images, service, busybox):
    class Boom(Exception):
        pass

    async def failing():
        yield busybox[:200_000]
        raise Boom

    upload_id = await images.begin()
    with pytest.raises(Boom):
        await send_stream(images.bus.nc, subjects.stream(upload_id, 0), failing())
    for _ in range(400):
        if not service.spool_files():
            break
        await asyncio.sleep(0.05)
    assert service.spool_files() == []


async def test_aliases_crud_rename_and_cascade(images, busybox):
    sha = hashlib.sha256(busybox).hexdigest()
    assert (await images.upload(busybox))["status"] == "Success"
    name = f"bb-{uuid.uuid4().hex[:6]}"
    created = await images.call(
        subjects.IMAGE_ALIASES_CREATE, {"name": name, "target": sha[:8], "description": "d"}
    )
    assert created["object"] == {
        "name": name,
        "description": "d",
        "target": sha,
        "type": "container",
    }
    with pytest.raises(Conflict, match="Alias already exists"):
        await images.call(subjects.IMAGE_ALIASES_CREATE, {"name": name, "target": sha})
    with pytest.raises(NotFound):
        await images.call(subjects.IMAGE_ALIASES_CREATE, {"name": "x" + name, "target": "ffff"})
    with pytest.raises(BadRequest):
        await images.call(subjects.IMAGE_ALIASES_CREATE, {"name": "a/b", "target": sha})
    image = (await images.call(subjects.IMAGES_GET, {"fingerprint": sha}))["object"]
    assert image["aliases"] == [{"name": name, "description": "d"}]

    await images.call(
        subjects.IMAGE_ALIASES_UPDATE,
        {"name": name, "mode": "patch", "description": "e", "fields": ["description"]},
    )
    got = await images.call(subjects.IMAGE_ALIASES_GET, {"name": name})
    assert got["object"]["description"] == "e" and got["object"]["target"] == sha

    new = name + "-2"
    await images.call(subjects.IMAGE_ALIASES_RENAME, {"name": name, "new_name": new})
    assert new in await images.call(subjects.IMAGE_ALIASES_LIST, {"recursion": 0})
    assert name not in await images.call(subjects.IMAGE_ALIASES_LIST, {"recursion": 0})
    # The old name is free again.
    await images.call(subjects.IMAGE_ALIASES_CREATE, {"name": name, "target": sha})
    await images.call(subjects.IMAGE_ALIASES_DELETE, {"name": name})
    with pytest.raises(NotFound):
        await images.call(subjects.IMAGE_ALIASES_GET, {"name": name})

    await _delete(images, sha)
    assert new not in await images.call(subjects.IMAGE_ALIASES_LIST, {"recursion": 0})


async def test_update_put_patch_and_etag(images, busybox):
    sha = hashlib.sha256(busybox).hexdigest()
    assert (await images.upload(busybox))["status"] == "Success"
    try:
        got = await images.call(subjects.IMAGES_GET, {"fingerprint": sha})
        await images.call(
            subjects.IMAGES_UPDATE,
            {"fingerprint": sha, "mode": "patch", "public": True, "fields": ["public"]},
        )
        patched = (await images.call(subjects.IMAGES_GET, {"fingerprint": sha}))["object"]
        assert patched["public"] is True and patched["properties"] == got["object"]["properties"]
        await images.call(
            subjects.IMAGES_UPDATE, {"fingerprint": sha, "mode": "put", "properties": {"a": "b"}}
        )
        put = (await images.call(subjects.IMAGES_GET, {"fingerprint": sha}))["object"]
        assert put["properties"] == {"a": "b"} and put["public"] is False
    finally:
        await _delete(images, sha)


async def test_two_replicas_share_the_work(images, service, nats_server, busybox):
    """Uploads and exports land on either replica (queue group); each finishes on the one
    that took it, and both see the same images."""
    assert service.ctx is not None
    second = await ImageService(nats_server.url, service.runtime.settings.warren_dir, "n2").start()
    try:
        meta, rootfs = split_image(busybox)
        shas = [hashlib.sha256(busybox).hexdigest(), hashlib.sha256(meta + rootfs).hexdigest()]
        for _ in range(3):
            assert (await images.upload(busybox))["status"] == "Success"
            assert (await images.upload(meta, rootfs, filename="r.tar.gz"))["status"] == "Success"
            assert await images.export(shas[0]) == [(shas[0], busybox)]
            assert await images.export(shas[1]) == [("meta-r.tar.gz", meta), ("r.tar.gz", rootfs)]
            for sha in shas:
                await _delete(images, sha)
        assert second.spool_files() == [] and service.spool_files() == []
    finally:
        await second.stop()


async def _running_operation(images: Images, age: timedelta) -> str:
    """Record an image operation as Running, as a process that then died would leave it."""
    op_id = str(uuid.uuid4())
    now = utcnow() - age
    obj = {
        "id": op_id,
        "class": "task",
        "description": "Downloading image",
        "created_at": now.isoformat(),
        "updated_at": now.isoformat(),
        "status": "Running",
        "status_code": 103,
        "resources": None,
        "metadata": None,
        "may_cancel": False,
        "err": "",
        "location": "none",
    }
    event = Event(
        type=events.OPERATION_CREATED,
        aggregate=subjects.OPERATION_AGGREGATE,
        aggregate_id=op_id,
        version=1,
        occurred_at=now,
        payload=obj,
    )
    await images.store.append([event], expected_seq=0)
    return op_id


async def test_operations_of_a_dead_process_are_failed_at_start(images, service, nats_server):
    orphan = await _running_operation(images, timedelta(minutes=5))
    young = await _running_operation(images, timedelta(seconds=0))
    second = await ImageService(nats_server.url, service.runtime.settings.warren_dir, "n3").start()
    try:
        assert second.ctx is not None and second.ctx.startup is not None
        await second.ctx.startup
        # The young one is judged once old enough (its owner might have been starting).
        for op_id in (orphan, young):
            final = await images.wait_operation(op_id)
            assert final["status"] == "Failure"
            assert final["err"] == "The image service stopped during the operation"
    finally:
        await second.stop()


async def test_operations_of_a_live_process_are_left_alone(images, service, nats_server):
    """An old Running operation whose owner answers the liveness probe is not touched."""
    op_id = await _running_operation(images, timedelta(minutes=5))

    async def owner(msg):
        await msg.respond(b"")

    sub = await images.bus.nc.subscribe(subjects.image_operation_alive(op_id), cb=owner)
    second = await ImageService(nats_server.url, service.runtime.settings.warren_dir, "n4").start()
    try:
        assert second.ctx is not None and second.ctx.startup is not None
        await second.ctx.startup
        last = await images.store.last(subjects.operation(op_id))
        assert last is not None and last.event.payload["status"] == "Running"
        assert op_id in second.ctx.projection.running.ops
    finally:
        await second.stop()
        await sub.unsubscribe()
