"""Image builders: standard LXD unified image tarballs made on this machine, without internet.

Run through ``python -m services.image.build`` (see :mod:`services.image.build`). The package
is not called ``build`` because the repository ignores every ``build/`` directory.
"""
