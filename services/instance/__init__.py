"""The instance service: instances (later), and the catalog of projects and profiles."""
