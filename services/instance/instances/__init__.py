"""Instances: the aggregate, its projection, the node agent's handlers and host plumbing."""
