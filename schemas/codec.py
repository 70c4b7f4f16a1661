"""msgpack encoding of everything that crosses the bus."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

import msgpack
from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def pack(value: Any) -> bytes:
    """Encode plain data (dicts, lists, scalars, models) as msgpack."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    return msgpack.packb(value, default=_default, use_bin_type=True)


def unpack(data: bytes) -> Any:
    """Decode msgpack bytes into plain data."""
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def encode(model: BaseModel) -> bytes:
    """Encode a pydantic model."""
    return pack(model.model_dump(mode="json"))


def decode(model: type[M], data: bytes) -> M:
    """Decode bytes into a pydantic model, validating them."""
    return model.model_validate(unpack(data))
