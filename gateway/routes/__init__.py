"""One module per LXD resource family; each exposes ``routes`` and ``EXTENSIONS``."""
