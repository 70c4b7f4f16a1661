"""Shared fixtures: a real nats-server per session and whole Warren stacks on demand.

- ``nats_server`` (session): ``NatsServer`` with ``.url``, ``.port``, ``.store_dir``,
  ``.stop(sig=SIGTERM)`` and ``.start()`` (same port, same store).
- ``warren_factory`` (function): ``warren_factory(replicas={"instance": 2}, table=None,
  env=None, start=True) -> Stack``; every stack it made is stopped at the end of the test.
- ``warren`` (function): one started ``Stack``; parametrize it indirectly with a replicas dict
  (``@pytest.mark.parametrize("warren", [{"instance": 2}], indirect=True)``).
- ``module_warren`` (module): one started ``Stack`` shared by a module's tests; a module may set
  ``WARREN_REPLICAS = {...}`` at top level to choose replicas.

Logs of a stack are printed (captured into the report) when a test using it failed, and its
directory is kept for inspection; otherwise the directory is removed.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from stack import NatsServer, Stack, short_tempdir


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    # Remember each phase's outcome on the item so fixtures can tell a failed test at teardown.
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def _failed(node: Any) -> bool:
    return any(
        getattr(getattr(node, f"rep_{when}", None), "failed", False) for when in ("setup", "call")
    )


def _finish(stacks: list[Stack], failed: bool) -> None:
    for stack in stacks:
        code = stack.stop()
        stack.clean_host()
        if failed:
            print(f"\n#### Warren stack in {stack.dir} (kept), supervisor exit {code}")
            print(stack.dump_logs())
        else:
            shutil.rmtree(stack.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def nats_server() -> Iterator[NatsServer]:
    """A real ``nats-server -js`` on a random free port with a temporary store."""
    root = short_tempdir("nats-")
    server = NatsServer(root / "jetstream")
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def warren_factory(request: pytest.FixtureRequest) -> Iterator[Callable[..., Stack]]:
    """Make whole Warren stacks (each in its own WARREN_DIR); all are stopped afterwards."""
    made: list[Stack] = []

    def make(
        replicas: dict[str, int] | None = None,
        table: Path | None = None,
        env: dict[str, str] | None = None,
        start: bool = True,
        directory: Path | None = None,
    ) -> Stack:
        stack = Stack(directory=directory, replicas=replicas, table=table, extra_env=env)
        made.append(stack)
        return stack.start() if start else stack

    yield make
    _finish(made, _failed(request.node))


@pytest.fixture
def warren(request: pytest.FixtureRequest, warren_factory: Callable[..., Stack]) -> Stack:
    """A started Warren; indirect parameter: a replicas dict such as ``{"instance": 2}``."""
    replicas = getattr(request, "param", None)
    return warren_factory(replicas=replicas)


@pytest.fixture(scope="module")
def module_warren(request: pytest.FixtureRequest) -> Iterator[Stack]:
    """One started Warren shared by every test of a module (faster; state accumulates)."""
    replicas = getattr(request.module, "WARREN_REPLICAS", None)
    stack = Stack(replicas=replicas)
    failures_before = request.session.testsfailed
    try:
        stack.start()
    except BaseException:
        _finish([stack], True)
        raise
    yield stack
    _finish([stack], request.session.testsfailed > failures_before)
