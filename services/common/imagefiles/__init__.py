"""LXD image files: reading, checking and unpacking image tarballs (unified or split).

Shared by the image service (which validates uploads with ``tarball.inspect_image``) and the
storage service (which unpacks images into image volumes with ``tarball.unpack_image``); pure
file handling, no bus and no service state.
"""
