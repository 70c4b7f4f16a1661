"""Reading image files as streams: compression detection, strict tar iteration, squashfs check.

Tarballs are read once, front to back (``tarfile`` stream mode), through a
:class:`~services.common.imagefiles.fingerprint.HashingReader` so the fingerprint comes for
free. Python's ``tarfile`` silently treats a damaged or missing header after the first as the
end of the archive; :class:`StrictTarInfo` refuses that, so a truncated tarball is always an
error.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import lzma
import shutil
import subprocess
import tarfile
import threading
import zlib
from collections.abc import Iterator
from typing import BinaryIO, Literal

from schemas.errors import BadRequest
from services.common.imagefiles.fingerprint import CHUNK, HashingReader

Format = Literal["tar", "gzip", "xz", "bzip2", "zstd", "squashfs"]

_MAGIC: list[tuple[bytes, Format]] = [
    (b"\x1f\x8b", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"BZh", "bzip2"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"hsqs", "squashfs"),
]
_DECODE_ERRORS = (EOFError, OSError, lzma.LZMAError, zlib.error)


def sniff(head: bytes) -> Format:
    """The format of a file from its first 512 bytes."""
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return fmt
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    raise BadRequest("unsupported image file format (expected a tarball or squashfs)")


def sniff_file(path: str) -> Format:
    """The format of the file at ``path``."""
    with open(path, "rb") as f:
        return sniff(f.read(512))


class StrictTarInfo(tarfile.TarInfo):
    """A TarInfo whose header parsing treats a short or damaged header as corruption.

    ``tarfile`` stops quietly at such a header unless it is the first; raising an exception it
    does not catch makes truncation visible. A block of zeros (the real end) still ends it.
    """

    @classmethod
    def frombuf(cls, buf: bytes, encoding: str, errors: str) -> tarfile.TarInfo:
        if len(buf) != tarfile.BLOCKSIZE:
            raise BadRequest("corrupt or truncated archive: unexpected end of data")
        if buf.count(tarfile.NUL) == tarfile.BLOCKSIZE:
            return super().frombuf(buf, encoding, errors)  # raises EOFHeaderError: the end
        try:
            return super().frombuf(buf, encoding, errors)
        except tarfile.HeaderError as e:
            raise BadRequest(f"corrupt or truncated archive: {e}") from None


class _Guarded:
    """Turns decompression errors into BadRequest (``tarfile`` passes them through)."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw

    def read(self, n: int = -1) -> bytes:
        try:
            return self.raw.read(n)
        except _DECODE_ERRORS as e:
            raise BadRequest(f"corrupt or truncated archive: {e}") from None


def _pump(source: HashingReader, sink: BinaryIO) -> None:
    try:
        while chunk := source.read(CHUNK):
            sink.write(chunk)
    except (BrokenPipeError, ValueError):
        pass  # zstd stopped reading (gave up, or was killed); its exit status says why
    finally:
        with contextlib.suppress(BrokenPipeError):
            sink.close()


@contextlib.contextmanager
def _zstd(source: HashingReader) -> Iterator[BinaryIO]:
    zstd = shutil.which("zstd")
    if zstd is None:
        raise BadRequest("zstd-compressed images need the zstd command")
    proc = subprocess.Popen(
        [zstd, "-dcq"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert proc.stdin is not None and proc.stdout is not None
    feeder = threading.Thread(target=_pump, args=(source, proc.stdin), daemon=True)
    feeder.start()
    finished = False
    try:
        yield proc.stdout
        while proc.stdout.read(CHUNK):  # to the end, so zstd's exit status is final
            pass
        finished = True
    finally:
        proc.stdout.close()
        if not finished:
            proc.kill()
        proc.wait()
        feeder.join()
    if proc.returncode != 0:
        raise BadRequest("corrupt or truncated archive: zstd could not decompress it")


@contextlib.contextmanager
def decompressed(source: HashingReader, fmt: Format) -> Iterator[BinaryIO]:
    """The uncompressed tar stream of ``source`` (already sniffed as ``fmt``)."""
    if fmt == "tar":
        yield source  # type: ignore[misc]
    elif fmt == "gzip":
        with gzip.GzipFile(fileobj=source, mode="rb") as f:  # type: ignore[arg-type]
            yield f
    elif fmt == "xz":
        with lzma.LZMAFile(source) as f:  # type: ignore[arg-type]
            yield f
    elif fmt == "bzip2":
        with bz2.BZ2File(source) as f:  # type: ignore[arg-type]
            yield f
    elif fmt == "zstd":
        with _zstd(source) as f:
            yield f
    else:
        raise BadRequest(f"a {fmt} file is not a tarball")


def iter_tar(stream: BinaryIO) -> Iterator[tuple[tarfile.TarInfo, tarfile.TarFile]]:
    """Members of a tar stream in order, each with the open archive (to read its data).

    Member data must be read before the next member is requested (stream mode). Any damage
    surfaces as BadRequest.
    """
    guarded = _Guarded(stream)
    try:
        tar = tarfile.open(fileobj=guarded, mode="r|", tarinfo=StrictTarInfo)  # type: ignore[call-overload]
    except tarfile.TarError as e:
        raise BadRequest(f"corrupt or truncated archive: {e}") from None
    with tar:
        while True:
            try:
                member = tar.next()
            except tarfile.TarError as e:
                raise BadRequest(f"corrupt or truncated archive: {e}") from None
            if member is None:
                break
            # Stream mode keeps every TarInfo; an image may have a million members.
            tar.members.clear()
            yield member, tar
        # Decompress to the end so a damaged compressed trailer is noticed too.
        while guarded.read(CHUNK):
            pass


def read_member(tar: tarfile.TarFile, member: tarfile.TarInfo, limit: int) -> bytes:
    """The data of a (small) regular member, at most ``limit`` bytes."""
    if member.size > limit:
        raise BadRequest(f"archive member {member.name!r} is larger than {limit} bytes")
    f = tar.extractfile(member)
    data = f.read() if f is not None else b""
    if len(data) != member.size:
        raise BadRequest("corrupt or truncated archive: unexpected end of data")
    return data
