"""LXD shapes of the server root: ``GET /1.0`` (see the ``Server`` definitions of the spec)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ServerEnvironment(BaseModel):
    """``environment`` of ``GET /1.0``: what the server runs on and what it is."""

    addresses: list[str] = Field(default_factory=list)
    architectures: list[str] = Field(default_factory=list)
    certificate: str = ""
    certificate_fingerprint: str = ""
    driver: str = ""
    driver_version: str = ""
    firewall: str = ""
    kernel: str = ""
    kernel_architecture: str = ""
    kernel_features: dict[str, str] = Field(default_factory=dict)
    kernel_version: str = ""
    lxc_features: dict[str, str] = Field(default_factory=dict)
    os_name: str = ""
    os_version: str = ""
    project: str = "default"
    server: str = "warren"
    server_clustered: bool = False
    server_event_mode: str = "full-mesh"
    server_name: str = ""
    server_pid: int = 0
    server_version: str = ""
    storage: str = ""
    storage_version: str = ""
    storage_supported_drivers: list[dict[str, Any]] = Field(default_factory=list)


class ServerPut(BaseModel):
    """The writable part of the server: its configuration."""

    config: dict[str, Any] = Field(default_factory=dict)


class Server(ServerPut):
    """``GET /1.0`` for a trusted client."""

    api_extensions: list[str] = Field(default_factory=list)
    api_status: str = "stable"
    api_version: str = "1.0"
    auth: str = "trusted"
    public: bool = False
    auth_methods: list[str] = Field(default_factory=list)
    environment: ServerEnvironment = Field(default_factory=ServerEnvironment)
