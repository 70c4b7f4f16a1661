"""The compat suites' target: the module's Warren stack, or a real LXD for reference."""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest
from _helpers import LXD_SOCKET_ENV, LxdReference


@pytest.fixture(scope="module")
def target(request: pytest.FixtureRequest) -> Any:
    """What the real clients talk to: Warren, unless ``WARREN_COMPAT_LXD_SOCKET`` names an LXD."""
    socket = os.environ.get(LXD_SOCKET_ENV)
    if not socket:
        return request.getfixturevalue("module_warren")
    reference = LxdReference(socket)
    request.addfinalizer(lambda: shutil.rmtree(reference.client_dir, ignore_errors=True))
    return reference
