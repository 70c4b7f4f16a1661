"""LXD 5.0 REST shapes (see shared/reference/lxd-rest-api-5.0.yaml)."""
