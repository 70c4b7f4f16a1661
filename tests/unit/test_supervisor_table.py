"""The supervisor's table, replica parsing, and nats-server configuration (pure logic)."""

from __future__ import annotations

import importlib.util
import json
import socket
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.common.supervisor import SupervisorSettings
from services.common.supervisor_nats import choose_port, render_config, server_name
from services.common.supervisor_table import (
    SERVICES,
    ServiceSpec,
    gateway_socket,
    label,
    load_table,
    parse_replicas,
    replica_counts,
)


def test_real_table_names_real_modules_with_the_gateway_last():
    for spec in SERVICES:
        assert spec.module is not None
        found = importlib.util.find_spec(spec.module)
        assert found is not None, spec.module
        if found.submodule_search_locations is not None:  # a package runs its __main__
            assert importlib.util.find_spec(f"{spec.module}.__main__") is not None, spec.module
    assert SERVICES[-1].role == "gateway"
    assert [s.name for s in SERVICES if s.role == "gateway"] == ["gateway"]


def test_parse_replicas():
    assert parse_replicas("instance=2, gateway=3") == {"instance": 2, "gateway": 3}
    assert parse_replicas("") == {} and parse_replicas(None) == {}
    for bad in ("instance", "=2", "instance=two", "instance=-1"):
        with pytest.raises(ValueError):
            parse_replicas(bad)


def test_replica_counts_follow_the_table():
    table = [
        ServiceSpec(name="image", module="x", scope="cluster"),
        ServiceSpec(name="storage", module="x", scope="node"),
        ServiceSpec(name="instance", module="x", scope="node", replicable=True),
    ]
    assert replica_counts(table, {"image": 3, "instance": 2}) == {
        "image": 3,
        "storage": 1,
        "instance": 2,
    }
    with pytest.raises(ValueError, match="node-scoped"):
        replica_counts(table, {"storage": 2})
    with pytest.raises(ValueError, match="unknown service"):
        replica_counts(table, {"network": 2})
    with pytest.raises(ValueError, match="at least one"):
        replica_counts(table, {"image": 0})


def test_spec_needs_exactly_one_way_to_start():
    with pytest.raises(ValidationError):
        ServiceSpec(name="x")
    with pytest.raises(ValidationError):
        ServiceSpec(name="x", module="m", argv=["a"])
    assert ServiceSpec(name="x", module="m").command("/py") == ["/py", "-m", "m"]
    assert ServiceSpec(name="g", module="m", role="gateway").ready.kind == "socket"


def test_load_table_from_json(tmp_path: Path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps([{"name": "a", "argv": ["true"]}]))
    assert [s.name for s in load_table(path)] == ["a"]
    path.write_text(json.dumps([{"name": "a", "argv": ["true"]}] * 2))
    with pytest.raises(ValueError, match="duplicate"):
        load_table(path)
    path.write_text(json.dumps([{"name": "nats", "argv": ["true"]}]))
    with pytest.raises(ValueError, match="nats"):
        load_table(path)
    assert load_table(None) == SERVICES


def test_labels_and_gateway_sockets(tmp_path: Path):
    assert [label("instance", i) for i in range(3)] == ["instance", "instance-2", "instance-3"]
    default = tmp_path / "unix.socket"
    assert gateway_socket(default, tmp_path, 0) == default
    assert gateway_socket(default, tmp_path, 1) == tmp_path / "gateway-2.socket"


def test_server_name_is_stable_per_directory_and_distinct_across_directories(tmp_path: Path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert server_name(a) == server_name(a)
    assert server_name(a) != server_name(b)
    assert all(c.isalnum() or c == "-" for c in server_name(tmp_path / "odd name.x"))


def test_port_is_reused_while_free_and_replaced_when_taken(tmp_path: Path):
    port_file = tmp_path / "port"
    first = choose_port(port_file)
    assert int(port_file.read_text()) == first
    assert choose_port(port_file) == first
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", first))
        holder.listen()
        second = choose_port(port_file)
    assert second != first
    assert int(port_file.read_text()) == second


def test_rendered_config_enables_jetstream_in_the_store(tmp_path: Path):
    text = render_config("warren-x-1", 4321, tmp_path / "nats")
    assert 'server_name: "warren-x-1"' in text
    assert 'listen: "127.0.0.1:4321"' in text
    assert f'store_dir: "{tmp_path / "nats"}"' in text
    assert "http" not in text  # no monitoring port


def test_settings_flags_override_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("WARREN_DIR", str(tmp_path))
    monkeypatch.setenv("WARREN_REPLICAS", "instance=2,gateway=2")
    monkeypatch.delenv("WARREN_SOCKET", raising=False)
    monkeypatch.delenv("WARREN_NATS_URL", raising=False)
    settings = SupervisorSettings.load(["--replicas", "gateway=3"])
    assert settings.warren_dir == tmp_path
    assert settings.socket == tmp_path / "unix.socket"
    assert settings.replicas == {"instance": 2, "gateway": 3}
    assert settings.external_nats_url is None
    other = tmp_path / "other"
    assert SupervisorSettings.load(["--dir", str(other)]).warren_dir == other
