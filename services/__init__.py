"""Warren's services: each runs as its own process and talks to the others only over NATS."""
