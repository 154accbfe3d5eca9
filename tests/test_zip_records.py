"""The zip records, one by one: packed from values, read back field by field with ``struct``
at the offsets PKWARE's APPNOTE (6.3.x, section 4.3) gives, never with the module's own
``Struct`` objects, so a field in the wrong place or of the wrong width fails here.

Zip64 is exercised by lowering ``ZIP64_LIMIT`` / ``ZIP64_COUNT_LIMIT`` with monkeypatch;
the placeholders (0xFFFFFFFF, 0xFFFF) that readers look for never change.
"""

from __future__ import annotations

import calendar
import io
import struct
import zipfile
import zlib

import pytest
from conftest import LOW_ZIP64_LIMIT
from hypothesis import given, settings
from hypothesis import strategies as st
from readers import split_extra

from zipwsgi.formats.zip import records as zf

MAX32 = 0xFFFFFFFF
MAX16 = 0xFFFF
LIMIT = LOW_ZIP64_LIMIT  # the lowered ZIP64_LIMIT of the low_limit fixture
COUNT_LIMIT = 10  # a lowered ZIP64_COUNT_LIMIT


@pytest.fixture
def low_limits(low_limit: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zf, "ZIP64_COUNT_LIMIT", COUNT_LIMIT)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))


def dos(year: int, month: int, day: int, hour: int, minute: int, second: int) -> tuple[int, int]:
    """(date, time) as APPNOTE 4.4.6 defines them, written out by hand."""
    return (year - 1980) * 512 + month * 32 + day, hour * 2048 + minute * 32 + second // 2


def local_fields(record: bytes) -> dict:
    """A local file header (APPNOTE 4.3.7) read at its documented offsets."""
    (sig,) = struct.unpack_from("<I", record, 0)
    version, flags, method, mtime, mdate = struct.unpack_from("<HHHHH", record, 4)
    crc, csize, size = struct.unpack_from("<III", record, 14)
    name_len, extra_len = struct.unpack_from("<HH", record, 26)
    assert len(record) == 30 + name_len + extra_len
    return {
        "sig": sig, "version": version, "flags": flags, "method": method, "time": mtime,
        "date": mdate, "crc": crc, "csize": csize, "size": size,
        "name": record[30 : 30 + name_len], "extra": split_extra(record[30 + name_len :]),
        "raw_extra": record[30 + name_len :],
    }


def central_fields(record: bytes) -> dict:
    """A central directory header (APPNOTE 4.3.12) read at its documented offsets."""
    (sig,) = struct.unpack_from("<I", record, 0)
    made_by, version, flags, method, mtime, mdate = struct.unpack_from("<HHHHHH", record, 4)
    crc, csize, size = struct.unpack_from("<III", record, 16)
    name_len, extra_len, comment_len, disk, internal = struct.unpack_from("<HHHHH", record, 28)
    external, offset = struct.unpack_from("<II", record, 38)
    assert len(record) == 46 + name_len + extra_len + comment_len
    return {
        "sig": sig, "made_by": made_by, "version": version, "flags": flags, "method": method,
        "time": mtime, "date": mdate, "crc": crc, "csize": csize, "size": size,
        "comment_len": comment_len, "disk": disk, "internal": internal, "external": external,
        "offset": offset, "name": record[46 : 46 + name_len],
        "extra": split_extra(record[46 + name_len : 46 + name_len + extra_len]),
        "raw_extra": record[46 + name_len : 46 + name_len + extra_len],
    }


def local(**overrides) -> bytes:
    values = dict(name=b"a.txt", flags=0, method=0, dos_date=0x5A21, dos_time=0x6000,
                  crc=0x12345678, compressed_size=5, size=5, extra=b"", zip64=False)
    values.update(overrides)
    return zf.local_header(**values)


def central(**overrides) -> bytes:
    values = dict(name=b"a.txt", flags=0, method=0, dos_date=0x5A21, dos_time=0x6000,
                  crc=0x12345678, compressed_size=5, size=5, offset=0,
                  external_attr=0o100644 << 16, extra=b"", entry_zip64=False)
    values.update(overrides)
    return zf.central_header(**values)


# --- local header ----------------------------------------------------------------------------


def test_local_header_fields() -> None:
    extra = zf.ext_timestamp_extra(1_700_000_000)
    got = local_fields(local(name="dir/é.txt".encode(), flags=zf.FLAG_UTF8, method=8,
                             compressed_size=3, size=7, extra=extra))
    assert got["sig"] == 0x04034B50
    assert got["version"] == 20
    assert got["flags"] == 1 << 11
    assert got["method"] == 8
    assert (got["date"], got["time"]) == (0x5A21, 0x6000)
    assert (got["crc"], got["csize"], got["size"]) == (0x12345678, 3, 7)
    assert got["name"] == "dir/é.txt".encode()
    assert got["raw_extra"] == extra


def test_local_header_zip64_moves_both_sizes_into_the_extra_field() -> None:
    """APPNOTE 4.5.3: a zip64 local header holds both sizes, original size first, and both
    32-bit fields say 0xFFFFFFFF; the zip64 field comes before the caller's extras."""
    timestamp = zf.ext_timestamp_extra(0)
    record = local(compressed_size=5_000_000_000, size=6_000_000_000, extra=timestamp, zip64=True)
    got = local_fields(record)
    assert got["version"] == 45
    assert (got["csize"], got["size"]) == (MAX32, MAX32)
    assert got["raw_extra"][:4] == struct.pack("<HH", 0x0001, 16)
    assert struct.unpack("<QQ", got["extra"][0x0001]) == (6_000_000_000, 5_000_000_000)
    assert got["raw_extra"][20:] == timestamp


def test_local_header_zip64_with_zero_sizes_for_a_descriptor() -> None:
    got = local_fields(local(crc=0, compressed_size=0, size=0, zip64=True,
                             flags=zf.FLAG_DATA_DESCRIPTOR))
    assert got["flags"] == 8 and got["crc"] == 0
    assert struct.unpack("<QQ", got["extra"][0x0001]) == (0, 0)


# --- central header --------------------------------------------------------------------------


def test_central_header_fields_without_zip64() -> None:
    got = central(name=b"x/y.bin", flags=8, method=8, crc=0xDEADBEEF, compressed_size=10,
                  size=20, offset=12345, external_attr=(0o100755 << 16))
    got = central_fields(got)
    assert got["sig"] == 0x02014B50
    assert got["made_by"] == (3 << 8) | 63  # Unix, spec 6.3
    assert got["version"] == 20
    assert (got["flags"], got["method"]) == (8, 8)
    assert (got["date"], got["time"]) == (0x5A21, 0x6000)
    assert (got["crc"], got["csize"], got["size"]) == (0xDEADBEEF, 10, 20)
    assert (got["comment_len"], got["disk"], got["internal"]) == (0, 0, 0)
    assert got["external"] == 0o100755 << 16
    assert got["offset"] == 12345
    assert got["name"] == b"x/y.bin"
    assert got["extra"] == {}


def test_central_header_keeps_the_callers_extra_fields() -> None:
    extra = zf.ext_timestamp_extra(86400)
    assert central_fields(central(extra=extra))["raw_extra"] == extra


def test_central_header_of_a_zip64_entry_repeats_both_sizes() -> None:
    """An entry whose local header is zip64 carries both sizes in its central zip64 field
    too, even when they are small (readers compare the two headers)."""
    got = central_fields(central(compressed_size=3, size=4, offset=99, entry_zip64=True))
    assert got["version"] == 45
    assert (got["csize"], got["size"], got["offset"]) == (MAX32, MAX32, 99)
    assert struct.unpack("<QQ", got["extra"][0x0001]) == (4, 3)


@pytest.mark.usefixtures("low_limits")
@pytest.mark.parametrize(
    ("size", "csize", "offset", "expected"),
    [
        (LIMIT - 1, LIMIT - 1, LIMIT - 1, ()),
        (LIMIT, 10, 0, (LIMIT,)),  # deflate shrank it: only the size overflows
        (10, LIMIT, 0, (LIMIT,)),
        (10, 10, LIMIT, (LIMIT,)),
        (LIMIT, LIMIT + 1, 0, (LIMIT, LIMIT + 1)),
        (LIMIT + 2, LIMIT + 1, LIMIT, (LIMIT + 2, LIMIT + 1, LIMIT)),
    ],
)
def test_central_header_moves_only_overflowing_fields(size, csize, offset, expected) -> None:
    got = central_fields(central(size=size, compressed_size=csize, offset=offset))
    # APPNOTE 4.5.3: the fields appear in the order size, compressed size, offset, and only
    # those whose 32-bit field holds 0xFFFFFFFF.
    assert got["size"] == (MAX32 if size >= LIMIT else size)
    assert got["csize"] == (MAX32 if csize >= LIMIT else csize)
    assert got["offset"] == (MAX32 if offset >= LIMIT else offset)
    if expected:
        body = got["extra"][0x0001]
        assert struct.unpack(f"<{len(body) // 8}Q", body) == expected
        assert got["version"] == 45
    else:
        assert 0x0001 not in got["extra"]
        assert got["version"] == 20


def test_central_zip64_fields_at_the_real_limit() -> None:
    assert zf.central_zip64_fields(MAX32 - 1, MAX32 - 1, MAX32 - 1, False) == ()
    # 0xFFFFFFFF itself is the placeholder, so a value equal to it must move too.
    assert zf.central_zip64_fields(MAX32, 0, 0, False) == (MAX32,)
    assert zf.central_zip64_fields(0, 0, MAX32, False) == (MAX32,)
    assert zf.central_zip64_fields(1, 2, 3, True) == (1, 2)


# --- data descriptor -------------------------------------------------------------------------


def test_data_descriptor_32() -> None:
    record = zf.data_descriptor(0xCAFEBABE, 7, 11, zip64=False)
    assert record == struct.pack("<I", 0x08074B50) + struct.pack("<III", 0xCAFEBABE, 7, 11)
    assert zf.descriptor_size(False) == 16


def test_data_descriptor_64() -> None:
    record = zf.data_descriptor(0xCAFEBABE, 5 << 32, 6 << 32, zip64=True)
    assert len(record) == zf.descriptor_size(True) == 24
    assert struct.unpack_from("<I", record, 0) == (0x08074B50,)
    assert struct.unpack_from("<I", record, 4) == (0xCAFEBABE,)
    assert struct.unpack_from("<QQ", record, 8) == (5 << 32, 6 << 32)


# --- end records -----------------------------------------------------------------------------


def eocd(record: bytes) -> tuple[int, ...]:
    """(sig, disk, cd disk, entries here, entries, cd size, cd offset, comment length)."""
    return struct.unpack_from("<IHHHHIIH", record, len(record) - 22)


def test_end_record_alone() -> None:
    record = zf.end_records(3, 1000, 150)
    assert len(record) == 22 == zf.end_records_size(3, 1000, 150)
    assert eocd(record) == (0x06054B50, 0, 0, 3, 3, 150, 1000, 0)


@pytest.mark.usefixtures("low_limits")
@pytest.mark.parametrize(
    ("count", "cd_offset", "cd_size"),
    [(COUNT_LIMIT, 100, 200), (2, LIMIT, 200), (2, 100, LIMIT), (COUNT_LIMIT + 5, LIMIT, LIMIT)],
)
def test_zip64_end_and_locator_when_a_value_overflows(count, cd_offset, cd_size) -> None:
    record = zf.end_records(count, cd_offset, cd_size)
    assert len(record) == 56 + 20 + 22 == zf.end_records_size(count, cd_offset, cd_size)
    # APPNOTE 4.3.14: zip64 end of central directory record.
    sig, rest_size, made_by, needed, disk, cd_disk, here, total, size, offset = struct.unpack(
        "<IQHHIIQQQQ", record[:56]
    )
    assert sig == 0x06064B50
    assert rest_size == 56 - 12  # "should not include the leading 12 bytes"
    assert made_by == (3 << 8) | 63 and needed == 45
    assert (disk, cd_disk) == (0, 0)
    assert (here, total, size, offset) == (count, count, cd_size, cd_offset)
    # APPNOTE 4.3.15: the locator points at the zip64 end record, which directly follows
    # the central directory.
    sig, disk, end_offset, disks = struct.unpack("<IIQI", record[56:76])
    assert sig == 0x07064B50
    assert (disk, end_offset, disks) == (0, cd_offset + cd_size, 1)
    # The classic record holds placeholders only where the value overflowed.
    _, _, _, here16, total16, size32, offset32, comment = eocd(record)
    assert here16 == total16 == (MAX16 if count >= COUNT_LIMIT else count)
    assert size32 == (MAX32 if cd_size >= LIMIT else cd_size)
    assert offset32 == (MAX32 if cd_offset >= LIMIT else cd_offset)
    assert comment == 0


@pytest.mark.usefixtures("low_limits")
def test_no_zip64_end_just_below_every_limit() -> None:
    assert not zf.needs_zip64_end(COUNT_LIMIT - 1, LIMIT - 1, LIMIT - 1)
    assert len(zf.end_records(COUNT_LIMIT - 1, LIMIT - 1, LIMIT - 1)) == 22


def test_real_count_limit_is_65535() -> None:
    """0xFFFF is the placeholder, so 65,535 entries already need the zip64 end record."""
    assert not zf.needs_zip64_end(65534, 0, 0)
    assert zf.needs_zip64_end(65535, 0, 0)
    assert eocd(zf.end_records(65535, 0, 0))[3] == MAX16


# --- extra fields ----------------------------------------------------------------------------


@pytest.mark.parametrize("mtime", [0, 1, 1_700_000_000, 2**31 - 1])
def test_extended_timestamp_field(mtime: int) -> None:
    field = zf.ext_timestamp_extra(mtime)
    assert len(field) == zf.EXT_TIMESTAMP_SIZE == 9
    tag, size, flags = struct.unpack_from("<HHB", field)
    assert (tag, size, flags) == (0x5455, 5, 1)  # bit 0: modification time present
    assert struct.unpack_from("<l", field, 5) == (mtime,)


def test_unicode_path_field() -> None:
    legacy = "Отчёт.txt".encode("cp1251")
    utf8 = "Отчёт.txt".encode()
    field = zf.unicode_path_extra(legacy, utf8)
    tag, size = struct.unpack_from("<HH", field)
    assert tag == 0x7075 and size == len(field) - 4
    version, name_crc = struct.unpack_from("<BI", field, 4)
    assert version == 1
    assert name_crc == zlib.crc32(legacy)  # the CRC of the header's name, not of the UTF-8
    assert field[9:] == utf8


def test_zip64_extra_field() -> None:
    assert zf.zip64_extra(1, 2 << 40) == struct.pack("<HHQQ", 1, 16, 1, 2 << 40)
    assert zf.zip64_extra(7) == struct.pack("<HHQ", 1, 8, 7)


# --- times -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mtime", "expected"),
    [
        (utc(1980, 1, 1), dos(1980, 1, 1, 0, 0, 0)),
        (utc(1979, 12, 31, 23, 59, 59), dos(1980, 1, 1, 0, 0, 0)),  # the 1980 floor
        (0, dos(1980, 1, 1, 0, 0, 0)),
        (-5_000_000, dos(1980, 1, 1, 0, 0, 0)),
        (utc(2024, 5, 1, 12, 34, 59), dos(2024, 5, 1, 12, 34, 58)),  # odd second rounds down
        (utc(2024, 5, 1, 12, 34, 57) + 0.99, dos(2024, 5, 1, 12, 34, 56)),
        (utc(2000, 2, 29, 23, 59, 58), dos(2000, 2, 29, 23, 59, 58)),
        (utc(2107, 12, 31, 23, 59, 58), dos(2107, 12, 31, 23, 59, 58)),
        (utc(2107, 12, 31, 23, 59, 59), dos(2107, 12, 31, 23, 59, 58)),
        (utc(2108, 1, 1), dos(2107, 12, 31, 23, 59, 58)),  # the 2107 ceiling
        (utc(3000, 6, 1), dos(2107, 12, 31, 23, 59, 58)),
    ],
)
def test_dos_datetime(mtime: float, expected: tuple[int, int]) -> None:
    assert zf.dos_datetime(mtime) == expected


def test_dos_datetime_is_utc_whatever_the_time_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    if not hasattr(time, "tzset"):
        pytest.skip("needs time.tzset")
    monkeypatch.setenv("TZ", "Pacific/Kiritimati")  # UTC+14
    time.tzset()
    try:
        assert zf.dos_datetime(utc(2024, 5, 1, 1, 2, 4)) == dos(2024, 5, 1, 1, 2, 4)
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize(
    ("mtime", "expected"),
    [
        (-1, 0), (-0.5, 0), (12.9, 12),
        (2**31 - 1, 2**31 - 1), (2**31, 2**31 - 1), (2**40, 2**31 - 1),
    ],
)
def test_clamp_unix_time(mtime: float, expected: int) -> None:
    assert zf.clamp_unix_time(mtime) == expected


def test_time_fields_say_one_instant() -> None:
    """Past 2038 the timestamp field is full; the DOS fields then say the same (clamped)
    instant rather than the real one, so two readers never disagree."""
    date, clock, extra = zf.time_fields(utc(2050, 1, 1))
    assert struct.unpack_from("<l", extra, 5) == (2**31 - 1,)
    assert (date, clock) == dos(2038, 1, 19, 3, 14, 7)
    date, clock, extra = zf.time_fields(utc(2024, 5, 1, 10, 0, 1))
    assert struct.unpack_from("<l", extra, 5) == (utc(2024, 5, 1, 10, 0, 1),)
    assert (date, clock) == dos(2024, 5, 1, 10, 0, 0)


# --- every *_size function agrees with the bytes ---------------------------------------------

sizes = st.integers(0, 2**64 - 1)
small = st.integers(0, MAX32 - 1)
names = st.binary(max_size=300)
# Well-formed extra fields of any length (an unknown tag that readers skip).
extras = st.one_of(st.just(b""), st.binary(max_size=200).map(
    lambda body: struct.pack("<HH", 0xCAFE, len(body)) + body
))


@settings(deadline=None, max_examples=200)
@given(names, extras, st.booleans(), small, small)
def test_local_header_size_matches(name, extra, zip64, csize, size) -> None:
    record = local(name=name, extra=extra, zip64=zip64, compressed_size=csize, size=size)
    assert zf.local_header_size(name, len(extra), zip64) == len(record)


@settings(deadline=None, max_examples=200)
@given(names, extras, st.booleans(), sizes, sizes, sizes)
def test_central_header_size_matches(name, extra, entry_zip64, csize, size, offset) -> None:
    record = central(name=name, extra=extra, entry_zip64=entry_zip64, compressed_size=csize,
                     size=size, offset=offset)
    count = len(zf.central_zip64_fields(size, csize, offset, entry_zip64))
    assert zf.central_header_size(name, len(extra), count) == len(record)
    body = central_fields(record)["extra"].get(0x0001, b"")
    assert len(body) == 8 * count


@settings(deadline=None)
@given(st.booleans(), st.integers(0, MAX32), sizes, sizes)
def test_descriptor_size_matches(zip64, crc, csize, size) -> None:
    if not zip64:
        csize, size = csize & MAX32, size & MAX32
    assert zf.descriptor_size(zip64) == len(zf.data_descriptor(crc, csize, size, zip64))


@settings(deadline=None, max_examples=200)
@given(st.integers(0, 2**40), sizes, sizes)
def test_end_records_size_matches(count, cd_offset, cd_size) -> None:
    cd_offset, cd_size = cd_offset >> 1, cd_size >> 1  # their sum is the locator's offset
    assert zf.end_records_size(count, cd_offset, cd_size) == len(
        zf.end_records(count, cd_offset, cd_size)
    )


# --- a hand-assembled archive, read by Python's zipfile --------------------------------------


def assemble(members: list[tuple[str, bytes, bool]], mtime: int) -> bytes:
    """An archive built from the records alone: (name, data, with descriptor) per member,
    stored; names other than ASCII get the UTF-8 flag."""
    out = io.BytesIO()
    directory = []
    date, clock, timestamp = zf.time_fields(mtime)
    for name, data, descriptor in members:
        raw = name.encode()
        flags = (zf.FLAG_UTF8 if not name.isascii() else 0) | (
            zf.FLAG_DATA_DESCRIPTOR if descriptor else 0
        )
        crc = zlib.crc32(data)
        size = len(data)
        zip64 = size >= zf.ZIP64_LIMIT
        offset = out.tell()
        out.write(zf.local_header(
            name=raw, flags=flags, method=zf.METHOD_STORED, dos_date=date, dos_time=clock,
            crc=0 if descriptor else crc, compressed_size=size, size=size, extra=timestamp,
            zip64=zip64,
        ))
        out.write(data)
        if descriptor:
            out.write(zf.data_descriptor(crc, size, size, zip64))
        directory.append(zf.central_header(
            name=raw, flags=flags, method=zf.METHOD_STORED, dos_date=date, dos_time=clock,
            crc=crc, compressed_size=size, size=size, offset=offset,
            external_attr=0o100640 << 16, extra=timestamp, entry_zip64=zip64,
        ))
    cd_offset = out.tell()
    cd = b"".join(directory)
    out.write(cd)
    out.write(zf.end_records(len(members), cd_offset, len(cd)))
    return out.getvalue()


def check_with_zipfile(archive: bytes, members: list[tuple[str, bytes, bool]]) -> None:
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        assert z.testzip() is None
        infos = z.infolist()
        assert [i.filename for i in infos] == [name for name, _, _ in members]
        for info, (name, data, descriptor) in zip(infos, members):
            assert z.read(info) == data
            assert info.date_time == (2024, 5, 1, 12, 34, 56)
            assert info.external_attr >> 16 == 0o100640
            assert bool(info.flag_bits & 0x08) == descriptor
            assert bool(info.flag_bits & 0x800) == (not name.isascii())


MEMBERS = [
    ("a.txt", b"alpha\n", False),
    ("empty", b"", False),
    ("café/menu.txt", b"espresso\n" * 200, True),
    ("Отчёт.bin", bytes(range(256)) * 8, True),
]


def test_hand_assembled_archive_reads_with_zipfile() -> None:
    check_with_zipfile(assemble(MEMBERS, utc(2024, 5, 1, 12, 34, 57)), MEMBERS)


@pytest.mark.usefixtures("low_limits")
def test_hand_assembled_zip64_archive_reads_with_zipfile() -> None:
    """Lowered limits: the last two members are zip64 (with a 64-bit descriptor), their
    offsets overflow, and the count needs the zip64 end record."""
    members = MEMBERS * 3  # 12 entries >= COUNT_LIMIT
    archive = assemble(members, utc(2024, 5, 1, 12, 34, 57))
    assert struct.pack("<I", 0x06064B50) in archive
    assert eocd(archive)[3] == MAX16
    check_with_zipfile(archive, members)


@settings(deadline=None, max_examples=200)
@given(
    name=st.binary(max_size=300),
    extra=st.binary(max_size=40),
    flags=st.integers(0, 0xFFFF),
    method=st.sampled_from([zf.METHOD_STORED, zf.METHOD_DEFLATED]),
    crc=st.integers(0, 0xFFFFFFFF),
    size=st.integers(0, zf.ZIP64_LIMIT - 1),
    compressed=st.integers(0, zf.ZIP64_LIMIT - 1),
    offset=st.integers(0, zf.ZIP64_LIMIT - 1),
    attr=st.integers(0, 0xFFFFFFFF),
)
def test_plain_records_are_the_general_records_without_zip64(
    name, extra, flags, method, crc, size, compressed, offset, attr
) -> None:
    """The positional fast path writes the bytes the keyword functions write."""
    assert zf.plain_local_header(name, flags, method, 0x5821, 0x6000, crc, size, extra) == (
        zf.local_header(
            name=name, flags=flags, method=method, dos_date=0x5821, dos_time=0x6000, crc=crc,
            compressed_size=size, size=size, extra=extra, zip64=False,
        )
    )
    assert zf.plain_central_header(
        name, flags, method, 0x5821, 0x6000, crc, compressed, size, offset, attr, extra
    ) == zf.central_header(
        name=name, flags=flags, method=method, dos_date=0x5821, dos_time=0x6000, crc=crc,
        compressed_size=compressed, size=size, offset=offset, external_attr=attr,
        extra=extra, entry_zip64=False,
    )
