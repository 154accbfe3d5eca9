"""How the zip format lays out entries: the :class:`ArchiveLayout` the plan and writer use.

Decisions that shape bytes live here, once: which entries need zip64 (only those whose
size demands it, in both of their headers), which need a data descriptor (only those whose
CRC or compressed size is unknown before their data), how names are encoded.
"""

from __future__ import annotations

import stat
from typing import Callable, Iterator, Optional, Sequence

from . import zipformat as zf
from .codecs import deflate_bound
from .errors import ArchiveNameError
from .plan import DEFLATE, Entry, EntryRecord

DEFAULT_FILE_MODE = stat.S_IFREG | 0o644
DEFAULT_DIR_MODE = stat.S_IFDIR | 0o755

# Central records are yielded in batches of about this many bytes.
_TRAILER_BATCH = 64 * 1024


class ZipEntryFacts:
    """Per-entry facts fixed at planning time (kept small: one of these per entry)."""

    __slots__ = ("name", "flags", "method", "zip64", "descriptor", "extra", "dos_date", "dos_time")

    def __init__(
        self,
        name: bytes,
        flags: int,
        method: int,
        zip64: bool,
        descriptor: bool,
        extra: bytes,
        dos_date: int,
        dos_time: int,
    ) -> None:
        self.name = name
        self.flags = flags
        self.method = method
        self.zip64 = zip64
        self.descriptor = descriptor
        self.extra = extra
        self.dos_date = dos_date
        self.dos_time = dos_time


def _facts(entry: Entry) -> ZipEntryFacts:
    return entry.layout  # type: ignore[return-value]


class ZipLayout:
    """The zip :class:`~zipwsgi.plan.ArchiveLayout`.

    ``charset``: None writes UTF-8 names with the UTF-8 flag where a name is not ASCII;
    ``"native"`` writes UTF-8 bytes without the flag (mod_zip's ``X-Archive-Charset:
    native``); any other codec name writes the name in that charset (unencodable
    characters become ``_``) and keeps the real name in the Unicode Path extra field,
    which is what old Windows extractors in that locale need.
    """

    def __init__(self, charset: Optional[str] = None) -> None:
        self.charset = charset

    # -- naming ---------------------------------------------------------------------------

    def _encode_name(self, name: str) -> tuple[bytes, int, bytes]:
        utf8 = name.encode("utf-8")
        if self.charset is None:
            return utf8, (zf.FLAG_UTF8 if not name.isascii() else 0), b""
        if self.charset == "native" or name.isascii():
            return utf8, 0, b""
        legacy = "".join(_encode_char(ch, self.charset) for ch in name).encode(self.charset)
        return legacy, 0, zf.unicode_path_extra(legacy, utf8)

    # -- per entry ------------------------------------------------------------------------

    def prepare(self, entry: Entry) -> None:
        name, flags, name_extra = self._encode_name(entry.name)
        if len(name) > 0xFFFF:
            raise ArchiveNameError(f"archive name too long for zip: {entry.name[:80]!r}...")
        deflated = entry.compression == DEFLATE and not entry.is_dir
        descriptor = not entry.is_dir and (
            deflated or entry.size is None or entry.crc_given is None
        )
        zip64 = False
        if not entry.is_dir and entry.size is not None:
            worst = deflate_bound(entry.size) if deflated else entry.size
            zip64 = worst >= zf.ZIP64_LIMIT
        if descriptor:
            flags |= zf.FLAG_DATA_DESCRIPTOR
        mtime = zf.clamp_unix_time(entry.mtime)
        dos_date, dos_time = zf.dos_datetime(mtime)
        entry.layout = ZipEntryFacts(
            name=name,
            flags=flags,
            method=zf.METHOD_DEFLATED if deflated else zf.METHOD_STORED,
            zip64=zip64,
            descriptor=descriptor,
            extra=zf.ext_timestamp_extra(mtime) + name_extra,
            dos_date=dos_date,
            dos_time=dos_time,
        )

    def header_size(self, entry: Entry) -> int:
        facts = _facts(entry)
        return zf.local_header_size(facts.name, len(facts.extra), facts.zip64)

    def header(self, entry: Entry, offset: int) -> bytes:
        facts = _facts(entry)
        # Stored entries carry their sizes even with a descriptor: streaming readers
        # cannot otherwise find the end of stored data.
        known = 0 if entry.is_dir else entry.size
        sizes = known if (facts.method == zf.METHOD_STORED and known is not None) else 0
        return zf.local_header(
            name=facts.name,
            flags=facts.flags,
            method=facts.method,
            dos_date=facts.dos_date,
            dos_time=facts.dos_time,
            crc=0 if facts.descriptor or entry.is_dir else entry.crc_given or 0,
            compressed_size=sizes,
            size=sizes,
            extra=facts.extra,
            zip64=facts.zip64,
        )

    def needs_crc_in_footer(self, entry: Entry) -> bool:
        return _facts(entry).descriptor

    def footer_size(self, entry: Entry) -> int:
        facts = _facts(entry)
        return zf.descriptor_size(facts.zip64) if facts.descriptor else 0

    def footer(self, entry: Entry, record: EntryRecord) -> bytes:
        facts = _facts(entry)
        if not facts.descriptor:
            return b""
        if not facts.zip64 and max(record.size, record.compressed_size) >= zf.ZIP64_LIMIT:
            # Only reachable for data of unknown size: its header could not announce zip64.
            raise ValueError(
                f"{entry.name!r} grew past 4 GiB without a declared size; pass size= so "
                "zip64 can be planned"
            )
        return zf.data_descriptor(record.crc, record.compressed_size, record.size, facts.zip64)

    # -- central directory ------------------------------------------------------------------

    def _central(self, entry: Entry, record: EntryRecord) -> bytes:
        facts = _facts(entry)
        mode = entry.mode
        if stat.S_IFMT(mode) == 0:
            mode |= stat.S_IFDIR if entry.is_dir else stat.S_IFREG
        attr = (mode & 0xFFFF) << 16 | (zf.MSDOS_DIRECTORY if entry.is_dir else 0)
        return zf.central_header(
            name=facts.name,
            flags=facts.flags,
            method=facts.method,
            dos_date=facts.dos_date,
            dos_time=facts.dos_time,
            crc=record.crc,
            compressed_size=record.compressed_size,
            size=record.size,
            offset=record.offset,
            external_attr=attr,
            extra=facts.extra,
            entry_zip64=facts.zip64,
        )

    def _central_size(self, entry: Entry, record: EntryRecord) -> int:
        facts = _facts(entry)
        fields = zf.central_zip64_fields(
            record.size, record.compressed_size, record.offset, facts.zip64
        )
        return zf.central_header_size(facts.name, len(facts.extra), len(fields))

    def trailer(
        self,
        entries: Sequence[Entry],
        record_of: Callable[[int], EntryRecord],
        offset: int,
    ) -> Iterator[bytes]:
        batch: list[bytes] = []
        batch_size = 0
        cd_size = 0
        for index, entry in enumerate(entries):
            record = self._central(entry, record_of(index))
            batch.append(record)
            batch_size += len(record)
            if batch_size >= _TRAILER_BATCH:
                yield b"".join(batch)
                cd_size += batch_size
                batch, batch_size = [], 0
        cd_size += batch_size
        batch.append(zf.end_records(len(entries), offset, cd_size))
        yield b"".join(batch)

    def trailer_size(
        self,
        entries: Sequence[Entry],
        record_of: Callable[[int], EntryRecord],
        offset: int,
    ) -> int:
        cd_size = sum(self._central_size(e, record_of(i)) for i, e in enumerate(entries))
        return cd_size + zf.end_records_size(len(entries), offset, cd_size)


def _encode_char(ch: str, charset: str) -> str:
    try:
        ch.encode(charset)
    except UnicodeEncodeError:
        return "_"
    return ch
