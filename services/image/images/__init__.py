"""The image service's objects: the ``image`` and ``image-alias`` aggregates, their read
model, and the bus handlers (CRUD, streamed upload and export)."""
