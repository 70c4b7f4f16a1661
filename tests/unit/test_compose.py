"""compose.yaml stays valid and in step with the code."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import yaml

from services.common.supervisor_table import SERVICES

REPO = Path(__file__).resolve().parents[2]
INFRA = {"nats", "minio"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "compose.yaml").read_text())


def _env_vars_read_by_code() -> set[str]:
    found: set[str] = set()
    for package in ("services", "gateway", "schemas"):
        for path in (REPO / package).rglob("*.py"):
            found |= set(re.findall(r"\bWARREN_[A-Z_]+\b", path.read_text()))
    return found


def test_compose_lists_nats_minio_and_exactly_the_services_of_the_table(compose):
    assert set(compose["services"]) == INFRA | {spec.name for spec in SERVICES}


def test_every_warren_container_runs_a_real_module(compose):
    for name, service in compose["services"].items():
        if name in INFRA:
            continue
        python, flag, module = service["command"]
        assert (python, flag) == ("python", "-m")
        assert module == next(s.module for s in SERVICES if s.name == name)
        assert importlib.util.find_spec(module) is not None
        assert importlib.util.find_spec(f"{module}.__main__") is not None, module
        assert (REPO / service["build"]["context"] / service["build"]["dockerfile"]).is_file()


def test_environment_names_only_variables_the_code_reads(compose):
    known = _env_vars_read_by_code()
    for name, service in compose["services"].items():
        if name in INFRA:
            continue
        env = service["environment"]
        assert set(env) <= known, f"{name}: {set(env) - known} are read by no code"
        # A service in the host's network namespace reaches nats on its published port.
        host_networked = service.get("network_mode") == "host"
        expected = "nats://127.0.0.1:" if host_networked else "nats://nats:"
        assert env["WARREN_NATS_URL"].startswith(expected), name


def test_references_point_at_declared_things(compose):
    services = set(compose["services"])
    volumes = set(compose.get("volumes") or {})
    for name, service in compose["services"].items():
        for dep in service.get("depends_on") or {}:
            assert dep in services, f"{name} depends on unknown {dep}"
        for mount in service.get("volumes") or []:
            source = mount.split(":", 1)[0]
            assert source.startswith("/") or source in volumes, f"{name}: volume {source}"
