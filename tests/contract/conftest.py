"""Fixtures of the contract suites: every implementation of an interface, behind one fixture.

- ``seaweed`` (session): a real SeaweedFS S3 server (see ``s3server.SeaweedS3``), stopped at
  the end of the session.
- ``blob_backend`` (function, parametrized ``local`` / ``s3``): a ``blob_fixtures.BlobBackend``
  that makes stores of that driver over one fresh place (a temporary directory, a new bucket),
  restarts the backend, and reports leftovers (temporary files, temporary objects, unfinished
  multipart uploads).
- ``blobs``: a store made by ``blob_backend``, closed at the end of the test.
- ``pool`` (function, parametrized over the storage drivers): a fresh storage pool.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from blob_fixtures import BlobBackend
from s3server import SeaweedS3
from stack import short_tempdir
from storage_fixtures import force_cleanup, new_pool

from services.common.blobs import BlobStore
from services.storage.drivers import DRIVERS, StorageDriver


@pytest.fixture(scope="session")
def seaweed() -> Iterator[SeaweedS3]:
    """A real S3 server on loopback with its own data directory (removed afterwards)."""
    root = short_tempdir("weed-")
    server = SeaweedS3(root)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["local", "s3"])
def blob_backend(request: pytest.FixtureRequest, tmp_path: Path) -> BlobBackend:
    """Each blob driver in turn, over a fresh directory or bucket."""
    seaweed = request.getfixturevalue("seaweed") if request.param == "s3" else None
    return BlobBackend(request.param, tmp_path, seaweed)


@pytest.fixture
async def blobs(blob_backend: BlobBackend) -> AsyncIterator[BlobStore]:
    """A store of the driver under test, closed afterwards."""
    store = blob_backend.make()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture(params=sorted(DRIVERS))
async def pool(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StorageDriver]:
    """A fresh storage pool of each driver in its own WARREN_DIR; every host object goes
    afterwards."""
    warren_dir = tmp_path / "warren"
    driver = new_pool(request.param, warren_dir)
    try:
        config = await driver.create()
        yield type(driver)(driver.pool, config, warren_dir)
    finally:
        force_cleanup(warren_dir)
