"""The lazy archive stream: a plain iterable of ``bytes``, exactly sized, rangeable.

:class:`ArchiveStream` is the format-neutral core that ``ZipStream`` and ``TarStream``
build on; iterating it (or a range of it) walks the
:class:`~zipwsgi.engine.plan.Plan` and pulls bytes from each entry's source only when the walk
gets there. Every iteration is an independent pass with its own ``close()``, so a WSGI
server can stream it, WebOb can range it, and a disconnect closes the one open file.
"""

from __future__ import annotations

import datetime
import os
from typing import Any, Iterator, Optional, Union

from zipwsgi.engine.chunks import Pass
from zipwsgi.engine.deferred import pending
from zipwsgi.engine.entries import ArchiveEntries
from zipwsgi.engine.options import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_MTIME,
    check_compression,
)
from zipwsgi.engine.plan import Plan
from zipwsgi.engine.sources import Source
from zipwsgi.engine.validator import fingerprint
from zipwsgi.engine.writer import Writer
from zipwsgi.errors import (
    UnknownLengthError,
)

PathLike = Union[str, "os.PathLike[str]"]

class _LengthWhenKnown:
    """A ``__len__`` that exists only while the archive's size is known (see ArchiveStream).

    Works on any object with a ``size`` (the python-zipstream compatible ``ZipFile`` uses
    it too)."""

    def __get__(self, stream: Any, owner: type = object) -> Any:
        if stream is None:
            return self
        size = stream.size
        if size is None:
            raise UnknownLengthError("archive size is unknown (compressed or unsized entries)")
        return lambda: size


class ArchiveStream(ArchiveEntries):
    """Format-neutral core: the entries (see :class:`ArchiveEntries`), the plan, passes.
    Subclasses pick a layout."""

    # -- what callers may ask before streaming --------------------------------------------

    @property
    def plan(self) -> Plan:
        if self._plan is None:
            self._plan = Plan(self._layout, self._entries)
        return self._plan

    @property
    def size(self) -> Optional[int]:
        """Exact length of the archive in bytes, or None where it cannot be known."""
        return self.plan.size

    # ``len()`` works when the size is known and raises TypeError when it is not, yet
    # ``hasattr(stream, "__len__")`` is False then: WSGI servers (waitress) call len() on
    # any body that has it, and would turn a deflate archive into a 500.
    __len__ = _LengthWhenKnown()

    @property
    def content_type(self) -> str:
        """The media type HTTP answers carry (the format's; a compressed tar overrides)."""
        return self._layout.content_type

    @property
    def extension(self) -> str:
        """The usual ending of a download name for this archive, e.g. ``".zip"``."""
        return self._layout.extension

    @property
    def names(self) -> list[str]:
        return [entry.name for entry in self._entries]

    @property
    def last_modified(self) -> Optional[int]:
        """Newest entry mtime in Unix seconds (for Last-Modified), or None for an empty
        archive. An int, so :func:`zipwsgi.http.responses.archive_response`, Django's
        ``http_date`` and werkzeug take it as it is; see :attr:`last_modified_datetime`."""
        if self._deferred and pending(self._entries):
            return None  # some mtimes are only known once streamed
        return max((e.mtime for e in self._entries), default=None)

    @property
    def last_modified_datetime(self) -> Optional[datetime.datetime]:
        """:attr:`last_modified` as an aware UTC ``datetime`` (what zipstream-ng's
        ``last_modified`` returns, naive and local there), ready for any framework's
        Last-Modified: an HTTP date is always GMT."""
        seconds = self.last_modified
        if seconds is None:
            return None
        return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)

    def fingerprint(self) -> Optional[str]:
        """A digest that changes whenever the archive's bytes could, or None if unknowable.

        Built from every entry's name, size, mtime, mode, method and given CRC; data that
        brings neither a size nor a CRC has no stable identity, so no honest fingerprint
        exists. What else goes in is the stream's ``validator``, an explicit choice:

        - ``"local"`` (default, safe): each file's path, mtime in nanoseconds and its
          identity on this host (device, inode, ctime). A file rewritten in place with
          the same size and mtime still changes the ctime, so the ETag changes and a
          resumed download (If-Range) starts over with a 200 instead of joining two
          versions. Replicas serving copies give different ETags, so a download resumed
          on another replica also starts over: correct, merely slower.
        - ``"portable"`` (replicas): names, sizes, mtimes in seconds and given CRCs only,
          the same on every host holding the same files. The risk, accepted by choosing
          it: a file rewritten with the same size within the same second (or its mtime
          restored) keeps the ETag, and a resume may join two versions, unless the
          manifest gives CRCs (then every whole entry is checked while streaming; a
          range holding only part of an entry is not).
        """
        if self._deferred and pending(self._entries):
            return None  # files not stat-ed yet: nothing says which version they are
        return fingerprint(self._layout, self._entries, self.validator, self.precompute_crc)

    # -- streaming --------------------------------------------------------------------------

    def __iter__(self) -> Iterator[bytes]:
        return self.app_iter_range(0, None)

    def app_iter_range(self, start: int = 0, stop: Optional[int] = None) -> Pass:
        """Bytes ``[start, stop)`` of the archive, lazily (WebOb's Range protocol).

        Nothing is opened until the result is iterated (WebOb calls this for HEAD too).
        For sized archives the walk starts at ``start``: files are seeked into, and the
        CRCs that records after ``start`` need are computed by reading just those entries.
        """
        size = self.size
        start = max(0, start or 0)
        if size is not None:
            stop = size if stop is None else max(start, min(stop, size))
        elif stop is not None:
            stop = max(start, stop)
        gen = Writer(self).generate(start, stop)
        iterator = Pass(gen)
        self._passes.add(iterator)
        return iterator

    def __bool__(self) -> bool:
        # An archive is never "falsy", even when its length is unknown (``len()`` would
        # raise): frameworks test ``if not body`` on what a view returns.
        return True

    def close_passes(self) -> None:
        """End every running pass (closing its open source) but keep the stream usable.

        For callers that peeked at an iteration they will not finish, as some frameworks
        do with the first chunk of a body.
        """
        for iterator in list(self._passes):
            iterator.close()

    def close(self) -> None:
        """Close every pass still running and every source handed over by the caller."""
        self.close_passes()
        # Only sources that hold something: most (files on disk) inherit Source.close,
        # which does nothing, and a call of it per entry cost ~1 ms per 10,000 entries.
        nothing = Source.close
        for entry in self._entries:
            source = entry.source
            if source is not None and type(source).close is not nothing:
                source.close()

    def __enter__(self) -> "ArchiveStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["ArchiveStream", "DEFAULT_CHUNK_SIZE", "DEFAULT_MTIME", "check_compression"]
