"""TarStream keeps ZipStream's promises: exact size from one plan, ranges that seek,
laziness, one open source, close(), determinism, refusals; and the tar bytes are right
where ustar ends and pax begins. Readers live in test_tar_readers.py."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import threading
import zlib
from pathlib import Path
from typing import Optional

import pytest
from conftest import drain
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zipwsgi import (
    ArchiveNameError,
    DuplicateNameError,
    SourceChangedError,
    TarStream,
    ZipStream,
)
from zipwsgi.engine.gzip import HEADER, gzip_member
from zipwsgi.formats.entry import Entry
from zipwsgi.formats.tar import records as tf
from zipwsgi.formats.tar.layout import TarLayout, pax_records
from zipwsgi.sources import Reader, Source

ROOT = Path(__file__).resolve().parent.parent
GiB = 1 << 30


def members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        return archive.getmembers()


# --- the byte format -------------------------------------------------------------------------


def test_pax_record_lengths_count_their_own_digits():
    for size in range(0, 2100):
        record = tf.pax_record(b"path", b"x" * size)
        length, rest = record.split(b" ", 1)
        assert int(length) == len(record), size
        assert rest == b"path=" + b"x" * size + b"\n"


@pytest.mark.parametrize(
    "name, split",
    [
        (b"a" * 100, (b"", b"a" * 100)),
        (b"d/" + b"a" * 98, (b"", b"d/" + b"a" * 98)),
        (b"d/" + b"a" * 99, (b"d", b"a" * 99)),
        (b"d/" + b"a" * 100, (b"d", b"a" * 100)),
        (b"p" * 155 + b"/" + b"n" * 100, (b"p" * 155, b"n" * 100)),
        (b"p" * 156 + b"/" + b"n" * 10, None),
        (b"a" * 101, None),
        (b"d/" + b"a" * 101, None),
        (b"x/" + b"a" * 99 + b"/", (b"x", b"a" * 99 + b"/")),
        (b"a" * 100 + b"/", None),  # a folder: the name field cannot be empty
    ],
)
def test_split_name(name, split):
    assert tf.split_name(name) == split


def test_ustar_header_is_what_tarfile_reads():
    block = tf.ustar_header(b"file.txt", b"some/dir", 0o100755, 12345, 1_700_000_000, b"0")
    assert len(block) == 512
    info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")  # checks the checksum
    assert (info.name, info.size, info.mtime, info.mode) == (
        "some/dir/file.txt", 12345, 1_700_000_000, 0o755)
    assert (info.uid, info.gid, info.uname, info.gname) == (0, 0, "", "")
    assert block[257:265] == b"ustar\x0000"


def _entry(name: str, size: int = 0, mtime: int = 0, is_dir: bool = False) -> Entry:
    entry = Entry(name, is_dir, None, size, mtime, 0o100644, "stored", None, None)
    TarLayout().prepare(entry)
    return entry


@pytest.mark.parametrize(
    "name, size, mtime, keys",
    [
        ("a" * 100, 1, 0, []),
        ("d/" + "a" * 100, 1, 0, []),
        ("a" * 101, 1, 0, [b"path"]),
        ("café.txt", 1, 0, [b"path"]),
        ("x", 8 * GiB - 1, 0, []),
        ("x", 8 * GiB, 0, [b"size"]),
        ("x", 1, 8**11 - 1, []),
        ("x", 1, 8**11, [b"mtime"]),
        ("x", 1, -1, [b"mtime"]),
        ("caf\udce9.txt", 1, 0, [b"hdrcharset", b"path"]),
    ],
)
def test_pax_header_only_where_ustar_cannot_hold_the_value(name, size, mtime, keys):
    records = pax_records(_entry(name, size, mtime))
    found = [line.split(b" ", 1)[1].split(b"=", 1)[0] for line in records.splitlines()]
    assert found == keys


@pytest.mark.parametrize("name, size", [("a.txt", 0), ("a.txt", 513), ("é" * 120, 7),
                                        ("x", 8 * GiB)])
def test_records_are_the_header_and_the_footer(name, size):
    """The writer's one call for a small file gives the bytes of the two calls."""
    layout = TarLayout()
    entry = _entry(name, size, 0)
    layout.prepare(entry)
    assert layout.records(entry, 0, 0) == (layout.header(entry, 0),
                                           layout.footer(entry, 0, size, size))


def test_a_member_over_8_gib_is_planned_and_ranged_without_reading_it():
    """The size goes into a pax record; the header can be served (a range) without
    opening the source, and the plan's size is exact."""
    big = 8 * GiB + 3

    class Untouchable(Source):
        size = big

        def open(self) -> Reader:
            raise AssertionError("a range over the header must not open the data")

    ts = TarStream()
    ts.add(Untouchable(), "big.bin")
    records = tf.pax_record(b"size", b"%d" % big)
    header = 512 + len(records) + tf.padding(len(records)) + 512
    data_end = header + big + tf.padding(big)
    assert ts.size == data_end + tf.end_size(data_end)
    head = drain(ts.app_iter_range(0, header))
    assert len(head) == header
    assert head[512 : 512 + len(records)] == records
    member = header - 512
    assert head[member + 124 : member + 136] == b"00000000000\0"  # the pax record says it
    assert drain(ts.app_iter_range(data_end, None)) == bytes(ts.size - data_end)


@pytest.mark.parametrize("length", [1, 98, 99, 100, 101, 154, 155, 156, 157, 255, 256, 300, 1000])
@pytest.mark.parametrize("slashes", [False, True])
def test_size_is_exact_around_every_name_limit(length, slashes):
    """FileSender's bug: a pax header miscounted once names passed 99 characters. Here the
    plan's size and the bytes come from the same records, at every length."""
    if slashes:
        name = "/".join(["d" * 40] * (length // 41) + ["f" * (length - 41 * (length // 41))])
        name = name.strip("/") or "f"
    else:
        name = "n" * length
    for extra in ("", "é"):
        ts = TarStream()
        ts.add(b"data", name + extra)
        ts.mkdir(name + extra + "-dir")
        full = drain(ts)
        assert ts.size == len(full)
        got = [m.name for m in members(full)]
        assert got == [name + extra, name + extra + "-dir"]


def test_plain_names_get_no_pax_header():
    ts = TarStream()
    ts.add(b"x", "d/" + "a" * 99)
    ts.add(b"y", "p" * 155 + "/" + "n" * 100)
    ts.mkdir("folder")
    full = drain(ts)
    assert b"PaxHeaders" not in full
    assert len(full) == 10240
    assert [m.pax_headers for m in members(full)] == [{}, {}, {}]


def test_pax_header_name_is_ascii_and_fixed():
    ts = TarStream()
    ts.add(b"x", "日本/" + "é" * 80)
    full = drain(ts)
    assert full[:11] == b"PaxHeaders/"
    assert full[:100].rstrip(b"\0").isascii()
    assert full[156:157] == b"x"


def test_trailer_pads_to_whole_records():
    for count in range(0, 25):
        ts = TarStream()
        for i in range(count):
            ts.add(b"x" * (i * 100), f"f{i}")
        full = drain(ts)
        assert len(full) == ts.size and len(full) % 10240 == 0
        assert full[-1024:] == bytes(1024)


def test_directories_are_typeflag_5_with_a_slash_and_permissions():
    ts = TarStream()
    ts.mkdir("a/b", mode=0o40700, mtime=1_234_567_890)
    block = drain(ts)[:512]
    assert block[:4] == b"a/b/" and block[156:157] == b"5"
    assert block[100:108] == b"0000700\0"
    info = tarfile.TarInfo.frombuf(block, "utf-8", "strict")
    assert info.isdir() and info.mtime == 1_234_567_890 and info.size == 0


def test_float_mtimes_become_whole_seconds():
    ts = TarStream()
    ts.add(b"x", "a", mtime=1_700_000_000.9)
    (info,) = members(drain(ts))
    assert info.mtime == 1_700_000_000 and info.pax_headers == {}


# --- the API ---------------------------------------------------------------------------------


def test_types_lengths_and_names():
    ts = TarStream()
    assert (ts.content_type, ts.extension, len(ts)) == ("application/x-tar", ".tar", 10240)
    tgz = TarStream("gzip", level="fast")
    assert (tgz.content_type, tgz.extension, tgz.size) == ("application/gzip", ".tar.gz", None)
    assert not hasattr(tgz, "__len__")
    with pytest.raises(TypeError):
        len(tgz)
    assert bool(tgz)


@pytest.mark.parametrize(
    "make",
    [
        lambda: TarStream("deflate"),
        lambda: TarStream("zip"),
        lambda: TarStream(level=6),
        lambda: TarStream("gzip", level=11),
        lambda: TarStream("gzip", level="best"),
    ],
)
def test_bad_settings_are_refused(make):
    with pytest.raises(ValueError):
        make()


def test_unsized_data_is_refused_with_advice():
    ts = TarStream()
    with pytest.raises(ValueError, match="size="):
        ts.add(iter([b"x"]), "it.txt")
    with pytest.raises(ValueError, match="size="):
        ts.add(lambda: b"x", "call.txt")
    assert ts.names == []
    ts.add(iter([b"x"]), "it.txt", size=1)
    assert drain(ts)[512:513] == b"x"


def test_per_entry_deflate_is_refused():
    ts = TarStream("gzip")
    with pytest.raises(ValueError, match="gzip"):
        ts.add(b"x", "a.txt", compression="deflate")
    ts.add(b"x", "a.txt", compression="stored")


def test_crc_is_accepted_and_ignored():
    ts = TarStream()
    ts.add(b"data", "a.txt", crc=0x12345678)  # wrong, and no one checks: tar has no CRC
    assert members(drain(ts))[0].size == 4


@pytest.mark.parametrize("name", ["../evil", "a/../../b", "nul\0byte"])
def test_unsafe_names_are_refused(name):
    with pytest.raises(ArchiveNameError):
        TarStream().add(b"x", name)


def test_names_are_normalised_and_duplicates_refused():
    ts = TarStream()
    ts.add(b"x", "/abs\\win/./file.txt")
    assert ts.names == ["abs/win/file.txt"]
    with pytest.raises(DuplicateNameError):
        ts.add(b"y", "abs/win/file.txt")
    with pytest.raises(DuplicateNameError):
        ts.mkdir("abs/win/file.txt")
    TarStream(allow_duplicates=True).add(b"x", "a")


# --- fingerprints and determinism -----------------------------------------------------------------


def _filled(kind: str, tmp_path: Path, **options) -> object:
    if not (tmp_path / "f.txt").exists():
        (tmp_path / "f.txt").write_bytes(b"same file\n")
    if kind == "zip":
        stream: object = ZipStream()
    else:
        stream = TarStream("gzip" if kind == "tar.gz" else None, **options)
    stream.add_path(tmp_path / "f.txt", "f.txt")  # type: ignore[attr-defined]
    stream.add(b"bytes", "b.txt")  # type: ignore[attr-defined]
    return stream


def test_fingerprints_differ_between_formats_and_settings(tmp_path):
    prints = {
        kind: _filled(kind, tmp_path).fingerprint()  # type: ignore[attr-defined]
        for kind in ("zip", "tar", "tar.gz")
    }
    assert None not in prints.values()
    assert len(set(prints.values())) == 3
    again = _filled("tar.gz", tmp_path).fingerprint()  # type: ignore[attr-defined]
    assert again == prints["tar.gz"]
    fast = _filled("tar.gz", tmp_path, level="fast").fingerprint()  # type: ignore[attr-defined]
    assert fast != prints["tar.gz"]


def test_gzip_header_has_no_name_time_or_host():
    tgz = TarStream("gzip")
    tgz.add(b"x", "a")
    data = drain(tgz)
    assert data[:10] == HEADER == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    plain = TarStream()
    plain.add(b"x", "a")
    assert gzip.decompress(data) == drain(plain)


def _sample_entries(ts: TarStream) -> None:
    rng = __import__("random").Random(7)
    ts.add(bytes(rng.getrandbits(8) for _ in range(300_000)), "random.bin")
    ts.add(b"compressible line of text\n" * 200_000, "text.txt")
    for i in range(50):
        ts.add(f"small {i}\n".encode() * i, f"dir/{i:03d}.txt")


@pytest.mark.parametrize("level", [None, 1, 9, "fast"])
def test_gzip_bytes_do_not_depend_on_workers(level):
    outputs = set()
    for workers in (0, 1, 2, 3):
        tgz = TarStream("gzip", level, workers=workers)
        _sample_entries(tgz)
        outputs.add(hashlib.sha256(drain(tgz)).hexdigest())
    assert len(outputs) == 1
    plain = TarStream()
    _sample_entries(plain)
    tgz = TarStream("gzip", level)
    _sample_entries(tgz)
    assert gzip.decompress(drain(tgz)) == drain(plain)


def test_gzip_member_blocks_join_into_one_stream():
    data = os.urandom(100_000) + b"abc" * 200_000 + os.urandom(70_000)
    pieces = [data[i : i + 9_999] for i in range(0, len(data), 9_999)]
    outs = {
        workers: drain(gzip_member(iter(pieces), 6, workers, block_size=64 * 1024))
        for workers in (0, 2)
    }
    assert outs[0] == outs[2]
    assert gzip.decompress(outs[0]) == data
    body = outs[0][10:-8]
    assert zlib.decompressobj(-15).decompress(body) == data
    assert drain(gzip_member(iter([]), 6, 2)) == HEADER + b"\x03\x00" + bytes(8)


_CHILD = """
import hashlib, sys
sys.path.insert(0, {root!r})
from zipwsgi import TarStream
out = []
for compression in (None, "gzip"):
    ts = TarStream(compression)
    ts.add_path({path!r}, "tree")
    ts.add(b"bytes", "b.txt")
    out.append(hashlib.sha256(b"".join(ts)).hexdigest())
print(" ".join(out))
"""


def test_same_bytes_in_other_processes_and_time_zones(tmp_path):
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "a.txt").write_bytes(b"a" * 5000)
    (tree / "é.txt").write_bytes(b"accent")
    code = _CHILD.format(root=str(ROOT), path=str(tree))
    results = set()
    for tz in ("UTC", "America/Los_Angeles", "Asia/Kathmandu"):
        env = {**os.environ, "TZ": tz, "PYTHONHASHSEED": "random"}
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, check=True)
        results.add(proc.stdout.strip())
    assert len(results) == 1


# --- laziness, open sources, close --------------------------------------------------------------


class Counting(Source):
    """A source that counts opens and how many of its readers are open at once."""

    __slots__ = ("data", "log")
    open_now = 0
    most_open = 0

    def __init__(self, data: bytes, log: list[str]) -> None:
        self.data = data
        self.log = log

    @property
    def size(self) -> int:  # type: ignore[override]
        return len(self.data)

    def open(self) -> Reader:
        Counting.open_now += 1
        Counting.most_open = max(Counting.most_open, Counting.open_now)
        self.log.append("open")
        return _CountingReader(self.data, self.log)


class _CountingReader(Reader):
    def __init__(self, data: bytes, log: list[str]) -> None:
        self.view = memoryview(data)
        self.pos = 0
        self.log = log

    def read(self, n: int) -> bytes:
        out = bytes(self.view[self.pos : self.pos + n])
        self.pos += len(out)
        self.log.append(f"read {len(out)}")
        return out

    def skip(self, n: int) -> None:
        self.log.append(f"skip {n}")
        self.pos += n

    def close(self) -> None:
        Counting.open_now -= 1
        self.log.append("close")


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_lazy_and_one_source_open_at_a_time(compression):
    log: list[str] = []
    called = []
    ts = TarStream(compression, chunk_size=4096)
    for i in range(5):
        ts.add(Counting(os.urandom(10_000 + i), log), f"f{i}.bin")
    ts.add(lambda: called.append(1) or b"late", "callable.txt", size=4)
    assert ts.size is None or ts.size > 50_000
    ts.fingerprint()
    passage = ts.app_iter_range(100, 30_000)
    assert log == [] and called == []  # nothing opened before iteration (HEAD)
    Counting.most_open = Counting.open_now = 0
    drain(ts)
    drain(passage)
    assert Counting.most_open == 1 and Counting.open_now == 0
    assert called == ([1] if compression is None else [1, 1])  # a range of tar.gz replays


def test_a_range_seeks_into_the_file_and_reads_only_what_it_sends():
    log: list[str] = []
    data = os.urandom(1_000_000)
    ts = TarStream(chunk_size=65536)
    ts.add(b"first", "first.txt")
    ts.add(Counting(data, log), "big.bin")
    ts.add(b"last", "last.txt")
    full = drain(ts)
    log.clear()
    start, stop = 1024 + 512 + 400_000, 1024 + 512 + 400_100
    assert drain(ts.app_iter_range(start, stop)) == full[start:stop]
    assert log == ["open", "skip 400000", "read 100", "close"]
    log.clear()
    tail_start = 1024 + 512 + len(data) + 10  # inside the padding after big.bin
    assert drain(ts.app_iter_range(tail_start, None)) == full[tail_start:]
    assert log == []  # footers and the trailer need no data: tar has no CRC to learn


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_close_mid_stream_closes_the_file_and_the_threads(tmp_path, compression, open_fds):
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(6 * 1024 * 1024))
    before = open_fds()
    ts = TarStream(compression, workers=2)
    ts.add_path(big, "big.bin")
    handle = open(big, "rb")
    ts.add(handle, "again.bin")
    iterator = iter(ts)
    next(iterator)
    next(iterator)
    assert open_fds() == before + 2  # the handed-over handle and the one open source
    ts.close()
    assert handle.closed
    assert open_fds() == before
    assert not [t for t in threading.enumerate() if t.name.startswith("zipwsgi-deflate")]


@pytest.mark.parametrize("compression", [None, "gzip"])
@pytest.mark.parametrize("change", ["shrink", "grow", "touch"])
def test_a_file_that_changes_raises(tmp_path, compression, change):
    victim = tmp_path / "victim.bin"
    victim.write_bytes(os.urandom(100_000))
    ts = TarStream(compression)
    ts.add_path(victim, "victim.bin")
    if change == "shrink":
        os.truncate(victim, 99_999)
    elif change == "grow":
        with open(victim, "ab") as f:
            f.write(b"more")
    else:
        st = victim.stat()
        os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    with pytest.raises(SourceChangedError):
        drain(ts)


def test_symlinks_leaving_a_walked_folder_are_skipped(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"secret")
    root = tmp_path / "root"
    (root / "real").mkdir(parents=True)
    (root / "top.txt").write_bytes(b"top")
    os.symlink(outside / "secret.txt", root / "escape-file.txt")
    os.symlink(outside, root / "escape-dir")
    os.symlink("../top.txt", root / "real" / "inside-link.txt")
    os.symlink(root, root / "real" / "loop")
    ts = TarStream()
    ts.add_path(root, "root")
    assert ts.names == ["root/", "root/real/", "root/real/inside-link.txt", "root/top.txt"]
    got = {m.name: m.size for m in members(drain(ts))}
    assert got == {"root": 0, "root/real": 0, "root/real/inside-link.txt": 3, "root/top.txt": 3}


# --- properties ---------------------------------------------------------------------------------

_segment = st.text(
    alphabet=st.sampled_from("abcXYZ019-_ .é日🎉"), min_size=1, max_size=70
).filter(lambda s: s.strip(" .") == s and s not in (".", ".."))
_names = st.lists(_segment, min_size=1, max_size=6).map("/".join)
_entry_st = st.tuples(_names, st.binary(max_size=1500), st.booleans(), st.integers(-5, 2**34))


def _build(specs, compression: Optional[str] = None) -> TarStream:
    ts = TarStream(compression, chunk_size=1024)
    for name, data, as_iterable, mtime in specs:
        try:
            if as_iterable:
                ts.add(iter([data[:7], data[7:]]), name, size=len(data), mtime=mtime)
            else:
                ts.add(data, name, mtime=mtime)
        except ArchiveNameError:  # duplicates and file/folder clashes from random names
            pass
    return ts


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=st.lists(_entry_st, max_size=8), cuts=st.lists(st.integers(0, 40_000), min_size=2,
                                                           max_size=2))
def test_size_and_ranges_agree_with_the_full_stream(specs, cuts):
    ts = _build(specs)
    full = drain(_build(specs))  # a fresh stream: iterables are single-use
    assert ts.size == len(full)
    start, stop = sorted(cuts)
    assert drain(ts.app_iter_range(start, stop)) == full[start:stop]
    names = [m.name + ("/" if m.isdir() else "") for m in members(full)]
    assert names == ts.names


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=st.lists(_entry_st, max_size=5), cuts=st.lists(st.integers(0, 3000), min_size=2,
                                                           max_size=2))
def test_gzip_ranges_are_slices_of_the_stream(specs, cuts):
    full = drain(_build(specs, "gzip"))
    start, stop = sorted(cuts)
    assert drain(_build(specs, "gzip").app_iter_range(start, stop)) == full[start:stop]
    assert gzip.decompress(full) == drain(_build(specs))


def test_gzip_memory_stays_bounded():
    """Input queued for the threads stays under 2 blocks per worker, whatever the length."""
    import tracemalloc

    def chunks():
        line = b"a line of log text that compresses, more or less %d\n"
        for i in range(96):  # 24 MiB in 256 KiB chunks
            yield b"".join(line % (i * 5000 + k) for k in range(5000))[: 256 * 1024].ljust(
                256 * 1024, b"."
            )

    tracemalloc.start()
    try:
        total = sum(len(piece) for piece in gzip_member(chunks(), 1, workers=2))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total < 24 * 1024 * 1024
    assert peak < 10 * 1024 * 1024, peak  # 2 workers: 4 MiB queued + results + the cut


@pytest.mark.parametrize("name_length", [0, 1, 99, 100])
@pytest.mark.parametrize("prefix_length", [0, 1, 144, 145, 155])
def test_header_byte_sums_in_c_are_the_sums(name_length: int, prefix_length: int) -> None:
    """The checksum's byte sums (Adler-32 below 245 bytes of name and prefix) equal
    ``sum()``, high bytes included, on both sides of the cut-over."""
    from zipwsgi.formats.tar import records as tf

    for fill in (0x7F, 0xFF):
        name, prefix = bytes([fill]) * name_length, bytes([fill]) * prefix_length
        size_field = b"%011o\0" % 0o77777777777
        assert tf._byte_sum(name, prefix, size_field) == sum(name + prefix + size_field)
