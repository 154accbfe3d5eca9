"""Files on disk as entry data, checked against what the plan announced.

A file is stat-ed when added (its size makes the archive's length exact) and again,
through the open descriptor, when the stream reaches it: a file that changed in between
would make the announced archive wrong, so it is refused rather than streamed.
"""

from __future__ import annotations

import os
import stat
from typing import Optional, Union, cast

from zipwsgi.engine.sources import Reader, Source
from zipwsgi.errors import SourceChangedError, SourceUnavailableError

__all__ = ["FileSource", "FolderFile", "FolderFiles", "open_folder"]

# Files are opened without following a final symlink: a link swapped in after planning
# (perhaps pointing outside the allowed roots) is refused rather than read.
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
# And never blocking: a FIFO swapped in after planning would hold the open until some
# writer came (on waitress's file path, its one I/O thread: every connection). Regular
# files ignore the flag; the identity check after the open refuses the FIFO.
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


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
            fd = os.open(self.path, _OPEN_FLAGS)
        except FileNotFoundError as exc:
            raise SourceChangedError(f"file vanished before streaming: {self.path}") from exc
        except OSError as exc:
            raise SourceUnavailableError(f"cannot open {self.path}: {exc.strerror}") from exc
        try:
            self._check(os.fstat(fd))
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _check(self, st: os.stat_result) -> None:
        if st.st_size != self.size or st.st_mtime_ns != self._mtime_ns:
            raise SourceChangedError(
                f"file changed since the archive was planned: {self.path} "
                f"(size {self.size} -> {st.st_size})"
            )
        # Size and mtime are easy to copy: a folder swapped for a link to another folder
        # holding a file of that size and mtime (O_NOFOLLOW guards the last step only),
        # or a file replaced by rename with its mtime kept (rsync -t), would pass them.
        # The identity (device, inode, ctime) is the file's own.
        if _identity(st) != self._identity:
            raise SourceChangedError(
                f"another file stands at {self.path} since the archive was planned")

    def open(self) -> Reader:
        return _FileReader(self._open_checked(), self.path, cast(int, self.size))

    def read_all(self, size: int) -> bytes:
        # The small-file path, in one function: open, check, one read of size+1 bytes
        # (it fetches the data and proves nothing follows), close. For files of a few KiB
        # the Python around these four syscalls costs as much as the syscalls themselves,
        # so _open_checked's work is inline here (the same open and the same check), and
        # the os functions and flags are module globals (one lookup each, not two).
        # FolderFile has the same body with its path built inline (no property call).
        return _read_all(self, self.path, size)

    def describe(self) -> str:
        return self.path


_OPEN_FLAGS = os.O_RDONLY | _NOFOLLOW | _NONBLOCK | getattr(os, "O_BINARY", 0)
_open, _fstat, _read, _close = os.open, os.fstat, os.read, os.close


def _read_all(source: FileSource, path: str, size: int) -> bytes:
    """:meth:`FileSource.read_all` of the file at ``path``."""
    try:
        fd = _open(path, _OPEN_FLAGS)
    except OSError:
        fd = source._open_checked()  # fails again, with its messages (or opens, checked)
    try:
        st = _fstat(fd)
        if (st.st_size != source.size or st.st_mtime_ns != source._mtime_ns
                or _identity(st) != source._identity):
            source._check(st)
        data = _read(fd, size + 1)
        if len(data) == size:
            return data
        if len(data) > size:
            raise SourceChangedError(f"file grew while streaming: {path}")
        if not data:
            raise SourceChangedError(f"file shrank while streaming: {path}")
        return Reader.read_exact(_Prefixed(_FileReader(fd, path, size), data), size)
    finally:
        _close(fd)


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
        # _identity(st), inline: one of these is made per walked file.
        self._identity = hash((st.st_dev, st.st_ino, st.st_ctime_ns))

    @property
    def path(self) -> str:
        return self.folder.prefix + self.name[self.folder.cut :]

    @path.setter
    def path(self, value: str) -> None:
        raise AttributeError("a walked file's path follows from its folder and name")

    def read_all(self, size: int, dir_fd: Optional[int] = None) -> bytes:
        """The whole file (:meth:`FileSource.read_all`); with ``dir_fd``, an open
        descriptor of its folder, it is opened relative to it."""
        # FileSource.read_all (_read_all) with the path property inline, in one frame:
        # two Python calls less per walked file (~0.1 µs). With the folder's descriptor
        # (the writer keeps one open while it reads a folder's files) the kernel resolves
        # one name instead of the whole path: ~0.2 µs less per file, measured on 10,000
        # files six folders deep. The same checks, in the same order; _read_all has the
        # rare cases (a failed open, a changed file, a short read) and their messages.
        folder = self.folder
        try:
            if dir_fd is None:
                fd = _open(folder.prefix + self.name[folder.cut :], _OPEN_FLAGS)
            else:
                fd = _open(self.name[folder.cut :], _OPEN_FLAGS, dir_fd=dir_fd)
        except OSError:
            return _read_all(self, self.path, size)  # fails again, with its messages
        try:
            st = _fstat(fd)
            if (st.st_size == size == self.size and st.st_mtime_ns == self._mtime_ns
                    and hash((st.st_dev, st.st_ino, st.st_ctime_ns)) == self._identity):
                data = _read(fd, size + 1)
                if len(data) == size:
                    return data
        finally:
            _close(fd)
        return _read_all(self, self.path, size)  # changed, or a short read: checked again


def open_folder(folder: FolderFiles) -> Optional[int]:
    """A descriptor of ``folder`` for :meth:`FolderFile.read_all`, or None if it cannot
    be opened (its files are then opened by their paths, and fail with their own
    messages)."""
    try:
        return _open(folder.prefix, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None


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
