"""The systemd units and the nats configuration shipped in ops/ agree with each other."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string((REPO / "ops" / "systemd" / name).read_text())
    return parser


def test_warren_unit_points_at_the_nats_unit_port_and_runs_the_supervisor():
    unit = _unit("warren.service")
    env = dict(line.split("=", 1) for line in unit["Service"]["Environment"].split("\n"))
    conf = (REPO / "ops" / "nats" / "nats-server.conf").read_text()
    listen = re.search(r'^listen: "([^"]+)"', conf, re.M)
    assert listen is not None
    assert env["WARREN_NATS_URL"] == f"nats://{listen.group(1)}"
    assert unit["Service"]["ExecStart"].endswith("-m services.common.supervisor")
    assert "warren-nats.service" in unit["Unit"]["Requires"]


def test_nats_unit_reads_the_installed_config_and_stores_under_warren_dir():
    unit = _unit("warren-nats.service")
    assert unit["Service"]["ExecStart"].endswith("-c /etc/warren/nats-server.conf")
    assert unit["Service"]["KillSignal"] == "SIGINT"
    conf = (REPO / "ops" / "nats" / "nats-server.conf").read_text()
    assert 'store_dir: "/var/lib/warren/nats"' in conf
