"""A network's firewall rules: one nftables table of its own, ``inet warren_<name>``.

The table is replaced in one transaction (``nft -f -``), so rules are never half loaded;
deleting it removes everything of the network. Nothing else on the host is touched, but
forwarding is switched on (``net.ipv4.ip_forward``) when NAT or forwards need it, as LXD does.
Blocking: call from a thread.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from services.network.drivers.base import BridgeSpec
from services.network.drivers.errors import DriverError

NFT = "nft"


def table_name(network: str) -> str:
    return "warren_" + network.replace("-", "_")


def ruleset(spec: BridgeSpec) -> str:
    """The table's text for ``spec``."""
    br = spec.name
    lines = [
        "chain forward {",
        "  type filter hook forward priority 0; policy accept;",
        f'  iifname "{br}" accept',
        f'  oifname "{br}" accept',
        "}",
        "chain postrouting {",
        "  type nat hook postrouting priority 100; policy accept;",
    ]
    if spec.ipv4 is not None and spec.ipv4_nat:
        subnet = spec.ipv4.network
        lines.append(f'  ip saddr {subnet} ip daddr != {subnet} oifname != "{br}" masquerade')
    if spec.ipv6 is not None and spec.ipv6_nat:
        subnet6 = spec.ipv6.network
        lines.append(f'  ip6 saddr {subnet6} ip6 daddr != {subnet6} oifname != "{br}" masquerade')
    if spec.forwards and spec.ipv4 is not None:
        # Hairpin: a forwarded connection from the bridge's own subnet would be answered
        # directly, bypassing the reverse DNAT: source it from the bridge's address. Others
        # (outside hosts, the host itself) keep their source, as LXD's forwards do.
        subnet = spec.ipv4.network
        lines.append(f'  ct status dnat ip saddr {subnet} oifname "{br}" masquerade')
    lines.append("}")
    dnat = [
        f"  ip daddr {r.listen} {r.protocol} dport {r.listen_port}"
        f" dnat ip to {r.target}:{r.target_port}"
        for r in spec.forwards
    ]
    lines += ["chain prerouting {", "  type nat hook prerouting priority -100; policy accept;"]
    lines += [*dnat, "}"]
    lines += ["chain output {", "  type nat hook output priority -100; policy accept;"]
    lines += [*dnat, "}"]
    body = "\n".join("  " + line for line in lines)
    table = table_name(spec.name)
    # Declaring it first makes the delete valid when the table does not exist yet.
    return (
        f"table inet {table} {{}}\ndelete table inet {table}\ntable inet {table} {{\n{body}\n}}\n"
    )


def apply(spec: BridgeSpec) -> None:
    _run(["-f", "-"], ruleset(spec))
    if spec.forwards or (spec.ipv4 is not None and spec.ipv4_nat):
        _sysctl("net/ipv4/ip_forward", "1")
    if spec.ipv6 is not None:
        _sysctl("net/ipv6/conf/all/forwarding", "1")


def remove(network: str) -> None:
    table = table_name(network)
    _run(["-f", "-"], f"table inet {table} {{}}\ndelete table inet {table}\n")


def present(network: str) -> bool:
    done = subprocess.run(
        [NFT, "list", "table", "inet", table_name(network)], capture_output=True, text=True
    )
    return done.returncode == 0


def _run(args: list[str], script: str) -> None:
    done = subprocess.run([NFT, *args], input=script, capture_output=True, text=True)
    if done.returncode != 0:
        raise DriverError(f"nft refused the rules: {done.stderr.strip()}")


def _sysctl(key: str, value: str) -> None:
    path = Path("/proc/sys") / key
    if path.read_text().strip() != value:
        path.write_text(value)
