"""ZipLayout's decisions, read from the bytes it writes: which entries get a data
descriptor, which get zip64, how names are encoded, and that the sizes it plans are the
lengths of what it writes."""

from __future__ import annotations

import random
import stat
import struct
import zlib
from typing import Optional

import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from readers import split_extra

from zipwsgi.engine.compression import raw_deflater
from zipwsgi.errors import ArchiveNameError
from zipwsgi.formats.entry import DEFLATE, STORED, Entry
from zipwsgi.formats.zip import records as zf
from zipwsgi.formats.zip.layout import ZipLayout, deflate_bound

MTIME = 1_714_564_800  # 2024-05-01 12:00:00 UTC
FLAG_DESCRIPTOR = 1 << 3
FLAG_UTF8 = 1 << 11


def entry(
    name: str = "a.txt",
    size: Optional[int] = 10,
    *,
    is_dir: bool = False,
    compression: str = STORED,
    crc: Optional[int] = None,
    crc_ahead: bool = False,
    mode: int = 0o644,
) -> Entry:
    return Entry(name, is_dir, None, size, MTIME, mode, compression, None, crc, crc_ahead)


def prepared(layout: ZipLayout, e: Entry) -> Entry:
    layout.prepare(e)
    return e


def local_header(record: bytes) -> dict:
    flags, method = struct.unpack_from("<HH", record, 6)
    crc, csize, size, name_len, extra_len = struct.unpack_from("<IIIHH", record, 14)
    return {
        "version": struct.unpack_from("<H", record, 4)[0], "flags": flags, "method": method,
        "crc": crc, "csize": csize, "size": size, "name": record[30 : 30 + name_len],
        "extra": split_extra(record[30 + name_len : 30 + name_len + extra_len]),
    }


def central_record(layout: ZipLayout, e: Entry, record: tuple[int, int, int, int]) -> dict:
    """The central header the trailer writes for ``e`` alone."""
    data = b"".join(layout.trailer([e], lambda index: record, 0))
    name_len, extra_len = struct.unpack_from("<HH", data, 28)
    return {
        "flags": struct.unpack_from("<H", data, 8)[0],
        "external": struct.unpack_from("<I", data, 38)[0],
        "name": data[46 : 46 + name_len],
        "extra": split_extra(data[46 + name_len : 46 + name_len + extra_len]),
    }


# --- the format's answers --------------------------------------------------------------------


def test_what_the_format_tells_the_layers_above() -> None:
    layout = ZipLayout()
    assert layout.content_type == "application/zip"
    assert layout.extension == ".zip"
    assert layout.needs_crc is True  # CRC-32 in every entry's records
    assert layout.needs_sizes is False  # unknown sizes go in a data descriptor


# --- data descriptors ------------------------------------------------------------------------


def test_stored_with_known_crc_has_no_descriptor() -> None:
    layout = ZipLayout()
    e = prepared(layout, entry(size=10, crc=0xABCDEF01))
    got = local_header(layout.header(e, 0))
    assert not got["flags"] & FLAG_DESCRIPTOR
    assert (got["crc"], got["csize"], got["size"]) == (0xABCDEF01, 10, 10)
    assert layout.footer_size(e) == 0
    assert layout.footer(e, 0xABCDEF01, 10, 10) == b""
    assert layout.planned_sizes(e, 0)[1] == 0


def test_unknown_crc_needs_a_descriptor_but_the_header_keeps_the_sizes() -> None:
    """Stored data of known size: streaming readers need the sizes to find its end."""
    layout = ZipLayout()
    e = prepared(layout, entry(size=10, crc=None))
    got = local_header(layout.header(e, 0))
    assert got["flags"] & FLAG_DESCRIPTOR
    assert (got["crc"], got["csize"], got["size"]) == (0, 10, 10)
    assert layout.footer_size(e) == 16
    assert layout.footer(e, 0x11223344, 10, 10) == struct.pack(
        "<IIII", 0x08074B50, 0x11223344, 10, 10
    )


def test_crc_ahead_means_no_descriptor_and_the_crc_in_the_header() -> None:
    layout = ZipLayout()
    e = prepared(layout, entry(size=10, crc=None, crc_ahead=True))
    e.crc_found = 0x0BADF00D  # what the pass computed before writing the header
    got = local_header(layout.header(e, 0))
    assert not got["flags"] & FLAG_DESCRIPTOR
    assert got["crc"] == 0x0BADF00D
    assert layout.footer_size(e) == 0


@pytest.mark.parametrize("crc_ahead", [False, True])
def test_deflate_always_has_a_descriptor(crc_ahead: bool) -> None:
    """Its compressed size is unknown until the data is written, whatever the CRC."""
    layout = ZipLayout()
    e = prepared(layout, entry(size=10, crc=0x1234, compression=DEFLATE, crc_ahead=crc_ahead))
    got = local_header(layout.header(e, 0))
    assert got["flags"] & FLAG_DESCRIPTOR
    assert got["method"] == 8
    assert (got["crc"], got["csize"], got["size"]) == (0, 0, 0)
    assert layout.footer_size(e) == 16


def test_unknown_size_has_a_descriptor_and_no_sizes() -> None:
    layout = ZipLayout()
    e = prepared(layout, entry(size=None, crc=0x1234))
    got = local_header(layout.header(e, 0))
    assert got["flags"] & FLAG_DESCRIPTOR
    assert (got["crc"], got["csize"], got["size"]) == (0, 0, 0)


def test_unknown_size_growing_past_the_limit_is_refused(low_limit: int) -> None:
    """Its header could not announce zip64, so a 32-bit descriptor would lie."""
    layout = ZipLayout()
    e = prepared(layout, entry(size=None))
    assert layout.footer_size(e) == 16
    assert len(layout.footer(e, 1, low_limit - 1, low_limit - 1)) == 16
    with pytest.raises(ValueError, match="pass size="):
        layout.footer(e, 1, low_limit, low_limit)


def test_a_folder_has_no_descriptor_no_data_and_its_mode() -> None:
    layout = ZipLayout()
    e = prepared(layout, entry("photos/", size=None, is_dir=True, mode=0o750,
                               compression=DEFLATE))
    got = local_header(layout.header(e, 0))
    assert not got["flags"] & FLAG_DESCRIPTOR
    assert got["method"] == 0  # a folder is never deflated
    assert (got["crc"], got["csize"], got["size"]) == (0, 0, 0)
    assert layout.footer_size(e) == 0
    external = central_record(layout, e, (0, 0, 0, 0))["external"]
    assert external >> 16 == stat.S_IFDIR | 0o750  # the file type is added when missing
    assert external & 0x10  # MS-DOS directory bit


def test_file_mode_gets_its_file_type() -> None:
    layout = ZipLayout()
    e = prepared(layout, entry(size=1, crc=0, mode=0o600))
    assert central_record(layout, e, (0, 0, 1, 1))["external"] == (stat.S_IFREG | 0o600) << 16


# --- zip64 only where the size demands it ----------------------------------------------------


def test_stored_zip64_from_the_limit_on(low_limit: int) -> None:
    layout = ZipLayout()
    under = prepared(layout, entry(size=low_limit - 1, crc=0))
    at = prepared(layout, entry(size=low_limit, crc=0))
    assert local_header(layout.header(under, 0))["version"] == 20
    assert 0x0001 not in local_header(layout.header(under, 0))["extra"]
    got = local_header(layout.header(at, 0))
    assert got["version"] == 45
    assert (got["csize"], got["size"]) == (0xFFFFFFFF, 0xFFFFFFFF)
    assert struct.unpack("<QQ", got["extra"][0x0001]) == (low_limit, low_limit)


def test_deflate_zip64_decided_by_the_deflate_bound(low_limit: int) -> None:
    """Deflate can grow data: the entry is zip64 as soon as its worst case reaches the
    limit, even though its input is smaller."""
    threshold = next(size for size in range(low_limit) if deflate_bound(size) >= low_limit)
    layout = ZipLayout()
    below = prepared(layout, entry(size=threshold - 1, compression=DEFLATE))
    at = prepared(layout, entry(size=threshold, compression=DEFLATE))
    assert threshold < low_limit
    assert 0x0001 not in local_header(layout.header(below, 0))["extra"]
    assert layout.footer_size(below) == 16
    got = local_header(layout.header(at, 0))
    assert struct.unpack("<QQ", got["extra"][0x0001]) == (0, 0)  # sizes come later
    assert layout.footer_size(at) == 24  # a 64-bit descriptor
    assert len(layout.footer(at, 0, 5, threshold)) == 24


def test_offset_over_the_limit_is_zip64_only_in_the_central_record(low_limit: int) -> None:
    layout = ZipLayout()
    e = prepared(layout, entry(size=5, crc=0))
    assert 0x0001 not in local_header(layout.header(e, low_limit * 3))["extra"]
    extra = central_record(layout, e, (low_limit * 3, 0, 5, 5))["extra"]
    assert struct.unpack("<Q", extra[0x0001]) == (low_limit * 3,)


@settings(deadline=None, max_examples=100)
@given(st.integers(0, 1 << 17), st.sampled_from([0, 1, 6, 9, "fast"]), st.integers(0, 2**32))
def test_deflate_bound_is_never_beaten(size: int, level, seed: int) -> None:
    """Incompressible data through the compressor the writer uses, ended with the sync
    flush the parallel writer adds: never longer than the bound that decided zip64."""
    data = random.Random(seed).randbytes(size)
    compressor = raw_deflater(level)
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH) + compressor.flush()
    assert len(out) <= deflate_bound(size)


# --- names -----------------------------------------------------------------------------------


def test_default_charset_flags_only_non_ascii_names() -> None:
    layout = ZipLayout()
    plain = prepared(layout, entry("docs/a.txt", crc=0))
    accented = prepared(layout, entry("café/menu.txt", crc=0))
    assert not local_header(layout.header(plain, 0))["flags"] & FLAG_UTF8
    got = local_header(layout.header(accented, 0))
    assert got["flags"] & FLAG_UTF8
    assert got["name"] == "café/menu.txt".encode()
    assert 0x7075 not in got["extra"]
    assert central_record(layout, accented, (0, 0, 10, 10))["flags"] & FLAG_UTF8


def test_native_charset_writes_utf8_without_the_flag() -> None:
    layout = ZipLayout(charset="native")
    e = prepared(layout, entry("Отчёт.txt", crc=0))
    got = local_header(layout.header(e, 0))
    assert not got["flags"] & FLAG_UTF8
    assert got["name"] == "Отчёт.txt".encode()
    assert 0x7075 not in got["extra"]


def test_legacy_charset_writes_that_charset_and_a_unicode_path() -> None:
    layout = ZipLayout(charset="cp1251")
    e = prepared(layout, entry("Отчёт 日本.txt", crc=0))
    legacy = "Отчёт __.txt".encode("cp1251")  # what cp1251 cannot say becomes "_"
    for got in (local_header(layout.header(e, 0)), central_record(layout, e, (0, 0, 10, 10))):
        assert not got["flags"] & FLAG_UTF8
        assert got["name"] == legacy
        field = got["extra"][0x7075]
        assert field[0] == 1
        assert struct.unpack_from("<I", field, 1) == (zlib.crc32(legacy),)
        assert field[5:] == "Отчёт 日本.txt".encode()
        assert 0x5455 in got["extra"]  # the timestamp is kept beside it


def test_legacy_charset_leaves_ascii_names_alone() -> None:
    layout = ZipLayout(charset="cp437")
    got = local_header(layout.header(prepared(layout, entry("plain.txt", crc=0)), 0))
    assert got["name"] == b"plain.txt"
    assert got["flags"] & FLAG_UTF8 == 0
    assert 0x7075 not in got["extra"]


def test_undecodable_names_keep_their_raw_bytes() -> None:
    layout = ZipLayout()
    name = b"caf\xe9.txt".decode("utf-8", "surrogateescape")  # latin-1 bytes on disk
    got = local_header(layout.header(prepared(layout, entry(name, crc=0)), 0))
    assert got["name"] == b"caf\xe9.txt"
    assert not got["flags"] & FLAG_UTF8


def test_names_longer_than_the_field_are_refused() -> None:
    layout = ZipLayout()
    prepared(layout, entry("a" * 0xFFFF, crc=0))  # the longest a name can be
    with pytest.raises(ArchiveNameError):
        layout.prepare(entry("a" * 0x10000, crc=0))
    with pytest.raises(ArchiveNameError):
        layout.prepare(entry("é" * 0x8000, crc=0))  # 32,768 characters, 65,536 bytes


# --- planned sizes are the lengths of the bytes ----------------------------------------------

name_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1,
    max_size=40,
)


@settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=name_text,
    is_dir=st.booleans(),
    size=st.integers(0, 2**40),
    crc=st.one_of(st.none(), st.integers(0, 0xFFFFFFFF)),
    crc_ahead=st.booleans(),
    charset=st.sampled_from([None, "native", "cp1251", "cp437", "shift_jis"]),
    offset=st.integers(0, 2**40),
    cd_offset=st.integers(0, 2**40),
)
def test_planned_sizes_are_the_written_lengths(
    name, is_dir, size, crc, crc_ahead, charset, offset, cd_offset
) -> None:
    layout = ZipLayout(charset=charset)
    e = entry(name, None if is_dir else size, is_dir=is_dir, crc=crc, crc_ahead=crc_ahead)
    try:
        layout.prepare(e)
    except ArchiveNameError:
        reject()  # a name no entry may have (in this charset): not a question of sizes
    header, footer, share = layout.planned_sizes(e, offset)
    data_size = 0 if is_dir else size
    real_crc = crc if crc is not None else 0x5A5A5A5A
    assert header == len(layout.header(e, offset))
    assert footer == layout.footer_size(e) == len(layout.footer(e, real_crc, data_size, data_size))
    trailer = b"".join(
        layout.trailer([e], lambda index: (offset, real_crc, data_size, data_size), cd_offset)
    )
    assert layout.trailer_size(1, cd_offset, share) == len(trailer)
    assert share == len(trailer) - zf.end_records_size(1, cd_offset, share)


@settings(deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=name_text,
    size=st.integers(0, 2**40),
    crc=st.one_of(st.none(), st.integers(0, 0xFFFFFFFF)),
    crc_ahead=st.booleans(),
    charset=st.sampled_from([None, "native", "cp437"]),
    offset=st.integers(0, 2**40),
)
def test_records_are_the_header_and_the_footer(name, size, crc, crc_ahead, charset, offset) -> None:
    """The writer's one call for a small file gives the bytes of the two calls (its fast
    path for plain entries included)."""
    layout = ZipLayout(charset=charset)
    e = entry(name, size, crc=crc, crc_ahead=crc_ahead)
    try:
        layout.prepare(e)
    except ArchiveNameError:
        reject()
    real_crc = crc if crc is not None else 0x5A5A5A5A
    if crc is None and crc_ahead:
        e.crc_found = real_crc  # a crc_ahead header is written once the CRC is known
    assert layout.records(e, offset, real_crc) == (
        layout.header(e, offset),
        layout.footer(e, real_crc, size, size),
    )
