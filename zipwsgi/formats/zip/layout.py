"""How the zip format lays out entries: the :class:`ArchiveLayout` the plan and writer use.

Decisions that shape bytes live here, once: which entries need zip64 (only those whose
size demands it, in both of their headers), which need a data descriptor (only those whose
CRC or compressed size is unknown before their data), how names are encoded.
"""

from __future__ import annotations

import functools
import stat
from typing import Callable, Iterator, Optional, Sequence, cast

from zipwsgi.errors import ArchiveNameError
from zipwsgi.formats.entry import DEFLATE, Entry, EntryRecord
from zipwsgi.formats.zip import records as zf
from zipwsgi.formats.zip.charsets import check_charset, encode_name

DEFAULT_FILE_MODE = stat.S_IFREG | 0o644
DEFAULT_DIR_MODE = stat.S_IFDIR | 0o755

# Central records are yielded in batches of about this many bytes.
_TRAILER_BATCH = 64 * 1024


class ZipEntryFacts:
    """Per-entry facts fixed at planning time. One of these exists per entry, so it is
    kept small: derived values (the encoded name when plain UTF-8, DOS time, the timestamp
    field) are recomputed when written rather than stored."""

    __slots__ = ("bits", "name", "name_extra")

    def __init__(self, bits: int, name: Optional[bytes], name_extra: Optional[bytes]) -> None:
        self.bits = bits  # general-purpose flags | method << 16 | _ZIP64 | _DESCRIPTOR
        self.name = name  # only when not simply the UTF-8 encoding of entry.name
        self.name_extra = name_extra  # the Unicode Path field, for legacy charsets


_ZIP64 = 1 << 24
_DESCRIPTOR = 1 << 25
#: The bits of a stored file of known size, ASCII name and unknown CRC (most files).
_STORED_DESCRIPTOR = zf.FLAG_DATA_DESCRIPTOR | zf.METHOD_STORED << 16 | _DESCRIPTOR
# Record lengths of an entry with a plain UTF-8 name and no zip64, less the name.
_PLAIN_LOCAL = zf.local_header_size(b"", zf.EXT_TIMESTAMP_SIZE, False)
_PLAIN_CENTRAL = zf.central_header_size(b"", zf.EXT_TIMESTAMP_SIZE, 0)
_DESCRIPTOR_32_SIZE = zf.descriptor_size(False)
# records_central's constants, as module globals: one lookup each, not two.
_DESCRIPTOR_32 = zf._DESCRIPTOR_32.pack
_SHAPES = zf._SHAPES  # read directly: a dict lookup where the call is rarely needed
_SHAPED_NAME_LIMIT = zf.SHAPED_NAME_LIMIT
_time_fields = zf.time_fields
_LOCAL_SIG, _CENTRAL_SIG = zf.LOCAL_HEADER_SIG, zf.CENTRAL_HEADER_SIG
_DESCRIPTOR_SIG = zf.DATA_DESCRIPTOR_SIG
_MADE_BY, _VERSION, _TIMESTAMP_SIZE = zf.VERSION_MADE_BY, zf.VERSION_DEFAULT, zf.EXT_TIMESTAMP_SIZE
#: A file's external attributes by its mode (the few modes of an archive).
_FILE_ATTRS: dict[int, int] = {}


def _facts(entry: Entry) -> Optional[ZipEntryFacts]:
    """The entry's :class:`ZipEntryFacts`, or None when its layout is just the bits.

    Most entries need nothing but the bits (an int shared between entries); only names
    that are not plain UTF-8 carry a facts object. ``Entry.layout`` is opaque to the
    engine, so this is the one place that knows which of the two it holds.
    """
    layout = entry.layout
    return None if type(layout) is int else cast(ZipEntryFacts, layout)


def _bits(entry: Entry) -> int:
    facts = _facts(entry)
    return cast(int, entry.layout) if facts is None else facts.bits


def _name(entry: Entry) -> bytes:
    facts = _facts(entry)
    if facts is None or facts.name is None:
        return entry.name.encode("utf-8")
    return facts.name


def _shared_fields(entry: Entry) -> tuple[int, bytes, bytes, int, int]:
    """(bits, name, extra fields, DOS date, DOS time): what both headers of an entry share.

    Computed in one place because both headers are written for every entry: the common
    case (``layout`` a plain int) costs one cached call and one encode.
    """
    facts = _facts(entry)
    date, clock, extra = zf.time_fields(entry.mtime)
    if facts is None:
        return cast(int, entry.layout), entry.name.encode("utf-8"), extra, date, clock
    name = facts.name if facts.name is not None else entry.name.encode("utf-8")
    if facts.name_extra:
        extra += facts.name_extra
    return facts.bits, name, extra, date, clock


def _extra_size(entry: Entry) -> int:
    facts = _facts(entry)
    if facts is None or not facts.name_extra:
        return zf.EXT_TIMESTAMP_SIZE
    return zf.EXT_TIMESTAMP_SIZE + len(facts.name_extra)


@functools.lru_cache(maxsize=256)
def _external_attr(mode: int, is_dir: bool) -> int:
    """Unix mode in the high half (with the file type, which some callers omit)."""
    if stat.S_IFMT(mode) == 0:
        mode |= stat.S_IFDIR if is_dir else stat.S_IFREG
    return (mode & 0xFFFF) << 16 | (zf.MSDOS_DIRECTORY if is_dir else 0)


class ZipLayout:
    """The zip :class:`~zipwsgi.formats.entry.ArchiveLayout`.

    ``charset``: None writes UTF-8 names with the UTF-8 flag where a name is not ASCII;
    ``"native"`` writes UTF-8 bytes without the flag (mod_zip's ``X-Archive-Charset:
    native``); any other codec name writes the name in that charset (unencodable
    characters become ``_``) and keeps the real name in the Unicode Path extra field,
    which is what old Windows extractors in that locale need.

    ``comment``: the archive comment (bytes, see :func:`records.check_comment`), written
    after the end record and counted by :meth:`trailer_size`, so the size stays exact.
    """

    content_type = "application/zip"
    extension = ".zip"
    needs_crc = True
    needs_sizes = False

    def __init__(self, charset: Optional[str] = None, comment: bytes = b"") -> None:
        self.charset = check_charset(charset)
        self.comment = zf.check_comment(comment)

    # -- per entry ------------------------------------------------------------------------

    def prepare(self, entry: Entry) -> None:
        size = entry.size
        if (
            size is not None
            and size < zf.ZIP64_LIMIT
            and not entry.is_dir
            and entry.compression != DEFLATE
            and entry.name.isascii()
            and len(entry.name) <= 0xFFFF
        ):
            # Most files (one per walked file): stored, of known size, an ASCII name; the
            # bits the code below gives them, in one branch (~0.1 µs a file less).
            descriptor = entry.crc_given is None and not entry.crc_ahead
            entry.layout = _STORED_DESCRIPTOR if descriptor else 0
            return
        if entry.name.isascii():  # most names: their UTF-8 bytes are their characters
            name, flags, name_extra = None, 0, None
            name_length = len(entry.name)
        else:
            name, flags, name_extra = encode_name(entry.name, self.charset)
            name_length = len(name if name is not None else entry.name.encode("utf-8"))
        if name_length > 0xFFFF:
            raise ArchiveNameError(f"archive name too long for zip: {entry.name[:80]!r}...")
        deflated = entry.compression == DEFLATE and not entry.is_dir
        descriptor = not entry.is_dir and (
            deflated or entry.size is None or (entry.crc_given is None and not entry.crc_ahead)
        )
        zip64 = False
        if not entry.is_dir and entry.size is not None:
            worst = deflate_bound(entry.size) if deflated else entry.size
            zip64 = worst >= zf.ZIP64_LIMIT
        if descriptor:
            flags |= zf.FLAG_DATA_DESCRIPTOR
        method = zf.METHOD_DEFLATED if deflated else zf.METHOD_STORED
        bits = flags | method << 16 | (_ZIP64 if zip64 else 0) | (_DESCRIPTOR if descriptor else 0)
        if name is None and name_extra is None:
            entry.layout = bits
        else:
            entry.layout = ZipEntryFacts(bits, name, name_extra)

    def planned_sizes(self, entry: Entry, offset: int) -> tuple[int, int, int]:
        plain = entry.layout
        if type(plain) is int and not plain & _ZIP64 and offset < zf.ZIP64_LIMIT:
            # Most entries (asked once each before the first byte): a UTF-8 name, no
            # zip64 anywhere, the timestamp field alone; the same sums as below.
            text = entry.name
            length = len(text) if text.isascii() else len(text.encode("utf-8"))
            return (
                _PLAIN_LOCAL + length,
                _DESCRIPTOR_32_SIZE if plain & _DESCRIPTOR else 0,
                _PLAIN_CENTRAL + length,
            )
        bits = _bits(entry)
        zip64 = bool(bits & _ZIP64)
        name = _name(entry)
        extra_size = _extra_size(entry)
        size = 0 if entry.is_dir else entry.size
        header = zf.local_header_size(name, extra_size, zip64)
        footer = zf.descriptor_size(zip64) if bits & _DESCRIPTOR else 0
        fields = zf.central_zip64_fields(size, size, offset, zip64)  # type: ignore[arg-type]
        return header, footer, zf.central_header_size(name, extra_size, len(fields))

    def header(self, entry: Entry, offset: int) -> bytes:
        bits, name, extra, dos_date, dos_time = _shared_fields(entry)
        method = (bits >> 16) & 0xFF
        if entry.is_dir:
            crc = sizes = 0
        else:
            # Stored entries carry their sizes even with a descriptor: streaming readers
            # cannot otherwise find the end of stored data.
            size = entry.size
            sizes = size if (method == zf.METHOD_STORED and size is not None) else 0
            crc = 0 if bits & _DESCRIPTOR else entry.crc or 0
        return zf.local_header(
            name=name,
            flags=bits & 0xFFFF,
            method=method,
            dos_date=dos_date,
            dos_time=dos_time,
            crc=crc,
            compressed_size=sizes,
            size=sizes,
            extra=extra,
            zip64=bool(bits & _ZIP64),
        )

    def records(self, entry: Entry, offset: int, crc: int) -> tuple[bytes, bytes]:
        bits = entry.layout
        if type(bits) is not int or bits & _ZIP64:
            size = cast(int, entry.size)
            return self.header(entry, offset), self.footer(entry, crc, size, size)
        # Most entries, in one struct call each: the bytes header() and footer() give
        # (tests compare them), without their four helper calls per file.
        dos_date, dos_time, extra = zf.time_fields(entry.mtime)
        size = cast(int, entry.size)
        flags, method = bits & 0xFFFF, (bits >> 16) & 0xFF
        name = entry.name.encode()
        if bits & _DESCRIPTOR:
            header = zf.plain_local_header(name, flags, method, dos_date, dos_time, 0, size, extra)
            return header, zf.data_descriptor(crc, size, size, False)
        return zf.plain_local_header(name, flags, method, dos_date, dos_time, crc, size, extra), b""

    def records_central(
        self, entry: Entry, offset: int, crc: int, central: bytearray
    ) -> tuple[bytes, bytes]:
        """:meth:`records` of a stored file the pass writes whole, and its central record
        (:meth:`central_record`) appended to ``central``: the writer's small-file path.

        The central record is packed here, while the name, the time fields and the CRC
        are at hand, instead of in the trailer, which would fetch every one of them
        again; each plain record is one struct call (``records.plain_shapes``), its
        constants module globals. Measured: 0.74 µs for the three records, against
        0.58 µs for ``records`` plus 0.60 µs for ``central_record`` and ~0.3 µs for the
        trailer's ``record_of`` call. Tests compare the bytes with the general code's.
        """
        bits = entry.layout
        size: int = entry.size  # type: ignore[assignment]
        name = entry.name.encode()
        length = len(name)
        if (
            type(bits) is not int
            or bits & _ZIP64
            or offset >= zf.ZIP64_LIMIT
            or length > _SHAPED_NAME_LIMIT
        ):
            central += self.central_record(entry, (offset, crc, size, size))
            return self.records(entry, offset, crc)
        local, shape = _SHAPES.get(length) or zf.plain_shapes(length)
        dos_date, dos_time, extra = _time_fields(entry.mtime)
        flags, method = bits & 0xFFFF, (bits >> 16) & 0xFF
        mode = entry.mode
        attr = _FILE_ATTRS.get(mode)
        if attr is None:
            attr = _FILE_ATTRS[mode] = _external_attr(mode, False)
        central += shape.pack(
            _CENTRAL_SIG, _MADE_BY, _VERSION, flags, method, dos_time, dos_date, crc, size,
            size, length, _TIMESTAMP_SIZE, 0, 0, 0, attr, offset, name, extra,
        )
        if bits & _DESCRIPTOR:
            return (
                local.pack(
                    _LOCAL_SIG, _VERSION, flags, method, dos_time, dos_date, 0, size, size,
                    length, _TIMESTAMP_SIZE, name, extra,
                ),
                _DESCRIPTOR_32(_DESCRIPTOR_SIG, crc, size, size),
            )
        return (
            local.pack(
                _LOCAL_SIG, _VERSION, flags, method, dos_time, dos_date, crc, size, size,
                length, _TIMESTAMP_SIZE, name, extra,
            ),
            b"",
        )

    def footer_size(self, entry: Entry) -> int:
        bits = _bits(entry)
        return zf.descriptor_size(bool(bits & _ZIP64)) if bits & _DESCRIPTOR else 0

    def footer(self, entry: Entry, crc: int, compressed_size: int, size: int) -> bytes:
        bits = _bits(entry)
        if not bits & _DESCRIPTOR:
            return b""
        zip64 = bool(bits & _ZIP64)
        if not zip64 and max(size, compressed_size) >= zf.ZIP64_LIMIT:
            # Only reachable for data of unknown size: its header could not announce zip64.
            raise ValueError(
                f"{entry.name!r} grew past 4 GiB without a declared size; pass size= so "
                "zip64 can be planned"
            )
        return zf.data_descriptor(crc, compressed_size, size, zip64)

    # -- central directory ------------------------------------------------------------------

    def central_record(self, entry: Entry, record: EntryRecord) -> bytes:
        """The entry's record in the central directory, written with ``record``."""
        offset, crc, compressed_size, size = record
        plain = entry.layout
        limit = zf.ZIP64_LIMIT
        if (
            type(plain) is int
            and not plain & _ZIP64
            and offset < limit
            and size < limit
            and compressed_size < limit
        ):
            # Most entries, in one struct call: the bytes central_header() gives.
            dos_date, dos_time, extra = zf.time_fields(entry.mtime)
            return zf.plain_central_header(
                entry.name.encode(),
                plain & 0xFFFF,
                (plain >> 16) & 0xFF,
                dos_date,
                dos_time,
                crc,
                compressed_size,
                size,
                offset,
                _external_attr(entry.mode, entry.is_dir),
                extra,
            )
        bits, name, extra, dos_date, dos_time = _shared_fields(entry)
        return zf.central_header(
            name=name,
            flags=bits & 0xFFFF,
            method=(bits >> 16) & 0xFF,
            dos_date=dos_date,
            dos_time=dos_time,
            crc=crc,
            compressed_size=compressed_size,
            size=size,
            offset=offset,
            external_attr=_external_attr(entry.mode, entry.is_dir),
            extra=extra,
            entry_zip64=bool(bits & _ZIP64),
        )

    def trailer(
        self,
        entries: Sequence[Entry],
        record_of: Callable[[int], EntryRecord],
        offset: int,
        done: bytes | bytearray = b"",
        done_count: int = 0,
    ) -> Iterator[bytes]:
        """The central directory and the end records. ``done`` holds the central records
        of the first ``done_count`` entries, already packed by :meth:`records_central`
        during the pass (handed out in pieces, so it is never copied whole); the rest
        are packed here."""
        view = memoryview(done)
        for at in range(0, len(done), _TRAILER_BATCH):  # a copy of 64 KiB at a time
            yield bytes(view[at : at + _TRAILER_BATCH])
        batch: list[bytes] = []
        batch_size = 0
        cd_size = len(done)
        central = self.central_record
        for index in range(done_count, len(entries)):
            record = central(entries[index], record_of(index))
            batch.append(record)
            batch_size += len(record)
            if batch_size >= _TRAILER_BATCH:
                yield b"".join(batch)
                cd_size += batch_size
                batch, batch_size = [], 0
        cd_size += batch_size
        batch.append(zf.end_records(len(entries), offset, cd_size, self.comment))
        yield b"".join(batch)

    def trailer_size(self, count: int, offset: int, shares: int) -> int:
        return shares + zf.end_records_size(count, offset, shares, self.comment)


def deflate_bound(size: int) -> int:
    """An upper bound of the deflate data this package writes for ``size`` input bytes,
    whatever the level and library: it decides, before streaming, whether an entry needs
    zip64, so it must never be beaten.

    zlib's own formula (``size / 3000`` over) is not enough here: zlib-ng's level 1 codes
    incompressible bytes with static Huffman codes and never falls back to stored blocks,
    up to 9 bits a byte (12.5% more; zlib-ng's deflateBound says the same), and the
    parallel writer ends every block of at least 64 KiB with a sync flush (at most 6
    bytes). Being generous costs only a zip64 record on entries of 3.5-4 GiB.
    """
    return size + (size >> 3) + 6 * ((size >> 16) + 1) + 256
