"""Sources of entry data: the protocol, and bytes, iterables, file objects, callables
(files on disk are in :mod:`zipwsgi.engine.files`).

A source is a recipe, not an open handle: nothing is opened until a stream reaches its
entry, each ``open()`` gives a fresh :class:`Reader`, and the stream closes that reader
before it opens the next one, so at most one file is open per pass and a disconnect
closes it at once.
"""

from __future__ import annotations

import io
import os
from typing import Any, Callable, Iterable, Iterator, Optional, Union

from zipwsgi.errors import SourceChangedError, SourceError, SourceUnavailableError

BytesLike = Union[bytes, bytearray, memoryview]


class Reader:
    """An open source. ``read`` returns at most ``n`` bytes and ``b""`` only at the end."""

    def read(self, n: int) -> bytes:
        raise NotImplementedError

    def skip(self, n: int) -> None:
        """Advance ``n`` bytes; readers that cannot seek read and discard."""
        while n > 0:
            chunk = self.read(min(n, 1 << 20))
            if not chunk:
                raise SourceChangedError("source ended before the requested offset")
            n -= len(chunk)

    def check_end(self) -> None:
        """Raise ``SourceChangedError`` if more data follows the promised size."""
        if self.read(1):
            raise SourceChangedError("source grew: more data than its declared size")

    def read_exact(self, n: int) -> bytes:
        """Exactly ``n`` bytes and then the end, or ``SourceChangedError``."""
        pieces = []
        remaining = n
        while remaining > 0:
            piece = self.read(remaining)
            if not piece:
                raise SourceChangedError(f"source shrank: {n} bytes promised, {n - remaining} read")
            pieces.append(piece)
            remaining -= len(piece)
        self.check_end()
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def close(self) -> None:
        pass


class Source:
    """Where an entry's bytes come from.

    ``size`` is the exact byte count when known before streaming (it makes the archive's
    length exact), ``mtime``/``mode`` are defaults the entry may take over, and
    ``reopenable`` says whether a second pass (or a range request) can read it again.
    """

    __slots__ = ()
    size: Optional[int] = None
    mtime: Optional[float] = None
    mode: Optional[int] = None
    reopenable: bool = True

    def __init__(self) -> None:
        pass

    def open(self) -> Reader:
        raise NotImplementedError

    def read_all(self, size: int) -> bytes:
        """Open, read exactly ``size`` bytes and the end, close: the whole of a small entry."""
        reader = self.open()
        try:
            return reader.read_exact(size)
        finally:
            reader.close()

    def close(self) -> None:
        """Release anything the source itself holds (not its readers)."""

    def describe(self) -> str:
        return type(self).__name__


# --- files on disk ---------------------------------------------------------------------


class BytesSource(Source):
    """Data already in memory; its size is exact and it can be read any number of times."""

    def __init__(self, data: BytesLike) -> None:
        super().__init__()
        self.data = memoryview(data).cast("B")
        self.size = len(self.data)

    def open(self) -> Reader:
        return _BytesReader(self.data)

    def describe(self) -> str:
        return f"<{self.size} bytes>"


class _BytesReader(Reader):
    __slots__ = ("data", "pos")

    def __init__(self, data: memoryview) -> None:
        self.data = data
        self.pos = 0

    def read(self, n: int) -> bytes:
        chunk = self.data[self.pos : self.pos + n]
        self.pos += len(chunk)
        return bytes(chunk)

    def skip(self, n: int) -> None:
        self.pos += n


# --- iterables of bytes ----------------------------------------------------------------


class IterableSource(Source):
    """An iterable of byte chunks.

    A re-iterable (a list, an object with ``__iter__`` returning fresh iterators) can be
    read again; a one-shot iterator or generator can be streamed exactly once, and a
    second pass over it raises instead of silently producing an empty entry.
    """

    def __init__(self, iterable: Iterable[BytesLike], size: Optional[int] = None) -> None:
        super().__init__()
        self.iterable = iterable
        self.size = size
        self.reopenable = not _is_iterator(iterable)
        self._used = False

    def open(self) -> Reader:
        if self._used and not self.reopenable:
            raise SourceError(
                "a one-shot iterator cannot be read twice; pass a callable that returns a "
                "fresh iterator if the archive is streamed more than once or ranged"
            )
        self._used = True
        return ChunkReader(iter(self.iterable))

    def close(self) -> None:
        _close_quietly(self.iterable)


def _is_iterator(obj: Any) -> bool:
    return hasattr(obj, "__next__")


class ChunkReader(Reader):
    """Re-chunks an iterator of arbitrary chunks into reads of at most ``n`` bytes.

    Subclasses that wrap another protocol (a WSGI body) override :meth:`next_chunk`.
    """

    __slots__ = ("it", "pending", "done")

    def __init__(self, it: Optional[Iterator[BytesLike]], pending: bytes = b"") -> None:
        self.it = it
        self.pending = pending
        self.done = False

    def next_chunk(self) -> Optional[bytes]:
        """The next chunk as bytes, or None at the end."""
        try:
            chunk = next(self.it)  # type: ignore[arg-type]
        except StopIteration:
            return None
        if isinstance(chunk, str):
            raise TypeError("iterable sources must yield bytes, not str")
        return bytes(chunk)

    def read(self, n: int) -> bytes:
        while not self.pending and not self.done:
            chunk = self.next_chunk()
            if chunk is None:
                self.done = True
                break
            self.pending = chunk
        if len(self.pending) <= n:
            out, self.pending = self.pending, b""
            return out
        out, self.pending = self.pending[:n], self.pending[n:]
        return out

    def close(self) -> None:
        _close_quietly(self.it)


# --- binary file objects ---------------------------------------------------------------


class FileObjectSource(Source):
    """An open binary file object, read from the position it had when added.

    Seekable objects can be re-read (ranges, repeated passes); others are one-shot.
    The object is closed when the stream is closed, since the caller handed it over.
    """

    def __init__(self, fileobj: Any, size: Optional[int] = None) -> None:
        super().__init__()
        self.fileobj = fileobj
        self.reopenable = _seekable(fileobj)
        self.start = fileobj.tell() if self.reopenable else 0
        if size is None and self.reopenable:
            try:
                size = os.fstat(fileobj.fileno()).st_size - self.start
            except (AttributeError, OSError, io.UnsupportedOperation):
                size = fileobj.seek(0, os.SEEK_END) - self.start
                fileobj.seek(self.start)
        self.size = size
        self._used = False

    def open(self) -> Reader:
        if self.reopenable:
            return _PositionedReader(self.fileobj, self.start)
        if self._used:
            raise SourceError("an unseekable file object cannot be read twice")
        self._used = True
        return _FileObjectReader(self.fileobj)

    def close(self) -> None:
        self.fileobj.close()

    def describe(self) -> str:
        return getattr(self.fileobj, "name", None) or repr(self.fileobj)


def _seekable(fileobj: Any) -> bool:
    try:
        return bool(fileobj.seekable())
    except (AttributeError, ValueError):
        return False


class _PositionedReader(Reader):
    """Reads a shared seekable file object from its own position.

    Two passes over one stream (a download and a range request, say) share the caller's
    file object; each seeks to its own position before reading, so neither moves the
    other's place.
    """

    __slots__ = ("fileobj", "pos")

    def __init__(self, fileobj: Any, start: int) -> None:
        self.fileobj = fileobj
        self.pos = start

    def read(self, n: int) -> bytes:
        self.fileobj.seek(self.pos)
        data: bytes = self.fileobj.read(n)
        self.pos += len(data)
        return data

    def skip(self, n: int) -> None:
        self.pos += n


class _FileObjectReader(Reader):
    __slots__ = ("fileobj",)

    def __init__(self, fileobj: Any) -> None:
        self.fileobj = fileobj

    def read(self, n: int) -> bytes:
        data: bytes = self.fileobj.read(n)
        return data

    def skip(self, n: int) -> None:
        if _seekable(self.fileobj):
            self.fileobj.seek(n, os.SEEK_CUR)
        else:
            Reader.skip(self, n)


# --- callables -------------------------------------------------------------------------


class CallableSource(Source):
    """A zero-argument callable returning bytes, str (written as UTF-8), a binary file
    object or an iterable of bytes.

    Called once per read, at the moment the stream reaches the entry, so a thousand
    entries never hold a thousand open handles; whatever it returns is closed after.
    """

    def __init__(self, opener: Callable[[], Any], size: Optional[int] = None) -> None:
        super().__init__()
        self.opener = opener
        self.size = size

    def open(self) -> Reader:
        try:
            opened = self.opener()
        except FileNotFoundError as exc:
            raise SourceUnavailableError(f"source not found: {exc}") from exc
        if isinstance(opened, str):
            opened = opened.encode("utf-8")
        if isinstance(opened, (bytes, bytearray, memoryview)):
            return _BytesReader(memoryview(opened).cast("B"))
        if hasattr(opened, "read"):
            return _OwnedFileObjectReader(opened)
        return ChunkReader(iter(opened))

    def describe(self) -> str:
        return getattr(self.opener, "__name__", repr(self.opener))


class _OwnedFileObjectReader(_FileObjectReader):
    def close(self) -> None:
        self.fileobj.close()


def _close_quietly(obj: Any) -> None:
    close = getattr(obj, "close", None)
    if close is not None:
        close()


def source_for(data: Any, size: Optional[int] = None) -> Source:
    """Pick the source class for whatever a caller passed to ``ZipStream.add``."""
    if isinstance(data, Source):
        return data
    if isinstance(data, str):
        data = data.encode("utf-8")
    if isinstance(data, (bytes, bytearray, memoryview)):
        source: Source = BytesSource(data)
    elif hasattr(data, "read"):
        source = FileObjectSource(data, size)
    elif callable(data):
        source = CallableSource(data, size)
    elif isinstance(data, Iterable):
        source = IterableSource(data, size)
    else:
        raise TypeError(f"cannot add {type(data).__name__}: expected bytes, str, a binary "
                        "file object, an iterable of bytes or a callable")
    if size is not None and source.size is not None and size != source.size:
        raise ValueError(f"size={size} given, but the data holds {source.size} bytes")
    return source
