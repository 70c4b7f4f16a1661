"""pylxd 2.x image calls against a Warren stack: create (unified and split), aliases, delete."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

import pytest
from _helpers import unique

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from test_image_service_support import split_image

from services.image.builders.busybox import build_busybox

pylxd = pytest.importorskip("pylxd")
from pylxd.exceptions import LXDAPIException  # noqa: E402

pytestmark = [
    pytest.mark.skipif(not Path("/bin/busybox").exists(), reason="busybox-static not installed"),
    pytest.mark.timeout(120),
]


@pytest.fixture(scope="module")
def busybox(tmp_path_factory) -> bytes:
    return Path(build_busybox(tmp_path_factory.mktemp("busybox")).path).read_bytes()


@pytest.fixture(scope="module")
def client(module_warren: Any) -> Any:
    return pylxd.Client(endpoint=str(module_warren.socket))


def test_create_alias_get_delete(client, busybox):
    sha = hashlib.sha256(busybox).hexdigest()
    image = client.images.create(busybox, wait=True)
    assert image.fingerprint == sha
    assert client.images.exists(sha[:10])
    got = client.images.get(sha)
    assert got.size == len(busybox) and got.architecture == "x86_64"
    assert got.properties["os"] == "busybox"

    alias = unique("py")
    got.add_alias(alias, "from pylxd")
    assert client.images.get_by_alias(alias).fingerprint == sha
    assert {"name": alias, "description": "from pylxd"} in client.images.get(sha).aliases
    got.delete_alias(alias)
    assert not client.images.get(sha).aliases

    with pytest.raises(LXDAPIException, match="Image with same fingerprint already exists"):
        client.images.create(busybox, wait=True)

    got.public = True
    got.save(wait=True)
    assert client.images.get(sha).public is True

    got.delete(wait=True)
    assert not client.images.exists(sha)
    assert sha not in [i.fingerprint for i in client.images.all()]


def test_create_split(client, busybox):
    meta, rootfs = split_image(busybox)
    image = client.images.create(rootfs, metadata=meta, wait=True)
    assert image.fingerprint == hashlib.sha256(meta + rootfs).hexdigest()
    assert image.fingerprint in [i.fingerprint for i in client.images.all()]
    image.delete(wait=True)
    assert not client.images.exists(image.fingerprint)
