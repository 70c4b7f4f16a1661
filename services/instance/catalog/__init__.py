"""Projects and profiles: pure aggregates, their projection, and the bus endpoints."""
