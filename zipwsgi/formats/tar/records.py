"""The tar byte format (POSIX.1-2001 pax over ustar): blocks packed from plain values, no I/O.

Every function is pure, so the plan asks "how long?" and the writer "what bytes?" of the
same code. Field facts from POSIX ``pax``: a member is one 512-byte ustar header, then
its data padded to a multiple of 512; numbers are zero-padded octal ending in NUL; a name
is a 100-byte field plus a 155-byte prefix joined at a ``/``. What ustar cannot hold goes
into a pax extended header (typeflag ``x``) just before the member, as records
``"<length> <keyword>=<value>\\n"`` whose length counts the whole record, its own digits
included.
"""

from __future__ import annotations

import functools
import struct
from typing import Optional
from zlib import adler32 as _adler32

BLOCK = 512
#: GNU tar and Python's tarfile write archives in records of 20 blocks; so do we.
RECORD = 20 * BLOCK
#: The end of an archive: two zero blocks (one alone makes GNU tar warn).
END_OF_ARCHIVE = 2 * BLOCK

TYPE_FILE = b"0"
TYPE_DIRECTORY = b"5"
TYPE_PAX = b"x"

NAME_FIELD = 100
PREFIX_FIELD = 155
#: Sizes and mtimes are 11 octal digits: values from 0 up to (not including) 8 GiB.
OCTAL_11_LIMIT = 8**11

# name mode uid gid size mtime chksum typeflag linkname magic version uname gname
# devmajor devminor prefix (padding to 512)
_USTAR = struct.Struct("100s8s8s8s12s12s8sc100s6s2s32s32s8s8s155s12x")
_BLANK_CHECKSUM = b" " * 8
_ZERO_7 = b"0000000\0"
_MAGIC = b"ustar\0"
_VERSION = b"00"
#: Mode of the pax extended header itself (a pax-unaware reader extracts it as a file).
_PAX_MODE = 0o644


def padding(size: int) -> int:
    """Zero bytes that follow ``size`` bytes of data to end on a block boundary."""
    return -size % BLOCK


def end_size(offset: int) -> int:
    """Bytes of the end of an archive whose members end at ``offset``: two zero blocks,
    then zeros up to a whole record."""
    return END_OF_ARCHIVE + -(offset + END_OF_ARCHIVE) % RECORD


def split_name(raw: bytes) -> Optional[tuple[bytes, bytes]]:
    """``(prefix, name)`` holding ``raw`` in ustar's two fields, or None when it cannot.

    The prefix is cut at the first ``/`` that leaves at most 100 bytes for the name
    field, so the name field holds as much as it can.
    """
    if len(raw) <= NAME_FIELD:
        return b"", raw
    cut = raw.find(b"/", len(raw) - NAME_FIELD - 1)
    if 0 < cut <= PREFIX_FIELD and cut < len(raw) - 1:
        return raw[:cut], raw[cut + 1 :]
    return None


def ustar_header(
    name: bytes, prefix: bytes, mode: int, size: int, mtime: int, typeflag: bytes
) -> bytes:
    """One ustar header block: uid and gid 0, empty user and group names.

    ``size`` and ``mtime`` must fit 11 octal digits (callers put larger values in a
    pax header and pass 0 or a clamped value here, as GNU tar does).
    """
    mode_field, mtime_field, fixed = _mode_mtime_fields(mode, mtime)
    size_field = b"%011o\0" % size
    # The checksum is the sum of the header's bytes with its own field read as spaces:
    # added up from the fields here (one header is packed once, not summed over 512 bytes).
    checksum = fixed + _byte_sum(name, prefix, size_field) + typeflag[0]
    return _USTAR.pack(
        name,
        mode_field,
        _ZERO_7,
        _ZERO_7,
        size_field,
        mtime_field,
        b"%06o\0 " % checksum,
        typeflag,
        b"",
        _MAGIC,
        _VERSION,
        b"",
        b"",
        _ZERO_7,
        _ZERO_7,
        prefix,
    )


def _byte_sum(name: bytes, prefix: bytes, size_field: bytes) -> int:
    """The sum of the bytes of the three fields, in C where it can be exact.

    Adler-32's low half is 1 plus the sum of the bytes, modulo 65521: exact while that
    stays below 65521, so for up to 256 bytes (255 * 256 + 1 = 65281). Names and
    prefixes of up to 244 bytes (most) are summed so: ~0.3 µs less per header than
    ``sum()``, which makes an int per byte (a test compares the two).
    """
    if len(name) + len(prefix) <= 244:
        adler = _adler32(name)
        if prefix:
            adler = _adler32(prefix, adler)
        return (_adler32(size_field, adler) & 0xFFFF) - 1
    return sum(name) + sum(prefix) + sum(size_field)


#: The bytes every ustar header has in the same fields: uid, gid, the checksum read as
#: spaces, magic, version, device numbers.
_FIXED_SUM = sum(_ZERO_7) * 4 + sum(_BLANK_CHECKSUM) + sum(_MAGIC) + sum(_VERSION)


# Files written together share modes and, often, their second: one cached call instead
# of formatting and summing both fields for every member.
@functools.lru_cache(maxsize=1024)
def _mode_mtime_fields(mode: int, mtime: int) -> tuple[bytes, bytes, int]:
    """(mode field, mtime field, the checksum of both plus every fixed field)."""
    mode_field = b"%07o\0" % (mode & 0o7777)
    mtime_field = b"%011o\0" % mtime
    return mode_field, mtime_field, _FIXED_SUM + sum(mode_field) + sum(mtime_field)


def pax_record(keyword: bytes, value: bytes) -> bytes:
    """``b"<length> <keyword>=<value>\\n"``, the length counting its own digits.

    A fixed point: adding the digits can add a digit (a 98-byte body needs 2 digits for
    100, which is 3 digits, so the record is 101 bytes).
    """
    body = len(keyword) + len(value) + 3  # space, "=", newline
    length = body + len(str(body))
    while len(str(length)) + body != length:
        length = len(str(length)) + body
    return b"%d %s=%s\n" % (length, keyword, value)


def pax_block_size(records_size: int) -> int:
    """Length of a pax extended header (its ustar block and its padded records)."""
    return BLOCK + records_size + padding(records_size)


def pax_block(name: bytes, records: bytes, mtime: int) -> bytes:
    """A pax extended header: its ustar block (typeflag ``x``), the records, padding.

    ``name`` only matters to readers that do not know pax and extract the header as a
    file; ``mtime`` must fit 11 octal digits.
    """
    head = ustar_header(name[:NAME_FIELD], b"", _PAX_MODE, len(records), mtime, TYPE_PAX)
    return head + records + bytes(padding(len(records)))


__all__ = [
    "BLOCK",
    "END_OF_ARCHIVE",
    "OCTAL_11_LIMIT",
    "RECORD",
    "TYPE_DIRECTORY",
    "TYPE_FILE",
    "TYPE_PAX",
    "end_size",
    "padding",
    "pax_block",
    "pax_block_size",
    "pax_record",
    "split_name",
    "ustar_header",
]
