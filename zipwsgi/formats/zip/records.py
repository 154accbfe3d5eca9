"""The zip byte format (PKWARE APPNOTE 6.3): records packed from plain values, no I/O.

Every function here is pure, so the planner can ask "how long will this record be?" and
the writer can ask "what are its bytes?" of the same code; the archive length can then
never disagree with what is written.
"""

from __future__ import annotations

import functools
import struct
import time
import zlib

# Record signatures.
LOCAL_HEADER_SIG = 0x04034B50
DATA_DESCRIPTOR_SIG = 0x08074B50
CENTRAL_HEADER_SIG = 0x02014B50
ZIP64_END_SIG = 0x06064B50
ZIP64_LOCATOR_SIG = 0x07064B50
END_SIG = 0x06054B50

# Compression methods.
METHOD_STORED = 0
METHOD_DEFLATED = 8

# General-purpose flag bits.
FLAG_DATA_DESCRIPTOR = 1 << 3  # CRC and sizes follow the data
FLAG_UTF8 = 1 << 11  # name and comment are UTF-8

# "Version needed to extract": 2.0 for deflate and folders, 4.5 for zip64.
VERSION_DEFAULT = 20
VERSION_ZIP64 = 45
# "Version made by": host 3 (Unix) so readers honour the mode bits, spec version 6.3.
VERSION_MADE_BY = (3 << 8) | 63

# Beyond these a field overflows into the zip64 extra field. Tests lower them (monkeypatch)
# to exercise zip64 without writing 4 GiB; the placeholders below never change.
ZIP64_LIMIT = 0xFFFFFFFF
ZIP64_COUNT_LIMIT = 0xFFFF
# What an overflowed 32-bit or 16-bit field holds: "look in the zip64 record".
MAX32 = 0xFFFFFFFF
MAX16 = 0xFFFF

# Extra-field tags.
EXTRA_ZIP64 = 0x0001
EXTRA_EXT_TIMESTAMP = 0x5455
EXTRA_UNICODE_PATH = 0x7075

MSDOS_DIRECTORY = 0x10

_LOCAL = struct.Struct("<IHHHHHIIIHH")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_DESCRIPTOR_32 = struct.Struct("<IIII")
_DESCRIPTOR_64 = struct.Struct("<IIQQ")
_END = struct.Struct("<IHHHHIIH")
_ZIP64_END = struct.Struct("<IQHHIIQQQQ")
_ZIP64_LOCATOR = struct.Struct("<IIQI")
_EXT_TIMESTAMP = struct.Struct("<HHBl")
_EXTRA_HEAD = struct.Struct("<HH")

LOCAL_HEADER_SIZE = _LOCAL.size  # 30
CENTRAL_HEADER_SIZE = _CENTRAL.size  # 46
END_SIZE = _END.size  # 22
ZIP64_END_SIZE = _ZIP64_END.size  # 56
ZIP64_LOCATOR_SIZE = _ZIP64_LOCATOR.size  # 20
EXT_TIMESTAMP_SIZE = _EXT_TIMESTAMP.size  # 9

# DOS time covers 1980-01-01 .. 2107-12-31; the extended timestamp is a signed 32-bit field.
_DOS_MIN = 315532800  # 1980-01-01T00:00:00Z
_DOS_MAX = 4354819198  # 2107-12-31T23:59:58Z
_INT32_MAX = 2**31 - 1


def descriptor_size(zip64: bool) -> int:
    """Length of a signed data descriptor (every modern reader expects the signature)."""
    return _DESCRIPTOR_64.size if zip64 else _DESCRIPTOR_32.size


def clamp_unix_time(mtime: float) -> int:
    """Whole seconds that fit the signed 32-bit extended-timestamp field."""
    return max(0, min(int(mtime), _INT32_MAX))


def dos_datetime(mtime: float) -> tuple[int, int]:
    """(date, time) fields in UTC.

    UTC rather than local time keeps archives byte-identical across machines and time
    zones; readers that honour the extended timestamp show the right local time anyway.
    """
    t = time.gmtime(max(_DOS_MIN, min(int(mtime), _DOS_MAX)))
    date = ((t.tm_year - 1980) << 9) | (t.tm_mon << 5) | t.tm_mday
    clock = (t.tm_hour << 11) | (t.tm_min << 5) | (t.tm_sec // 2)
    return date, clock


def ext_timestamp_extra(mtime: int) -> bytes:
    """Info-ZIP extended timestamp (0x5455) carrying only the modification time."""
    return _EXT_TIMESTAMP.pack(EXTRA_EXT_TIMESTAMP, 5, 1, mtime)


# Files written together share their second, and every entry needs these fields twice
# (local and central header): one cached call instead of gmtime and packing each time.
@functools.lru_cache(maxsize=4096)
def time_fields(mtime: int) -> tuple[int, int, bytes]:
    """(DOS date, DOS time, extended-timestamp extra field) for an mtime in seconds.

    Both fields say the same instant: the one the 32-bit timestamp can hold.
    """
    seconds = clamp_unix_time(mtime)
    date, clock = dos_datetime(seconds)
    return date, clock, ext_timestamp_extra(seconds)


def zip64_extra(*values: int) -> bytes:
    """Zip64 extended information (0x0001) with the given 8-byte fields, in spec order."""
    return _EXTRA_HEAD.pack(EXTRA_ZIP64, 8 * len(values)) + struct.pack(
        f"<{len(values)}Q", *values
    )


def unicode_path_extra(header_name: bytes, utf8_name: bytes) -> bytes:
    """Info-ZIP Unicode Path (0x7075): the UTF-8 name beside a name in a legacy charset."""
    body = struct.pack("<BI", 1, zlib.crc32(header_name)) + utf8_name
    return _EXTRA_HEAD.pack(EXTRA_UNICODE_PATH, len(body)) + body


def local_header(
    *,
    name: bytes,
    flags: int,
    method: int,
    dos_date: int,
    dos_time: int,
    crc: int,
    compressed_size: int,
    size: int,
    extra: bytes,
    zip64: bool,
) -> bytes:
    """A local file header; with ``zip64`` the sizes live in the zip64 extra field."""
    if zip64:
        extra = zip64_extra(size, compressed_size) + extra
        compressed_size = size = MAX32
    return (
        _LOCAL.pack(
            LOCAL_HEADER_SIG,
            VERSION_ZIP64 if zip64 else VERSION_DEFAULT,
            flags,
            method,
            dos_time,
            dos_date,
            crc,
            compressed_size,
            size,
            len(name),
            len(extra),
        )
        + name
        + extra
    )


def plain_local_header(
    name: bytes, flags: int, method: int, dos_date: int, dos_time: int, crc: int, size: int,
    extra: bytes,
) -> bytes:
    """:func:`local_header` of an entry without zip64 whose two sizes are equal (stored,
    or both 0), positional: the same bytes, built for most entries of an archive at a
    fraction of the call's cost (the layout's fast path; a test compares the two)."""
    return (
        _LOCAL.pack(
            LOCAL_HEADER_SIG, VERSION_DEFAULT, flags, method, dos_time, dos_date, crc, size,
            size, len(name), len(extra),
        )
        + name
        + extra
    )


def local_header_size(name: bytes, extra_size: int, zip64: bool) -> int:
    return LOCAL_HEADER_SIZE + len(name) + extra_size + (20 if zip64 else 0)


def data_descriptor(crc: int, compressed_size: int, size: int, zip64: bool) -> bytes:
    if zip64:
        return _DESCRIPTOR_64.pack(DATA_DESCRIPTOR_SIG, crc, compressed_size, size)
    return _DESCRIPTOR_32.pack(DATA_DESCRIPTOR_SIG, crc, compressed_size, size)


def central_zip64_fields(
    size: int, compressed_size: int, offset: int, entry_zip64: bool
) -> tuple[int, ...]:
    """The 8-byte values the central record must move into its zip64 extra field.

    An entry whose local header is zip64 repeats both sizes here (readers such as macOS
    Archive Utility compare the two headers); otherwise only overflowing fields appear.
    """
    if not entry_zip64 and max(size, compressed_size, offset) < ZIP64_LIMIT:
        return ()  # the common case, answered without building a list
    fields: list[int] = []
    if entry_zip64 or size >= ZIP64_LIMIT:
        fields.append(size)
    if entry_zip64 or compressed_size >= ZIP64_LIMIT:
        fields.append(compressed_size)
    if offset >= ZIP64_LIMIT:
        fields.append(offset)
    return tuple(fields)


def central_header_size(name: bytes, extra_size: int, zip64_field_count: int) -> int:
    zip64_size = 4 + 8 * zip64_field_count if zip64_field_count else 0
    return CENTRAL_HEADER_SIZE + len(name) + extra_size + zip64_size


def central_header(
    *,
    name: bytes,
    flags: int,
    method: int,
    dos_date: int,
    dos_time: int,
    crc: int,
    compressed_size: int,
    size: int,
    offset: int,
    external_attr: int,
    extra: bytes,
    entry_zip64: bool,
) -> bytes:
    fields = central_zip64_fields(size, compressed_size, offset, entry_zip64)
    if fields:
        extra = zip64_extra(*fields) + extra
    needs_64 = entry_zip64 or bool(fields)
    return (
        _CENTRAL.pack(
            CENTRAL_HEADER_SIG,
            VERSION_MADE_BY,
            VERSION_ZIP64 if needs_64 else VERSION_DEFAULT,
            flags,
            method,
            dos_time,
            dos_date,
            crc,
            MAX32 if (entry_zip64 or compressed_size >= ZIP64_LIMIT) else compressed_size,
            MAX32 if (entry_zip64 or size >= ZIP64_LIMIT) else size,
            len(name),
            len(extra),
            0,  # comment length
            0,  # disk number start
            0,  # internal attributes
            external_attr,
            MAX32 if offset >= ZIP64_LIMIT else offset,
        )
        + name
        + extra
    )


def plain_central_header(
    name: bytes, flags: int, method: int, dos_date: int, dos_time: int, crc: int,
    compressed_size: int, size: int, offset: int, external_attr: int, extra: bytes,
) -> bytes:
    """:func:`central_header` of an entry without zip64 whose sizes and offset are all
    below ``ZIP64_LIMIT`` (the caller checks), positional: the same bytes, cheaper."""
    return (
        _CENTRAL.pack(
            CENTRAL_HEADER_SIG, VERSION_MADE_BY, VERSION_DEFAULT, flags, method, dos_time,
            dos_date, crc, compressed_size, size, len(name), len(extra), 0, 0, 0,
            external_attr, offset,
        )
        + name
        + extra
    )


# The small-file path packs each plain record (no zip64, the timestamp field alone) with
# its name and extra field in one struct call, from a Struct made once per name length:
# no concatenations, no intermediate bytes (measured: 0.12 µs for a local header against
# 0.18 µs with `+ name + extra`; the layout's fast path, tests compare it with the above).
_SHAPES: dict[int, tuple[struct.Struct, struct.Struct]] = {}
#: Names up to this long get a Struct of their own (a few hundred bytes each); longer
#: ones are rare and take the general code.
SHAPED_NAME_LIMIT = 1024


def plain_shapes(name_length: int) -> tuple[struct.Struct, struct.Struct]:
    """(local header, central header) Structs of a plain record whose name is
    ``name_length`` bytes, followed by the 9-byte extended timestamp."""
    shapes = _SHAPES.get(name_length)
    if shapes is None:
        tail = f"{name_length}s{EXT_TIMESTAMP_SIZE}s"
        shapes = _SHAPES[name_length] = (
            struct.Struct(_LOCAL.format + tail),
            struct.Struct(_CENTRAL.format + tail),
        )
    return shapes


def needs_zip64_end(count: int, cd_offset: int, cd_size: int) -> bool:
    return count >= ZIP64_COUNT_LIMIT or cd_offset >= ZIP64_LIMIT or cd_size >= ZIP64_LIMIT


def end_records_size(count: int, cd_offset: int, cd_size: int, comment: bytes = b"") -> int:
    extra = ZIP64_END_SIZE + ZIP64_LOCATOR_SIZE if needs_zip64_end(count, cd_offset, cd_size) else 0
    return extra + END_SIZE + len(comment)


def check_comment(comment: bytes) -> bytes:
    """The archive comment as the end record can hold it: bytes, at most 65,535 of them
    (its length is a 16-bit field). Too long is refused, not truncated as zipfile and
    zipstream-ng do, so the caller learns that what they set is not what is written.
    A comment holding the end record's signature is refused too: readers find the end
    record by searching backwards for it (zipfile with ``rfind``), and would stop there."""
    if not isinstance(comment, (bytes, bytearray, memoryview)):
        raise TypeError(f"archive comment must be bytes, not {type(comment).__name__}")
    comment = bytes(comment)
    if len(comment) > MAX16:
        raise ValueError(f"archive comment is {len(comment)} bytes; zip allows {MAX16}")
    if struct.pack("<I", END_SIG) in comment:
        raise ValueError("archive comment contains the end record's signature (PK\\5\\6)")
    return comment


def end_records(count: int, cd_offset: int, cd_size: int, comment: bytes = b"") -> bytes:
    """[zip64 end record, zip64 locator,] end of central directory[, archive comment]."""
    out = b""
    if needs_zip64_end(count, cd_offset, cd_size):
        zip64_end_offset = cd_offset + cd_size
        out = _ZIP64_END.pack(
            ZIP64_END_SIG,
            ZIP64_END_SIZE - 12,  # size of the record after this field
            VERSION_MADE_BY,
            VERSION_ZIP64,
            0,
            0,
            count,
            count,
            cd_size,
            cd_offset,
        ) + _ZIP64_LOCATOR.pack(ZIP64_LOCATOR_SIG, 0, zip64_end_offset, 1)
    return out + _END.pack(
        END_SIG,
        0,
        0,
        MAX16 if count >= ZIP64_COUNT_LIMIT else count,
        MAX16 if count >= ZIP64_COUNT_LIMIT else count,
        MAX32 if cd_size >= ZIP64_LIMIT else cd_size,
        MAX32 if cd_offset >= ZIP64_LIMIT else cd_offset,
        len(comment),  # the archive comment follows the record
    ) + comment
