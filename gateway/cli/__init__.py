"""The ``warren`` command line: Warren's own commands (what the ``lxc`` client cannot do)."""
