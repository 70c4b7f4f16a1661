"""Storage pools: the ``storage-pool`` aggregate (pure decide/evolve), its projection, the
host side (one driver object per pool, mounted at start), the bus handlers and the
``default`` pool made on first start like ``lxd init``.

Host effects and the log: a node's storage service is the only process touching its pools,
and LXD answers pool creation synchronously. So a handler validates (``decide``), performs
the host change under a ``Reverter`` and only then appends the event; if the append fails the
host change is undone, and a refused request changes nothing. A crash between the host change
and the append leaves a directory the log does not know: it is reported at the next start.
"""
