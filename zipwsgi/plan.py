"""The plan of an archive: every entry's offset and length, computed once.

Both the exact ``size`` and the writer read this one plan, so the announced length and
the bytes produced cannot drift apart (the bug class that hit other streaming zippers).
The plan is format-neutral: an :class:`ArchiveLayout` (zip today, tar later) says how
long each entry's header and footer are; the plan only adds them up.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from typing import Callable, Iterator, Optional, Protocol, Sequence, Tuple

from .sources import Source

STORED = "stored"
DEFLATE = "deflate"


class Entry:
    """One member of an archive: what it is called, where its bytes come from, how to pack them.

    ``crc_given`` is what the caller promised before streaming (it shapes the layout);
    ``crc_found`` is what a pass computed (it never changes the layout, only fills
    records that come after the data).
    """

    __slots__ = (
        "name",
        "is_dir",
        "source",
        "size",
        "mtime",
        "mode",
        "compression",
        "level",
        "crc_given",
        "crc_found",
        "crc_ahead",
        "layout",
    )

    def __init__(  # positional allowed: one is built per file, keywords cost time
        self,
        name: str,
        is_dir: bool,
        source: Optional[Source],
        size: Optional[int],
        mtime: int,
        mode: int,
        compression: str,
        level: Optional[int],
        crc_given: Optional[int],
        crc_ahead: bool = False,
    ) -> None:
        self.name = name
        self.is_dir = is_dir
        self.source = source
        self.size = size
        self.mtime = mtime
        self.mode = mode
        self.compression = compression
        self.level = level
        self.crc_given = crc_given
        self.crc_found: Optional[int] = None
        # True: the CRC is computed by reading the data once before its header is written,
        # so the entry needs no data descriptor (Java's ZipInputStream insists on that).
        self.crc_ahead = crc_ahead
        self.layout: object = None  # the format's per-entry facts, set by prepare()

    @property
    def crc(self) -> Optional[int]:
        return self.crc_given if self.crc_given is not None else self.crc_found

    @property
    def data_predictable(self) -> bool:
        """True when the stored bytes' length is known before streaming."""
        return self.is_dir or (self.compression == STORED and self.size is not None)

    def __repr__(self) -> str:
        return f"<Entry {self.name!r} size={self.size} {self.compression}>"


#: What a pass learned about one written entry, for its footer and the trailer:
#: ``(offset, crc, compressed_size, size)``. A plain tuple because one is made for every
#: entry of every pass.
EntryRecord = Tuple[int, int, int, int]


class ArchiveLayout(Protocol):
    """What a format must tell the plan and the writer. Pure: no I/O anywhere."""

    def prepare(self, entry: Entry) -> None:
        """Validate ``entry`` for this format and attach its per-entry facts."""

    def planned_sizes(self, entry: Entry, offset: int) -> tuple[int, int, int]:
        """(header, footer, trailer share) lengths of a predictable entry at ``offset``.

        One call per entry, because the plan asks it for every entry before the first
        byte leaves; the trailer share is what the entry adds to the trailer (a zip
        central record; nothing for tar).
        """

    def header(self, entry: Entry, offset: int) -> bytes: ...

    def footer(self, entry: Entry, crc: int, compressed_size: int, size: int) -> bytes: ...

    def footer_size(self, entry: Entry) -> int: ...

    def needs_crc_in_footer(self, entry: Entry) -> bool: ...

    def trailer(
        self, entries: Sequence[Entry], record_of: Callable[[int], EntryRecord], offset: int
    ) -> Iterator[bytes]: ...

    def trailer_size(self, count: int, offset: int, shares: int) -> int:
        """Length of the trailer starting at ``offset``, given the entries' summed shares."""


class Plan:
    """Offsets of every entry and of the trailer, as far as they can be known in advance.

    ``size`` is None as soon as one entry's stored length is unpredictable (deflate, or
    data of unknown size); ``offsets`` then stops at that entry.
    """

    __slots__ = ("entries", "offsets", "data_offsets", "trailer_offset", "size", "layout")

    def __init__(self, layout: ArchiveLayout, entries: Sequence[Entry]) -> None:
        self.layout = layout
        self.entries = entries
        # Arrays of 8-byte ints instead of lists of int objects: 16 bytes per entry, not 80.
        offsets = array("q")
        data_offsets = array("q")
        planned_sizes = layout.planned_sizes
        pos = shares = 0
        sized = True
        for entry in entries:
            if not entry.data_predictable:
                sized = False
                break
            offsets.append(pos)
            header, footer, share = planned_sizes(entry, pos)
            pos += header
            data_offsets.append(pos)
            pos += (0 if entry.is_dir else entry.size) + footer  # type: ignore[operator]
            shares += share
        self.offsets = offsets
        self.data_offsets = data_offsets
        if sized:
            self.trailer_offset: Optional[int] = pos
            self.size: Optional[int] = pos + layout.trailer_size(len(entries), pos, shares)
        else:
            self.trailer_offset = None
            self.size = None

    def entry_at(self, pos: int) -> int:
        """Index of the entry whose header, data or footer holds byte ``pos``."""
        return max(0, bisect_right(self.offsets, pos) - 1)
