"""A sized archive handed to waitress as a file, so its I/O thread sends it without copies.

Why this exists: waitress copies every chunk an app yields into a per-connection output
buffer (a ``BytesIO``, or a temporary file once past ``outbuf_overflow``) and sends from
there; profiled on a 512 MiB stored download, half of the server's time went into that
copy, and the app thread blocked on ``outbuf_high_watermark`` for the rest of it. A body
made with ``environ["wsgi.file_wrapper"]`` skips all of that: waitress keeps the object
as an output buffer and its I/O thread reads ``sendbuf_len`` bytes from it at a time,
right before each ``send``. :class:`ArchiveFile` is that file: a read-only, seekable
view of bytes ``[start, stop)`` of an archive, served from one running pass. Measured
(``benchmarks/bench_http.py``, waitress defaults, loopback): the server's CPU time per
512 MiB stored download fell from 0.63 s to 0.20 s, below waitress sending the raw file
(0.25-0.33 s: it reads 16 KiB per send, this file slices one 256 KiB read); nginx with
``sendfile`` needs 0.08-0.10 s.

What waitress does with it (``waitress/buffers.py`` ``ReadOnlyFileBasedBuffer``,
``waitress/channel.py`` ``_flush_some``): ``tell``, ``seek(0, 2)``, ``tell``,
``seek(start)`` once for the length; then for every send ``tell``, ``read(n)``,
``seek(back)`` (a peek), and ``seek(sent, 1)`` past what the socket took. So a read at
the position of the last chunk is served from that chunk, a read right after it takes
the pass's next chunk, and any other position (never seen from waitress) starts a new
pass there through the archive's range support.

When it is used (:func:`server_file`): only for waitress's own file wrapper (the copy it
saves was measured there; other servers keep the plain iterable), only for one whole
range of known length (200, or a 206 of a single range), and only when every entry
reads local files or memory. The I/O thread then reads the files, as it does for any
file waitress sends; data from the app (sub-requests, iterables, file objects) is
never read on it, since one slow source would stall every connection. To keep the
iterable anyway (files on a network mount that may hang), take ``wsgi.file_wrapper`` out
of the environ before it reaches zipwsgi.

Failures stay failures: an error while reading (a file changed, a CRC that does not
match) is logged, kept, and raised again on every later read, so waitress closes the
connection without ever ending the response cleanly. ``close`` (waitress calls it when
the response is done or the connection goes) ends the pass and closes the archive.
The first chunk is taken on the app's thread before the file is handed over
(:meth:`ArchiveFile.prime`), so a failure there is still a 500, as with the iterable.
"""

from __future__ import annotations

import io
import logging
from typing import Any, Iterable, Iterator, Mapping, Optional

from zipwsgi.engine.files import FileSource
from zipwsgi.engine.sources import BytesSource
from zipwsgi.http.wsgi import close_all, request_path

__all__ = ["ArchiveFile", "attach_closers", "reads_locally", "server_file", "waitress_file_wrapper"]

log = logging.getLogger("zipwsgi")

#: The read size a server's file wrapper iterates with when it does not peek (waitress
#: itself reads ``sendbuf_len`` bytes, whatever this says).
BLOCK_SIZE = 256 * 1024


class ArchiveFile(io.RawIOBase):
    """Bytes ``[start, stop)`` of a rangeable body as a read-only, seekable file.

    ``source.app_iter_range(start, stop)`` gives the bytes (an
    :class:`~zipwsgi.engine.stream.ArchiveStream` or any
    :class:`~zipwsgi.http.responses.RangedBody`); positions are relative to ``start``.
    ``closers`` are closed with it (the archive, the app's body); ``what`` names the
    request in the log line of a failure.
    """

    def __init__(self, source: Any, start: int, stop: int, closers: tuple[Any, ...] = (),
                 what: str = "archive") -> None:
        super().__init__()
        self._source = source
        self._start = start
        self._size = stop - start
        self.closers = closers
        self.what = what
        self._pos = 0
        self._pass: Optional[Iterable[bytes]] = None
        self._iterator: Optional[Iterator[bytes]] = None
        self._next = 0  # where the running pass goes on
        self._chunk = b""  # the last chunk taken from the pass...
        self._chunk_at = 0  # ...and its position
        self._failure: Optional[BaseException] = None

    # -- io.RawIOBase --------------------------------------------------------------------

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self._pos
        elif whence == io.SEEK_END:
            offset += self._size
        elif whence != io.SEEK_SET:
            raise ValueError(f"invalid whence {whence!r}")
        if offset < 0:
            raise ValueError("negative seek position")
        self._pos = offset
        return offset

    def read(self, size: Optional[int] = -1) -> bytes:
        """Up to ``size`` bytes at the position; fewer at the end of a chunk (a short read,
        as a socket or pipe gives), ``b""`` only at the end of the range."""
        pos = self._pos
        if size is None or size < 0:
            size = self._size - pos
        size = min(size, self._size - pos)
        if size <= 0:
            return b""
        chunk, offset = self._chunk, pos - self._chunk_at
        if not 0 <= offset < len(chunk):
            chunk = self._take(pos)
            offset = 0
        if offset == 0 and size >= len(chunk):
            data = chunk
        else:
            data = chunk[offset : offset + size]
        self._pos = pos + len(data)
        return data

    def readinto(self, buffer: Any) -> int:  # io.RawIOBase's read() is built on it
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if self.closed:
            return
        opened, self._pass, self._iterator, self._chunk = self._pass, None, None, b""
        closers, self.closers = self.closers, ()
        try:
            close_all((opened, self._source, *closers))
        finally:
            super().close()

    # -- the pass ------------------------------------------------------------------------

    def prime(self) -> bool:
        """Take the first chunk now, on the app's thread; False (and nothing kept) if that
        fails. waitress sends the status line before it reads a file, so a failure here
        would cut a 200; the plain body fails before its first byte instead, a 500."""
        try:
            self._take(0, quiet=True)
        except Exception:  # noqa: BLE001 -- the plain body meets it again, and logs it
            self._drop_pass()
            # The archive now belongs to the plain body: closing this file (or collecting
            # it) must not close the archive too.
            self._source, self.closers = None, ()
            self.close()
            return False
        return True

    def _take(self, pos: int, quiet: bool = False) -> bytes:
        """The chunk that begins at ``pos``: the running pass's next one, or the first of a
        new pass started there."""
        if self._failure is not None:
            raise self._failure
        if self.closed:
            raise ValueError("read of a closed archive file")
        try:
            if self._iterator is None or pos != self._next:
                self._restart(pos)
            assert self._iterator is not None
            chunk = b""
            while not chunk:
                chunk = next(self._iterator)
        except StopIteration:
            self._failure = RuntimeError(
                f"the archive ended at byte {self._next} of {self._size} announced")
            if not quiet:
                log.error("%s: archive aborted after %d bytes: %s", self.what, pos,
                          self._failure)
            raise self._failure from None
        except Exception as exc:
            self._failure = exc
            if not quiet:
                log.error("%s: archive aborted after %d bytes: %s", self.what, pos, exc)
            raise
        self._chunk, self._chunk_at = chunk, pos
        self._next = pos + len(chunk)
        return chunk

    def _drop_pass(self) -> None:
        opened, self._pass, self._iterator = self._pass, None, None
        self._chunk = b""
        close_all((opened,))

    def _restart(self, pos: int) -> None:
        self._drop_pass()
        self._pass = self._source.app_iter_range(self._start + pos, self._start + self._size)
        self._iterator = iter(self._pass)
        self._next = pos


def waitress_file_wrapper(environ: Mapping[str, Any]) -> Any:
    """waitress's ``wsgi.file_wrapper`` (its ``ReadOnlyFileBasedBuffer``) when the request
    came through waitress, else None: only there is the copy it saves measured."""
    wrapper = environ.get("wsgi.file_wrapper")
    if (getattr(wrapper, "__module__", None) == "waitress.buffers"
            and getattr(wrapper, "__name__", None) == "ReadOnlyFileBasedBuffer"):
        return wrapper
    return None


def reads_locally(stream: Any) -> bool:
    """Whether every entry of ``stream`` reads a file on disk or bytes in memory (or is a
    folder): what a server's I/O thread may read without waiting on anyone."""
    entries = getattr(stream, "_entries", None)
    if entries is None:
        return False
    for entry in entries:
        source = entry.source
        if source is not None and not isinstance(source, (FileSource, BytesSource)):
            return False
    return True


def server_file(environ: Mapping[str, Any], source: Any, start: int, stop: int) -> Any:
    """Bytes ``[start, stop)`` of ``source`` as the server's file wrapper around an
    :class:`ArchiveFile`, or None where the server offers none worth using."""
    wrapper = waitress_file_wrapper(environ)
    if wrapper is None or stop <= start:
        return None
    what = f"{environ.get('REQUEST_METHOD', 'GET')} {request_path(environ)}"
    file = ArchiveFile(source, start, stop, what=what)
    if not file.prime():
        return None  # the plain body fails the same way, before its first byte
    return wrapper(file, BLOCK_SIZE)


def attach_closers(body: Any, closers: tuple[Any, ...], what: str) -> bool:
    """If ``body`` is a file wrapper :func:`server_file` made, have its file close
    ``closers`` too and name ``what`` in its log line, and say True."""
    inner = getattr(body, "file", None)
    if not isinstance(inner, ArchiveFile):
        return False
    inner.closers += closers
    inner.what = what
    return True
