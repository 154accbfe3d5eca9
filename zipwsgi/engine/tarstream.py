"""``TarStream``: a tar (or tar.gz) archive, streamed lazily, with ZipStream's API.

A plain tar is the friendliest format for an exact length: no CRC, every size in a
header, 512-byte blocks; every byte offset comes from the plan, so ``size`` is exact and
a range starts anywhere (a file is seeked into; no entry is read that the range does
not send). ``compression="gzip"`` pipes the same tar pass through one parallel gzip
member (:mod:`zipwsgi.engine.gzip`): its length is not knowable in advance, so ``size``
is None and a range is a forward slice of the compressed stream, as for a deflated zip.
"""

from __future__ import annotations

from typing import Any, Iterator, Optional

from zipwsgi.engine.chunks import Pass, forward_slice
from zipwsgi.engine.compression import Level, deflate_implementation
from zipwsgi.engine.options import DEFAULT_CHUNK_SIZE, Compression
from zipwsgi.engine.stream import ArchiveStream
from zipwsgi.engine.writer import Writer
from zipwsgi.formats.entry import STORED
from zipwsgi.formats.tar.layout import TarLayout

GZIP = "gzip"
_GZIP_CONTENT_TYPE = "application/gzip"
_GZIP_EXTENSION = ".tar.gz"


class TarStream(ArchiveStream):
    """A POSIX tar archive, streamed lazily; optionally one gzip member around it.

    ``compression`` is None (plain tar: exact ``size``, cheap ranges) or ``"gzip"``
    (``size`` None, ranges replay the stream); ``level`` the gzip level (0-9, default
    6, or ``"fast"``, as for ZipStream's deflate); ``workers`` how many threads
    compress (default: the CPUs available; the bytes are the same for any number).
    ``add``, ``add_path`` and ``mkdir`` take ZipStream's arguments; every file needs a
    known size (pass ``size=`` for iterables and callables), and ``crc=`` is accepted
    and ignored, as tar keeps no checksum of the data. See
    :class:`~zipwsgi.formats.tar.layout.TarLayout` for the bytes.
    """

    def __init__(
        self,
        compression: Optional[str] = None,
        level: Level = None,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        mtime: Optional[float] = None,
        allow_duplicates: bool = False,
        workers: Optional[int] = None,
    ) -> None:
        if compression not in (None, GZIP):
            raise ValueError(f"TarStream compression must be None or {GZIP!r}, not {compression!r}")
        if level is not None and compression is None:
            raise ValueError('level= applies to compression="gzip" only')
        super().__init__(
            TarLayout(),
            compression=STORED,  # what each entry holds: tar compresses the whole stream
            level=level,
            chunk_size=chunk_size,
            mtime=mtime,
            allow_duplicates=allow_duplicates,
            workers=workers,
        )
        #: None or "gzip": what surrounds the tar stream (``compression`` stays the
        #: per-entry method ArchiveStream gives entries, always stored for tar).
        self.stream_compression = compression

    def add(
        self,
        data: Any,
        arcname: str,
        *,
        size: Optional[int] = None,
        mtime: Optional[float] = None,
        mode: Optional[int] = None,
        crc: Optional[int] = None,
        compression: Optional[Compression] = None,
        level: Optional[int] = None,
    ) -> None:
        """Add one file entry (see ZipStream.add); ``crc`` is ignored."""
        super().add(
            data, arcname, size=size, mtime=mtime, mode=mode, compression=compression, level=level
        )

    # -- what callers may ask before streaming --------------------------------------------

    @property
    def gzip(self) -> bool:
        return self.stream_compression == GZIP

    @property
    def size(self) -> Optional[int]:
        """Exact length of a plain tar; None for tar.gz (compressed length is unknowable)."""
        return None if self.gzip else self.plan.size

    @property
    def content_type(self) -> str:
        return _GZIP_CONTENT_TYPE if self.gzip else self._layout.content_type

    @property
    def extension(self) -> str:
        return _GZIP_EXTENSION if self.gzip else self._layout.extension

    def fingerprint(self) -> Optional[str]:
        """As ArchiveStream's, plus what shapes the gzip bytes: the deflate library, its
        level and the block size (so a tar and its tar.gz never share an ETag)."""
        tar = super().fingerprint()
        if tar is None or not self.gzip:
            return tar
        import hashlib

        from zipwsgi.engine.deflate import BLOCK_SIZE

        engine = f"{GZIP}\0{deflate_implementation(self.level)}\0{BLOCK_SIZE}"
        return hashlib.sha256(f"{tar}\0{engine}".encode()).hexdigest()

    # -- streaming --------------------------------------------------------------------------

    def app_iter_range(self, start: int = 0, stop: Optional[int] = None) -> Pass:
        """Bytes ``[start, stop)``, lazily; for tar.gz, a forward slice of the stream."""
        if not self.gzip:
            return super().app_iter_range(start, stop)
        start = max(0, start or 0)
        if stop is not None:
            stop = max(start, stop)
        iterator = Pass(forward_slice(self._gzip_pass(), start, stop))
        self._passes.add(iterator)
        return iterator

    def _gzip_pass(self) -> Iterator[bytes]:
        from zipwsgi.engine.gzip import gzip_member

        tar = Writer(self).generate(0, None)
        return gzip_member(tar, self.level, self.workers)


__all__ = ["TarStream"]
