"""Runtime plumbing written once and shared by every service."""
