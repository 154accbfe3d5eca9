"""Sources of entry data: files, bytes, iterables, file objects, callables.

A source is a recipe, not an open handle: nothing is opened until a stream reaches its
entry, each ``open()`` gives a fresh :class:`Reader`, and the stream closes that reader
before it opens the next one, so at most one file is open per pass and a disconnect
closes it at once.
"""

from __future__ import annotations

import io
import os
import stat
from typing import Any, Callable, Iterable, Iterator, Optional, Union, cast

from zipwsgi.errors import SourceChangedError, SourceError, SourceUnavailableError

BytesLike = Union[bytes, bytearray, memoryview]
# Files are opened without following a final symlink: a link swapped in after planning
# (perhaps pointing outside the allowed roots) is refused rather than read.
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


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


class FileSource(Source):
    """A regular file, stat-ed when added so its size and mtime are known up front.

    On open the file is stat-ed again: a size or mtime that moved since planning means the
    archive already announced would be wrong, so we refuse rather than stream it.
    """

    __slots__ = ("path", "size", "_mtime_ns", "_identity")  # lean: one per file in an archive

    def __init__(
        self, path: Union[str, os.PathLike[str]], st: Optional[os.stat_result] = None
    ) -> None:
        self.path = os.fspath(path)
        if st is None:
            try:
                st = os.stat(self.path)
            except OSError as exc:
                raise SourceUnavailableError(f"cannot stat {self.path}: {exc.strerror}") from exc
        if not stat.S_ISREG(st.st_mode):
            raise SourceUnavailableError(f"not a regular file: {self.path}")
        self.size = st.st_size
        self._mtime_ns = st.st_mtime_ns
        self._identity = _identity(st)

    @property
    def identity(self) -> int:
        """Which file this is on this host, and which version of it: a hash of device,
        inode and ctime. An in-place rewrite that keeps size and mtime (``touch -r``,
        ``os.utime``) still changes the ctime, so validators built on it see the change;
        a copy on another host has another identity (see ``validator="portable"``)."""
        return self._identity

    @property
    def mtime(self) -> float:  # type: ignore[override]
        return self._mtime_ns / 1e9

    @property
    def mtime_ns(self) -> int:
        return self._mtime_ns

    def _open_checked(self) -> int:
        try:
            fd = os.open(self.path, os.O_RDONLY | _NOFOLLOW)
        except FileNotFoundError as exc:
            raise SourceChangedError(f"file vanished before streaming: {self.path}") from exc
        except OSError as exc:
            raise SourceUnavailableError(f"cannot open {self.path}: {exc.strerror}") from exc
        try:
            st = os.fstat(fd)
            if st.st_size != self.size or st.st_mtime_ns != self._mtime_ns:
                raise SourceChangedError(
                    f"file changed since the archive was planned: {self.path} "
                    f"(size {self.size} -> {st.st_size})"
                )
        except BaseException:
            os.close(fd)
            raise
        return fd

    def open(self) -> Reader:
        return _FileReader(self._open_checked(), self.path, cast(int, self.size))

    def read_all(self, size: int) -> bytes:
        # The small-file path, in one function: open, check, one read of size+1 bytes
        # (it fetches the data and proves nothing follows), close. For files of a few KiB
        # the Python around these four syscalls costs as much as the syscalls themselves.
        fd = self._open_checked()
        try:
            data = os.read(fd, size + 1)
            if len(data) == size:
                return data
            if len(data) > size:
                raise SourceChangedError(f"file grew while streaming: {self.path}")
            if not data:
                raise SourceChangedError(f"file shrank while streaming: {self.path}")
            return Reader.read_exact(_Prefixed(_FileReader(fd, self.path, size), data), size)
        finally:
            os.close(fd)

    def describe(self) -> str:
        return self.path


def _identity(st: os.stat_result) -> int:
    # One int per file rather than three (memory per entry is measured); tuple hashes of
    # ints are not randomised, so the same stat gives the same value in every process.
    return hash((st.st_dev, st.st_ino, st.st_ctime_ns))


class FolderFiles:
    """What the files found in one folder by a walk share: the folder's path (with a
    trailing separator) and how many leading characters of their archive names stand
    for it."""

    __slots__ = ("prefix", "cut")

    def __init__(self, prefix: str, cut: int) -> None:
        self.prefix = prefix
        self.cut = cut


class FolderFile(FileSource):
    """A file found by a folder walk, whose archive name ends with its file name.

    Its path is rebuilt from the folder's and the end of that name when needed, so it
    keeps no path string of its own: about 100 bytes less for each file of an archive,
    which is a fifth of the metadata of a file entry. (The ``path`` slot it inherits
    stays empty.)
    """

    __slots__ = ("folder", "name")

    def __init__(self, folder: FolderFiles, name: str, st: os.stat_result) -> None:
        self.folder = folder
        self.name = name
        self.size = st.st_size
        self._mtime_ns = st.st_mtime_ns
        self._identity = _identity(st)

    @property
    def path(self) -> str:
        return self.folder.prefix + self.name[self.folder.cut :]

    @path.setter
    def path(self, value: str) -> None:
        raise AttributeError("a walked file's path follows from its folder and name")


class _FileReader(Reader):
    __slots__ = ("fd", "path", "size")

    def __init__(self, fd: int, path: str, size: int) -> None:
        self.fd = fd
        self.path = path
        self.size = size

    def read(self, n: int) -> bytes:
        return os.read(self.fd, n)

    def skip(self, n: int) -> None:
        os.lseek(self.fd, n, os.SEEK_CUR)

    def check_end(self) -> None:
        # fstat instead of a read: one cheap syscall, and it also catches a rewrite
        # that grew the file behind our read position.
        if os.fstat(self.fd).st_size != self.size:
            raise SourceChangedError(f"file size changed while streaming: {self.path}")

    def read_exact(self, n: int) -> bytes:
        # One read of n+1 bytes both fetches the data and proves nothing follows it,
        # which saves a syscall per small file.
        data = os.read(self.fd, n + 1)
        if len(data) != n:
            if len(data) > n:
                raise SourceChangedError(f"file grew while streaming: {self.path}")
            if data:
                return Reader.read_exact(_Prefixed(self, data), n)
            raise SourceChangedError(f"file shrank while streaming: {self.path}")
        return data

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)


class _Prefixed(Reader):
    """A reader that first returns bytes already read (for short reads on odd files)."""

    def __init__(self, inner: Reader, head: bytes) -> None:
        self.inner = inner
        self.head = head

    def read(self, n: int) -> bytes:
        if self.head:
            out, self.head = self.head[:n], self.head[n:]
            return out
        return self.inner.read(n)


# --- in-memory data --------------------------------------------------------------------


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
