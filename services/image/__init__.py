"""The image service's library: the LXD image format (metadata, fingerprints, safe unpacking)
and the image builders.

Pure, synchronous modules (no bus yet): callers on the event loop run them in a thread.
"""
