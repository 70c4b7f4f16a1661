"""The network service (node-scoped): managed bridges with DHCP, DNS, NAT and forwards."""
