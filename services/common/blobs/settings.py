"""Blob store settings, read from the environment like the rest of a service's settings.

- ``WARREN_BLOB_DRIVER``: ``local`` (default) or ``s3``.
- ``WARREN_BLOB_DIR``: root of the ``local`` store (default ``$WARREN_DIR/blobs``).
- ``WARREN_S3_ENDPOINT`` (``host:port``), ``WARREN_S3_ACCESS_KEY``, ``WARREN_S3_SECRET_KEY``,
  ``WARREN_S3_BUCKET`` (default ``warren``), ``WARREN_S3_SECURE`` (``1``/``true`` for https),
  ``WARREN_S3_REGION`` (optional).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError, model_validator

from schemas.errors import BadRequest

_TRUE = {"1", "true", "yes", "on"}


class BlobSettings(BaseModel):
    """Which blob driver to use and how to reach its backend."""

    model_config = ConfigDict(frozen=True)

    driver: str = "local"
    local_root: Path = Path("/var/lib/warren/blobs")
    s3_endpoint: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: SecretStr | None = None
    s3_bucket: str = "warren"
    s3_secure: bool = False
    s3_region: str | None = None

    @model_validator(mode="after")
    def _s3_complete(self) -> BlobSettings:
        if self.driver == "s3" and not (
            self.s3_endpoint and self.s3_access_key and self.s3_secret_key
        ):
            raise ValueError(
                "the s3 blob driver needs WARREN_S3_ENDPOINT, WARREN_S3_ACCESS_KEY "
                "and WARREN_S3_SECRET_KEY"
            )
        return self

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> BlobSettings:
        """Settings from ``env`` (default: this process's environment)."""
        env = os.environ if env is None else env
        warren_dir = Path(env.get("WARREN_DIR", "/var/lib/warren"))
        try:
            return cls(
                driver=env.get("WARREN_BLOB_DRIVER", "local"),
                local_root=Path(env.get("WARREN_BLOB_DIR") or warren_dir / "blobs"),
                s3_endpoint=env.get("WARREN_S3_ENDPOINT") or None,
                s3_access_key=env.get("WARREN_S3_ACCESS_KEY") or None,
                s3_secret_key=env.get("WARREN_S3_SECRET_KEY") or None,
                s3_bucket=env.get("WARREN_S3_BUCKET") or "warren",
                s3_secure=env.get("WARREN_S3_SECURE", "").lower() in _TRUE,
                s3_region=env.get("WARREN_S3_REGION") or None,
            )
        except ValidationError as exc:
            raise BadRequest(f"invalid blob store settings: {exc}") from exc
