"""``python -m services.instance``: run the instance service."""

from __future__ import annotations

import services.common.lean  # noqa: F401  (first: keeps unused modules out)
from services.common.runtime import ServiceRuntime, run_service
from services.instance.service import NAME, setup


async def _setup(runtime: ServiceRuntime) -> None:
    await setup(runtime)


if __name__ == "__main__":
    run_service(NAME, _setup)
