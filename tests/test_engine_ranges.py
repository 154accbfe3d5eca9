"""Ranges and laziness: ``app_iter_range`` slices exactly, and nothing is opened early.

The property test builds random archives twice from the same recipe: one copy is ranged
first (so CRCs must be computed on the fly for the records the range covers), the other is
joined whole and is the oracle.
"""

from __future__ import annotations

import io
import os
import random
import struct
import tempfile
import zipfile
import zlib
from typing import Optional

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from readers import parse_zip

from zipwsgi import ZipStream
from zipwsgi.engine.sources import Reader, Source

# --- instrumented sources ----------------------------------------------------------------------


class Tracker:
    """Counts opens and how many readers are open at once."""

    def __init__(self) -> None:
        self.opens = 0
        self.open_now = 0
        self.peak = 0
        self.log: list[str] = []

    def opened(self, name: str) -> None:
        self.opens += 1
        self.open_now += 1
        self.peak = max(self.peak, self.open_now)
        self.log.append(f"open {name}")

    def closed(self, name: str) -> None:
        self.open_now -= 1
        self.log.append(f"close {name}")


class TrackedSource(Source):
    def __init__(self, data: bytes, tracker: Tracker, name: str, sized: bool = True) -> None:
        super().__init__()
        self.data = data
        self.tracker = tracker
        self.name = name
        self.size = len(data) if sized else None

    def open(self) -> Reader:
        self.tracker.opened(self.name)
        return TrackedReader(self.data, self.tracker, self.name)


class TrackedReader(Reader):
    def __init__(self, data: bytes, tracker: Tracker, name: str) -> None:
        self.buf = io.BytesIO(data)
        self.tracker = tracker
        self.name = name
        self.closed = False

    def read(self, n: int) -> bytes:
        assert not self.closed, "read after close"
        return self.buf.read(n)

    def skip(self, n: int) -> None:
        self.buf.seek(n, os.SEEK_CUR)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.tracker.closed(self.name)


def tracked_stream(tracker: Tracker, compression: str = "stored", chunk_size: int = 1024,
                   n: int = 4, size: int = 5000, sized: bool = True) -> tuple[ZipStream, dict]:
    zs = ZipStream(compression, chunk_size=chunk_size)
    expected = {}
    for i in range(n):
        data = random.Random(i).randbytes(size)  # incompressible: deflate output flows
        zs.add(TrackedSource(data, tracker, f"e{i}", sized=sized), f"e{i}.txt")
        expected[f"e{i}.txt"] = data
    return zs, expected


# --- the property ----------------------------------------------------------------------------

KINDS_SIZED = ("bytes", "file", "callable_sized", "dir", "str", "fileobj")
KINDS_ANY = KINDS_SIZED + ("callable_unsized", "iterable_unsized")

entry_strategy = st.fixed_dictionaries(
    {
        "data": st.one_of(
            st.binary(max_size=64),
            st.binary(min_size=1000, max_size=6000),
            st.builds(lambda n, b: b * n, st.integers(0, 4000), st.binary(min_size=1, max_size=3)),
        ),
        "crc_given": st.booleans(),
        "chunks": st.integers(1, 5),
        "stored": st.booleans(),
    }
)


@st.composite
def archives(draw):
    deflate = draw(st.booleans())
    kinds = KINDS_ANY if deflate else KINDS_SIZED
    entries = draw(
        st.lists(st.tuples(st.sampled_from(kinds), entry_strategy), min_size=0, max_size=8)
    )
    chunk_size = draw(st.sampled_from([64, 333, 4096, 256 * 1024]))
    return deflate, entries, chunk_size


def build(spec, tmpdir: str) -> tuple[ZipStream, dict]:
    deflate, entries, chunk_size = spec
    zs = ZipStream("deflate" if deflate else "stored", chunk_size=chunk_size)
    expected: dict[str, Optional[bytes]] = {}
    for i, (kind, e) in enumerate(entries):
        data: bytes = e["data"]
        name = f"{i:02d}-{kind}" + ("-é" if i % 3 == 0 else "")
        crc = zlib.crc32(data) if e["crc_given"] else None
        # Per-entry "stored" inside a deflate archive, only where the size is known.
        compression = "stored" if (deflate and e["stored"] and "unsized" not in kind) else None
        step = max(1, len(data) // e["chunks"])
        pieces = [data[j : j + step] for j in range(0, len(data), step)]
        if kind == "dir":
            zs.mkdir(name)
            expected[name + "/"] = None
            continue
        if kind == "bytes":
            zs.add(data, name, compression=compression)
        elif kind == "str":
            text = data.decode("latin-1")
            zs.add(text, name, compression=compression)
            data = text.encode("utf-8")
        elif kind == "file":
            path = os.path.join(tmpdir, name)
            if not os.path.exists(path):  # the second build must see the same file
                with open(path, "wb") as f:
                    f.write(data)
                os.utime(path, (1_500_000_000, 1_500_000_000))
            zs.add_path(path, name, crc=crc, compression=compression)
        elif kind == "fileobj":
            zs.add(io.BytesIO(data), name, crc=crc, compression=compression)
        elif kind == "callable_sized":
            zs.add(lambda p=pieces: iter(p), name, size=len(data), crc=crc,
                   compression=compression)
        elif kind == "callable_unsized":
            zs.add(lambda p=pieces: iter(p), name, crc=crc, compression=compression)
        elif kind == "iterable_unsized":
            zs.add(list(pieces), name, crc=crc, compression=compression)
        expected[name] = data
    return zs, expected


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=archives(), cuts=st.lists(st.tuples(st.integers(0, 70_000), st.integers(0, 70_000)),
                                      min_size=1, max_size=6))
def test_ranges_equal_slices_of_the_whole(spec, cuts):
    with tempfile.TemporaryDirectory() as tmpdir:
        oracle, expected = build(spec, tmpdir)
        with oracle:
            full = b"".join(oracle)
            if oracle.size is not None:
                assert oracle.size == len(full)
            else:
                assert spec[0] or any("unsized" in kind for kind, _ in spec[1])
            with zipfile.ZipFile(io.BytesIO(full)) as zf:
                assert zf.testzip() is None
                got = {i.filename: (None if i.is_dir() else zf.read(i)) for i in zf.infolist()}
            assert got == expected
            assert b"".join(oracle) == full  # a second pass: same bytes
        n = len(full)
        cuts = [(a % (n + 10), b % (n + 10)) for a, b in cuts]
        # A fresh copy: ranges come first, so CRCs the range needs are computed on the spot.
        fresh, _ = build(spec, tmpdir)
        with fresh:
            for a, b in cuts:
                assert b"".join(fresh.app_iter_range(a, b)) == full[a:b], (a, b)
            a = cuts[0][0]
            assert b"".join(fresh.app_iter_range(a, None)) == full[a:]
            assert b"".join(fresh) == full
            for a, b in cuts:  # and again, now that CRCs are known
                assert b"".join(fresh.app_iter_range(a, b)) == full[a:b], (a, b)


def test_every_single_range_of_a_small_archive(tmp_path):
    """Exhaustive over every (start, stop) of a small sized archive with unknown CRCs."""
    (tmp_path / "f").write_bytes(b"0123456789" * 3)
    tracker = Tracker()

    def build_one() -> ZipStream:
        zs = ZipStream(chunk_size=7)
        zs.add(TrackedSource(b"abcdefghij" * 2, tracker, "t"), "t.txt")
        zs.add_path(tmp_path / "f", "f.txt")
        zs.mkdir("d")
        zs.add(b"", "empty")
        return zs

    full = b"".join(build_one())
    assert len(full) == build_one().size
    for a in range(len(full) + 2):
        zs = build_one()
        for b in range(a, len(full) + 2):
            assert b"".join(zs.app_iter_range(a, b)) == full[a:b], (a, b)
    assert tracker.peak == 1


# --- laziness --------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["stored", "deflate"])
def test_nothing_is_opened_before_iteration(tmp_path, compression, monkeypatch):
    tracker = Tracker()
    calls = []
    (tmp_path / "f.txt").write_bytes(b"file")
    zs, _ = tracked_stream(tracker, compression)
    zs.add(lambda: calls.append(1) or b"called", "callable.txt", size=6)
    zs.add_path(tmp_path / "f.txt", "f.txt")

    opened_paths = []
    real_open = os.open
    def spy_open(path, *args, **kwargs):
        opened_paths.append(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy_open)
    _ = zs.size
    if compression == "stored":
        assert len(zs) > 0
    _ = zs.fingerprint()
    it = iter(zs)
    ranged = zs.app_iter_range(10, 100)  # what WebOb does for HEAD and Range
    whole = zs.app_iter_range(0, None)
    assert tracker.opens == 0 and calls == [] and opened_paths == []
    it.close()
    ranged.close()
    whole.close()
    zs.close()
    assert tracker.opens == 0 and calls == [] and opened_paths == []


@pytest.mark.parametrize("compression", ["stored", "deflate"])
def test_at_most_one_source_open_at_a_time(compression):
    tracker = Tracker()
    zs, expected = tracked_stream(tracker, compression, chunk_size=100, n=6)
    held = list(zs)  # the consumer keeps every chunk: no reader may stay open because of it
    assert tracker.peak == 1 and tracker.open_now == 0
    assert tracker.opens == 6
    full = b"".join(held)
    if compression == "stored":
        fresh_tracker = Tracker()
        fresh, _ = tracked_stream(fresh_tracker, compression, chunk_size=100, n=6)
        # From the middle of entry 2 to the end: data of 2..5 plus every CRC for the trailer.
        start = parse_zip_bytes(full)[2] + 200
        assert b"".join(fresh.app_iter_range(start, None)) == full[start:]
        assert fresh_tracker.peak == 1 and fresh_tracker.open_now == 0


def parse_zip_bytes(data: bytes) -> list[int]:
    """Local-header offsets of every entry of an in-memory archive."""
    with tempfile.NamedTemporaryFile(suffix=".zip") as f:
        f.write(data)
        f.flush()
        return [h.real_offset for h in parse_zip(f.name).entries]


BIG = 6 << 20


def _advance_until_open(it, tracker: Tracker, limit: int = 100_000) -> None:
    for _ in range(limit):
        next(it)
        if tracker.open_now:
            return
    raise AssertionError("no source was ever open")


@pytest.mark.parametrize(
    "compression,start",
    [("stored", 0), ("stored", 3000), ("deflate", 0), ("deflate", 3000)],
)
def test_closing_a_pass_midway_closes_its_reader_at_once(compression, start):
    tracker = Tracker()
    # Entries larger than any deflate block or read-ahead, so a yield happens mid-entry.
    zs, _ = tracked_stream(tracker, compression, chunk_size=4096, size=BIG, n=2)
    it = zs.app_iter_range(start, None)
    _advance_until_open(it, tracker)
    assert tracker.open_now == 1
    it.close()
    assert tracker.open_now == 0
    assert list(it) == []


def test_closing_a_pass_closes_the_file_descriptor(tmp_path, open_fds):
    for i in range(2):
        (tmp_path / f"{i}.bin").write_bytes(os.urandom(BIG))
    for compression in ("stored", "deflate"):
        zs = ZipStream(compression, level=1, chunk_size=4096)
        zs.add_path(tmp_path, "dir")
        before = open_fds()
        it = iter(zs)
        for _ in range(10_000):
            next(it)
            if open_fds() == before + 1:
                break
        assert open_fds() == before + 1
        it.close()
        assert open_fds() == before
        # and after an exhausted pass
        for _ in zs:
            pass
        assert open_fds() == before


def test_zs_close_closes_running_passes():
    tracker = Tracker()
    zs, _ = tracked_stream(tracker, chunk_size=256, size=50_000)
    first = iter(zs)
    second = zs.app_iter_range(60_000, None)
    _advance_until_open(first, tracker)
    next(second)
    assert tracker.open_now == 2  # two independent passes, one reader each
    zs.close()
    assert tracker.open_now == 0
    assert list(first) == [] and list(second) == []


def test_closing_a_pass_closes_a_callables_file(tmp_path):
    opened = []
    (tmp_path / "big").write_bytes(os.urandom(100_000))

    def opener():
        f = open(tmp_path / "big", "rb")  # noqa: SIM115 - the stream owns and closes it
        opened.append(f)
        return f

    zs = ZipStream(chunk_size=1024)
    zs.add(opener, "big", size=100_000)
    it = iter(zs)
    next(it)
    next(it)
    assert len(opened) == 1 and not opened[0].closed
    it.close()
    assert opened[0].closed


# --- CRCs computed for ranges ------------------------------------------------------------------


def test_range_after_an_entry_with_unknown_crc_computes_that_crc():
    tracker = Tracker()
    a_data = b"A" * 10_000

    def build_one(t: Tracker) -> ZipStream:
        zs = ZipStream(chunk_size=512)
        zs.add(TrackedSource(a_data, t, "a"), "a.txt")  # CRC unknown: descriptor
        zs.add(b"B" * 100, "b.txt")
        return zs

    full = b"".join(build_one(Tracker()))
    zs = build_one(tracker)
    offsets = parse_zip_bytes(full)
    b_offset = offsets[1]
    tail = b"".join(zs.app_iter_range(b_offset, None))
    assert tail == full[b_offset:]
    assert tracker.opens == 1  # A read once, only to learn its CRC for the central record
    # The central record for A in the range carries the right CRC.
    cd = tail.index(b"PK\x01\x02")
    assert struct.unpack_from("<I", tail, cd + 16)[0] == zlib.crc32(a_data)
    # Remembered: another range over the trailer does not read A again.
    assert b"".join(zs.app_iter_range(b_offset + 10, None)) == full[b_offset + 10 :]
    assert tracker.opens == 1

    # A range holding just A's data descriptor.
    tracker = Tracker()
    zs = build_one(tracker)
    desc_at = b_offset - 16
    descriptor = b"".join(zs.app_iter_range(desc_at, b_offset))
    assert descriptor == full[desc_at:b_offset]
    sig, crc, csize, size = struct.unpack("<IIII", descriptor)
    assert sig == 0x08074B50 and crc == zlib.crc32(a_data) and csize == size == len(a_data)
    assert tracker.opens == 1


def test_range_inside_data_reads_only_what_it_needs(tmp_path):
    """A range inside one entry's data seeks: it reads that entry only, and not to the end."""
    tracker = Tracker()
    zs, _ = tracked_stream(tracker, n=3, size=100_000)
    full = b"".join(tracked_stream(Tracker(), n=3, size=100_000)[0])
    offsets = parse_zip_bytes(full)
    a = offsets[1] + 500
    assert b"".join(zs.app_iter_range(a, a + 1000)) == full[a : a + 1000]
    assert tracker.log == ["open e1", "close e1"]


def test_ranges_of_unsized_archives_are_lazy_slices():
    tracker = Tracker()
    zs, _ = tracked_stream(tracker, "deflate", n=3)
    full = b"".join(tracked_stream(Tracker(), "deflate", n=3)[0])
    assert zs.size is None
    assert b"".join(zs.app_iter_range(5, 50)) == full[5:50]
    assert tracker.opens == 1  # stopped once the range was complete
    assert b"".join(zs.app_iter_range(len(full) - 30, None)) == full[-30:]


def test_range_edges():
    zs = ZipStream()
    zs.add(b"x" * 100, "x")
    full = b"".join(zs)
    n = len(full)
    assert b"".join(zs.app_iter_range(0, 0)) == b""
    assert b"".join(zs.app_iter_range(n, None)) == b""
    assert b"".join(zs.app_iter_range(n + 5, n + 10)) == b""
    assert b"".join(zs.app_iter_range(10, 5)) == b""
    assert b"".join(zs.app_iter_range(n - 1, n + 100)) == full[-1:]
    assert b"".join(zs.app_iter_range(0, n)) == full
    empty = ZipStream()
    assert b"".join(empty.app_iter_range(3, 10)) == b"".join(empty)[3:10]

