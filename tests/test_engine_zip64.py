"""ZIP64: switched on exactly where a size, an offset or the entry count needs it.

Fast tests lower the limits with monkeypatch (readers decide zip64 from the 0xFFFFFFFF /
0xFFFF placeholders, not from the values, so a lowered limit gives a real zip64 archive).
The ``slow`` tests build the real thing: a sparse file over 4 GiB, and 70,000 entries.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import tracemalloc
import zipfile
import zlib
from pathlib import Path
from typing import Iterable

import pytest
from conftest import LOW_ZIP64_LIMIT, write_chunks
from readers import (
    ENV,
    Directory,
    check_7z,
    check_all,
    check_unzip,
    need,
    parse_zip,
    read_descriptor,
)

from zipwsgi import ZipStream
from zipwsgi.formats.zip import records as zf
from zipwsgi.formats.zip.layout import deflate_bound

MAX32 = 0xFFFFFFFF
LIMIT = LOW_ZIP64_LIMIT  # the lowered ZIP64_LIMIT of the low_limit fixture
FLAG_DESCRIPTOR = 1 << 3


def assert_zip64_only_where_needed(
    path: Path, limit: int, count_limit: int, local_zip64: Iterable[str]
) -> Directory:
    """Both headers of each entry carry the zip64 extra exactly when needed, with exactly
    the fields needed; descriptors are 64-bit exactly for zip64 entries; the end records
    move to zip64 exactly when the count or the directory's size/offset needs it."""
    local_zip64 = set(local_zip64)
    directory = parse_zip(path)
    with open(path, "rb") as f:
        for h in directory.entries:
            name = h.name.decode()
            real_size = h.zip64_central[0] if name in local_zip64 else h.size
            real_csize = h.zip64_central[1] if name in local_zip64 else h.compressed_size
            # Local header: zip64 extra with both sizes iff the entry is zip64.
            if name in local_zip64:
                assert h.zip64_local is not None, f"{name}: no zip64 extra in local header"
                assert len(h.zip64_local) == 2, f"{name}: local zip64 must hold both sizes"
                assert h.local_size == h.local_compressed_size == MAX32
                assert h.local_version_needed >= 45
                if h.method == 0:  # stored: real sizes even with a descriptor
                    assert h.zip64_local == (real_size, real_csize)
                else:
                    assert h.zip64_local == (0, 0)
            else:
                assert h.zip64_local is None, f"{name}: zip64 extra in local header"
                assert MAX32 not in (h.local_size, h.local_compressed_size)
            # Central header: only the overflowing fields, in spec order.
            want: list[int] = []
            if name in local_zip64:
                want += [real_size, real_csize]
            if h.real_offset >= limit:
                want.append(h.real_offset)
            got = list(h.zip64_central or ())
            assert got == want, f"{name}: central zip64 fields {got}, want {want}"
            assert (h.size == MAX32) == (name in local_zip64)
            assert (h.compressed_size == MAX32) == (name in local_zip64)
            assert (h.offset == MAX32) == (h.real_offset >= limit), name
            if not want:
                assert 0x0001 not in h.central_extra
            # Descriptor: 24 bytes for zip64 entries, 16 otherwise; values match the CD.
            if h.flags & FLAG_DESCRIPTOR:
                sig, crc, csize, size = read_descriptor(
                    f, h.data_offset + real_csize, name in local_zip64
                )
                assert sig == 0x08074B50
                assert (crc, csize, size) == (h.crc, real_csize, real_size), name
            else:
                assert h.local_crc == h.crc
    needs_end64 = (
        directory.count >= count_limit or directory.cd_offset >= limit or directory.cd_size >= limit
    )
    assert directory.zip64_end == needs_end64
    assert (directory.eocd_count == 0xFFFF) == (directory.count >= count_limit)
    assert (directory.eocd_cd_offset == MAX32) == (directory.cd_offset >= limit)
    assert (directory.eocd_cd_size == MAX32) == (directory.cd_size >= limit)
    return directory


def full_and_size(zs: ZipStream) -> bytes:
    full = b"".join(zs)
    if zs.size is not None:
        assert zs.size == len(full)
    return full


# --- lowered limits --------------------------------------------------------------------------


def test_entries_over_the_limit(save, low_limit):
    big = os.urandom(2 * LIMIT)
    exact = os.urandom(LIMIT)  # reaching the limit is enough
    zs = ZipStream()
    zs.add(b"s" * 100, "small.txt")
    zs.add(big, "big-crc-known.bin")  # zip64, no descriptor
    zs.add(lambda: big, "big-crc-unknown.bin", size=len(big))  # zip64, 64-bit descriptor
    zs.add(exact, "exact.bin")
    zs.add(os.urandom(LIMIT - 1), "just-under.bin")
    zs.mkdir("dir")
    path = save(zs)
    assert path.stat().st_size == zs.size
    with zipfile.ZipFile(path) as z:
        expected = {i.filename: (None if i.is_dir() else z.read(i)) for i in z.infolist()}
    assert expected["big-crc-unknown.bin"] == big
    assert_zip64_only_where_needed(
        path, LIMIT, 0xFFFF, {"big-crc-known.bin", "big-crc-unknown.bin", "exact.bin"}
    )
    # Java reads stored zip64 entries with a known CRC; one with a descriptor it cannot.
    check_all(path, expected, java=False)
    java_zs = ZipStream()
    java_zs.add(big, "big.bin")
    java_zs.add(b"after", "after.txt")
    check_all(save(java_zs, "java.zip"), {"big.bin": big, "after.txt": b"after"}, java=True)


def test_offsets_over_the_limit(save, low_limit):
    """No entry is big, but later ones start past the limit: central zip64 (offset only)."""
    zs = ZipStream()
    expected = {}
    for i in range(12):
        data = bytes([i]) * 300
        zs.add(data, f"f{i:02d}.bin")
        expected[f"f{i:02d}.bin"] = data
    zs.mkdir("late-dir")
    expected["late-dir/"] = None
    path = save(zs)
    directory = assert_zip64_only_where_needed(path, LIMIT, 0xFFFF, ())
    assert sum(h.real_offset >= LIMIT for h in directory.entries) >= 8
    assert directory.zip64_end  # the central directory itself starts past the limit
    check_all(path, expected, java=True)


@pytest.mark.parametrize("count", [9, 10, 12])
def test_count_over_the_limit(save, monkeypatch, count):
    monkeypatch.setattr(zf, "ZIP64_COUNT_LIMIT", 10)
    zs = ZipStream()
    expected = {f"e{i}": b"%d" % i for i in range(count)}
    for name, data in expected.items():
        zs.add(data, name)
    path = save(zs)
    full_and_size(zs)
    directory = assert_zip64_only_where_needed(path, MAX32, 10, ())
    assert directory.count == count
    assert directory.zip64_end == (count >= 10)
    assert all(h.zip64_central is None and h.zip64_local is None for h in directory.entries)
    check_all(path, expected, java=True)


def test_deflate_entries_with_declared_size_over_the_limit(save, low_limit):
    text = b"squeezable " * 300  # 3300 bytes: zip64 planned, compresses far under the limit
    zs = ZipStream("deflate")
    zs.add(lambda: [text], "declared.txt", size=len(text))  # zip64 from the declared size
    zs.add(lambda: [b"x" * 100], "small.txt", size=100)
    zs.add(lambda: [b"y" * 500], "unsized.txt")  # unknown size: never zip64
    assert deflate_bound(100) < LIMIT
    path = save(zs)
    assert_zip64_only_where_needed(path, LIMIT, 0xFFFF, {"declared.txt"})
    expected = {"declared.txt": text, "small.txt": b"x" * 100, "unsized.txt": b"y" * 500}
    check_all(path, expected, java=False)


@pytest.mark.parametrize("compression", ["stored", "deflate"])
def test_unsized_data_growing_past_the_limit_raises(compression, low_limit):
    zs = ZipStream(compression)
    zs.add(lambda: [os.urandom(3 * LIMIT)], "unsized.bin")
    with pytest.raises(ValueError, match="size="):
        b"".join(zs)


def test_ranges_of_a_zip64_archive(low_limit):
    def build() -> ZipStream:
        zs = ZipStream(chunk_size=500)
        zs.add(lambda: b"A" * 2500, "big.bin", size=2500)  # CRC unknown
        for i in range(5):
            zs.add(b"%d" % i * 300, f"small{i}")
        return zs

    full = full_and_size(build())
    for start in range(0, len(full), 97):
        zs = build()
        assert b"".join(zs.app_iter_range(start, start + 1500)) == full[start : start + 1500]
        assert b"".join(zs.app_iter_range(start, None)) == full[start:]


# --- the real thing (slow) ---------------------------------------------------------------------

FOUR_GIB = 4 << 30
BIG_SIZE = FOUR_GIB + (1 << 20)
HEAD = b"HEAD-of-the-big-file\x01\x02"
TAIL = b"\xfe\xffTAIL-of-the-big-file"


def write_sparse(chunks: Iterable[bytes], path: Path) -> int:
    """Write a stream to disk, leaving holes where chunks are all zero (fast, little disk)."""
    zeros = bytes(1 << 20)
    total = 0
    with open(path, "wb") as f:
        for chunk in chunks:
            n = len(chunk)
            if n <= len(zeros) and chunk == zeros[:n]:
                f.seek(n, os.SEEK_CUR)
            else:
                f.write(chunk)
            total += n
        f.truncate(total)
    return total


def crc_of_reader(stream) -> tuple[int, int, bytes, bytes]:
    """(crc, size, first bytes, last bytes) of a binary stream, read in 1 MiB blocks."""
    crc = size = 0
    head = tail = b""
    while True:
        block = stream.read(1 << 20)
        if not block:
            return crc, size, head, tail
        if not head:
            head = block[: len(HEAD)]
        crc = zlib.crc32(block, crc)
        size += len(block)
        tail = (tail + block)[-len(TAIL) :]


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_real_file_over_4_gib(tmp_path):
    started = time.monotonic()
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.truncate(BIG_SIZE)
        f.write(HEAD)
        f.seek(BIG_SIZE - len(TAIL))
        f.write(TAIL)
    zs = ZipStream()
    zs.add(b"before", "before.txt")
    zs.add_path(big, "big.bin")  # CRC unknown: computed while streaming, 64-bit descriptor
    zs.add(b"after", "after.txt")  # starts past 4 GiB: zip64 offset in its central record
    zs.mkdir("dir-after")
    archive = tmp_path / "big.zip"
    try:
        tracemalloc.start()
        try:
            written = write_sparse(zs, archive)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        streamed = time.monotonic()
        assert written == zs.size == archive.stat().st_size
        assert peak < 4 << 20, f"Python heap peaked at {peak / 2**20:.1f} MiB while streaming"

        directory = assert_zip64_only_where_needed(
            archive, zf.ZIP64_LIMIT, zf.ZIP64_COUNT_LIMIT, {"big.bin"}
        )
        by_name = {h.name.decode(): h for h in directory.entries}
        assert by_name["big.bin"].zip64_central[:2] == (BIG_SIZE, BIG_SIZE)
        assert by_name["after.txt"].zip64_local is None
        assert by_name["after.txt"].zip64_central == (by_name["after.txt"].real_offset,)
        assert by_name["before.txt"].zip64_central is None
        assert directory.zip64_end

        # The readers (the CRC of 4 GiB is checked by each of them).
        check_unzip(archive)
        check_7z(archive)
        with zipfile.ZipFile(archive) as z:  # reading to the end checks the CRC too
            info = z.getinfo("big.bin")
            assert info.file_size == BIG_SIZE
            with z.open(info) as member:
                crc, size, head, tail = crc_of_reader(member)
            assert (size, head, tail) == (BIG_SIZE, HEAD, TAIL)
            assert crc == info.CRC == by_name["big.bin"].crc
            assert z.read("after.txt") == b"after"
            assert z.getinfo("dir-after/").is_dir()
        bsdtar = need("bsdtar")
        with subprocess.Popen([bsdtar, "-xOf", str(archive), "big.bin"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=ENV) as proc:
            crc, size, head, tail = crc_of_reader(proc.stdout)
            err = proc.stderr.read()
        assert proc.returncode == 0, err
        assert (crc, size, head, tail) == (by_name["big.bin"].crc, BIG_SIZE, HEAD, TAIL)
        listing = subprocess.run([bsdtar, "-tf", str(archive)], capture_output=True, env=ENV,
                                 check=True).stdout.decode().split()
        assert listing == ["before.txt", "big.bin", "after.txt", "dir-after/"]
        print(f"\n4 GiB archive: streamed in {streamed - started:.1f}s, "
              f"heap peak {peak / 2**20:.2f} MiB, readers done at "
              f"{time.monotonic() - started:.1f}s")
    finally:
        archive.unlink(missing_ok=True)
        big.unlink(missing_ok=True)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_more_than_65535_entries(tmp_path):
    count = 70_000
    zs = ZipStream()
    expected = {}
    for i in range(count):
        name = f"d{i // 1000:02d}/f{i:05d}.txt"
        data = b"%d\n" % i
        zs.add(data, name)
        expected[name] = data
    archive = write_chunks(zs, tmp_path / "many.zip")
    assert archive.stat().st_size == zs.size
    directory = parse_zip(archive)
    assert directory.count == count
    assert directory.eocd_count == 0xFFFF and directory.zip64_end
    assert all(h.zip64_central is None and h.zip64_local is None for h in directory.entries)
    check_all(archive, expected, java=True)
    out = check_unzip(archive)
    assert out.count("OK\n") == count
    assert "Files: 70000" in check_7z(archive)
    shutil.rmtree(tmp_path, ignore_errors=True)
