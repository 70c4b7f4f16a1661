"""Helpers for the blob store contract suite: one driver over one fresh place (a directory or
a bucket of the test S3 server), restartable, with a way to find what a put left behind."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

from minio import Minio
from minio.helpers import MIN_PART_SIZE
from s3server import ACCESS_KEY, SECRET_KEY, SeaweedS3

from services.common.blobs import BlobStore, LocalBlobStore, S3BlobStore
from services.common.blobs.s3 import TEMP_PREFIX

# Small chunks and the smallest S3 part size, so that modest test data spans many of both.
CHUNK = 64 * 1024


class BlobBackend:
    """One driver over one fresh place: makes stores, restarts, finds leftovers."""

    def __init__(self, driver: str, tmp_path: Path, seaweed: SeaweedS3 | None) -> None:
        self.driver = driver
        self.root = tmp_path / "blobs"
        self.seaweed = seaweed
        self.bucket = f"contract-{uuid.uuid4().hex[:12]}"

    def make(self, **kwargs: object) -> BlobStore:
        """A new store instance over this backend's place."""
        if self.driver == "local":
            return LocalBlobStore(self.root, chunk_size=CHUNK, **kwargs)  # type: ignore[arg-type]
        assert self.seaweed is not None
        options = {"access_key": ACCESS_KEY, "secret_key": SECRET_KEY, **kwargs}
        return S3BlobStore(
            self.seaweed.endpoint,
            bucket=self.bucket,
            part_size=MIN_PART_SIZE,
            chunk_size=CHUNK,
            **options,  # type: ignore[arg-type]
        )

    def restart(self) -> None:
        """Restart what holds the data (the S3 server); a directory needs nothing."""
        if self.seaweed is not None:
            self.seaweed.restart()

    def plant_leftover(self) -> None:
        """Leave what a put whose process was killed half-way leaves behind."""
        if self.driver == "local":
            (self.root / "images").mkdir(parents=True, exist_ok=True)
            (self.root / "images" / f".x.{uuid.uuid4().hex}.part").write_bytes(b"half")
            return
        assert self.seaweed is not None
        client = Minio(self.seaweed.endpoint, ACCESS_KEY, SECRET_KEY, secure=False)
        if not client.bucket_exists(self.bucket):
            client.make_bucket(self.bucket)
        client.put_object(self.bucket, f"{TEMP_PREFIX}{uuid.uuid4().hex}", io.BytesIO(b"half"), 4)

    def leftovers(self) -> list[str]:
        """Temporary files/objects and unfinished multipart uploads still lying around."""
        if self.driver == "local":
            if not self.root.exists():
                return []
            return [
                str(path.relative_to(self.root))
                for path in self.root.rglob("*")
                if path.name.startswith(".")
            ]
        assert self.seaweed is not None
        client = Minio(self.seaweed.endpoint, ACCESS_KEY, SECRET_KEY, secure=False)
        if not client.bucket_exists(self.bucket):
            return []
        found = [
            obj.object_name or ""
            for obj in client.list_objects(self.bucket, prefix=TEMP_PREFIX, recursive=True)
        ]
        # minio has no public call for ListMultipartUploads; the S3 call itself is what counts.
        uploads = client._list_multipart_uploads(self.bucket)
        found += [f"multipart:{upload.object_name}" for upload in uploads.uploads]
        return found
