"""Files stat-ed only when the stream reaches them: the sizes a caller vouches for.

nginx mod_zip answers its first byte at once because it trusts the sizes in the manifest
and finds out a file is wrong only when it gets there. ``ZipMiddleware(verify_sizes=
"lazy")`` makes the same trade: the plan (and so the Content-Length) is built from the
given sizes alone, and each file is found, stat-ed and compared with its promised size
right before its header is written. A file that is missing, not a regular file, outside
its root or of another size then raises :class:`~zipwsgi.errors.SourceUnavailableError`
or :class:`~zipwsgi.errors.SourceChangedError` mid-stream, and the server cuts the
connection: the client sees a short download, never a complete-looking wrong archive.

What the stream only learns then is each file's mtime (the DOS time of both zip headers,
the tar header's mtime) and identity. :func:`settle` records them on the entry before
its header is written, and the writer settles every entry whose records a pass needs
(the central directory of a range that skips the entries), so the bytes are those an
eager archive of the same files has. Until every entry is settled the archive has no
fingerprint and no newest mtime: nothing honest to validate a resume (If-Range) with.
"""

from __future__ import annotations

import os
import stat
from typing import Optional, Protocol

from zipwsgi.engine.files import FileSource, _identity
from zipwsgi.engine.sources import Reader
from zipwsgi.errors import SourceChangedError, SourceUnavailableError
from zipwsgi.formats.entry import ArchiveLayout, Entry

__all__ = ["DeferredFile", "FileFinder", "pending", "settle"]


class FileFinder(Protocol):
    """Where a deferred file is: the confinement of the layer that knows the roots."""

    def find(self, key: str) -> tuple[str, Optional[os.stat_result]]:
        """The real path of ``key`` (checked inside its root) and, when finding it cost
        one, its ``lstat``; raises ``OSError`` (``OutsideRootError`` among them) if it
        may not be read."""


class DeferredFile(FileSource):
    """A file of promised ``size``, found and stat-ed by :meth:`settle` (or the first
    open) rather than when added. Once settled it is a :class:`FileSource`: each open
    re-checks size, mtime and identity through the descriptor (``O_NOFOLLOW``)."""

    __slots__ = ("finder", "key")

    def __init__(self, finder: FileFinder, key: str, size: int) -> None:
        self.finder = finder
        self.key: Optional[str] = key  # None once the entry has its settled values
        self.path = ""
        self.size = size
        self._mtime_ns: Optional[int] = None  # type: ignore[assignment]
        self._identity = 0

    @property
    def mtime(self) -> Optional[float]:  # type: ignore[override]
        return None if self._mtime_ns is None else self._mtime_ns / 1e9

    def settle(self) -> None:
        """Find and stat the file (once) and check it is a regular file of the promised
        size; raise ``SourceUnavailableError`` or ``SourceChangedError`` if not."""
        if self._mtime_ns is not None:
            return
        key = self.key or self.path
        try:
            path, st = self.finder.find(key)
            if st is None:  # reached through a link: the stat of what it leads to
                st = os.stat(path)
        except FileNotFoundError:
            raise SourceUnavailableError(f"no such file: {key}") from None
        except OSError as exc:
            raise SourceUnavailableError(f"cannot read {key}: {exc}") from None
        if not stat.S_ISREG(st.st_mode):
            raise SourceUnavailableError(f"not a regular file: {path}")
        if st.st_size != self.size:
            raise SourceChangedError(
                f"the manifest says {self.size} bytes, {path} has {st.st_size}"
            )
        self.path = path
        self._identity = _identity(st)
        self._mtime_ns = st.st_mtime_ns  # last: it says "settled"

    def open(self) -> Reader:
        self.settle()
        return super().open()

    def read_all(self, size: int) -> bytes:
        self.settle()
        return super().read_all(size)

    def describe(self) -> str:
        return self.path or self.key or ""


def settle(entry: Entry, layout: ArchiveLayout) -> None:
    """Give ``entry`` the facts of its deferred file (mtime), checking the file first.

    Called by the writer right before an entry's header, and for each record the
    central directory needs; does nothing for other entries or a second time. The
    layout is prepared again with the real mtime (tar writes a pax header for an mtime
    before 1970): if that changes a length the plan already announced, the file cannot
    be sent in this archive and ``SourceChangedError`` says so.
    """
    source = entry.source
    if type(source) is not DeferredFile or source.key is None:
        return
    try:
        source.settle()
    except (SourceUnavailableError, SourceChangedError) as exc:
        raise type(exc)(f"{entry.name!r}: {exc}") from exc
    mtime = int(source._mtime_ns / 1e9)  # type: ignore[operator]  # as FileSource.mtime gives
    if mtime != entry.mtime:
        planned = layout.planned_sizes(entry, 0)
        entry.mtime = mtime
        layout.prepare(entry)
        if layout.planned_sizes(entry, 0) != planned:
            raise SourceChangedError(
                f"{entry.name!r}: its mtime ({mtime}) needs a longer header than the one "
                "planned from the manifest; serve such files with verify_sizes='eager'"
            )
    source.key = None


def pending(entries: "list[Entry]") -> bool:
    """True while some entry's deferred file has not been settled yet."""
    return any(type(e.source) is DeferredFile and e.source.key is not None for e in entries)
