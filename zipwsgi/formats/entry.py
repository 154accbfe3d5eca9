"""What every archive format is given and must answer: the format-neutral seam.

An :class:`Entry` is a member described by plain values (name, size, mtime, mode, how
to pack it); its ``source`` is opaque here. An :class:`ArchiveLayout` turns entries into
bytes and lengths without any I/O, so the plan can ask "how long?" and the writer "what
bytes?" of the same code. Zip and tar are two layouts; nothing in this package imports
from the engine or the HTTP layer (a test enforces it).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Optional, Protocol, Sequence, Tuple, Union

#: A deflate level as callers give it: None (the default), an int 0-9 or -1, or "fast".
Level = Union[int, str, None]

STORED = "stored"
DEFLATE = "deflate"

#: The largest entry any archive we write may hold: 2**62 bytes (4 EiB, more than any
#: file system stores). Offsets are signed 64-bit integers in the plan, in ``off_t`` and
#: in readers (Java's ``long``), so a whole archive must stay under 2**63 bytes; a bound
#: of half that leaves room for the records, and a size beyond it is a typo or an attack
#: (a manifest line of ``9223372036854775807``), refused before any byte.
MAX_ENTRY_SIZE = 2**62
#: The largest archive: its last offset must still be a signed 64-bit integer.
MAX_ARCHIVE_SIZE = 2**63 - 1


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
        source: Any,
        size: Optional[int],
        mtime: int,
        mode: int,
        compression: str,
        level: Level,
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
    """What a format must tell the plan, the writer and HTTP. Pure: no I/O anywhere.

    The class attributes are the whole of what the layers above may ask about a format:
    ``content_type`` and ``extension`` for HTTP answers and download names,
    ``needs_crc`` (False: the writer never computes a CRC-32, and a range never reads
    an entry it does not send), ``needs_sizes`` (True: every entry's size must be known
    before streaming, because the format writes it in the header, as tar does).
    """

    content_type: str
    extension: str
    needs_crc: bool
    needs_sizes: bool

    def prepare(self, entry: Entry) -> None:
        """Validate ``entry`` for this format and attach its per-entry facts."""

    def planned_sizes(self, entry: Entry, offset: int) -> tuple[int, int, int]:
        """(header, footer, trailer share) lengths of a predictable entry at ``offset``.

        One call per entry, because the plan asks it for every entry before the first
        byte leaves; the trailer share is what the entry adds to the trailer (a zip
        central record; nothing for tar).
        """

    def header(self, entry: Entry, offset: int) -> bytes: ...

    def records(self, entry: Entry, offset: int, crc: int) -> tuple[bytes, bytes]:
        """``(header(entry, offset), footer(entry, crc, size, size))`` of a stored file of
        known size whose CRC is now known: both in one call, for the writer's path for
        small files, where a call per record is a measurable share of the time."""


    def footer(self, entry: Entry, crc: int, compressed_size: int, size: int) -> bytes: ...

    def footer_size(self, entry: Entry) -> int: ...

    def trailer(
        self, entries: Sequence[Entry], record_of: Callable[[int], EntryRecord], offset: int
    ) -> Iterator[bytes]: ...

    def trailer_size(self, count: int, offset: int, shares: int) -> int:
        """Length of the trailer starting at ``offset``, given the entries' summed shares."""
