"""Storage: pools and volumes on this node (drivers now; the service comes later)."""
