"""The gateway: Warren's only HTTP surface, speaking the LXD 1.0 REST API on a unix socket.

It turns requests into commands and queries on the bus, shapes replies into LXD responses, and
serves ``/1.0/operations`` and ``/1.0/events`` from the event log. It holds no business rules
and never imports ``services``.
"""
