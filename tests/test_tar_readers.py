"""Every archive shape, as tar and as tar.gz, opened by every real tar reader.

Readers (tests/tar_readers.py): Python's tarfile in random-access (``r:*``) and streaming
(``r|*``) modes, GNU tar and bsdtar and busybox tar from the file and from a pipe, 7-Zip,
and ``gzip -t`` for the compressed ones. Each shape also checks ``size`` against the
bytes (plain tar) and that every member is where tarfile says it is.
"""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path
from typing import Callable, Optional

import pytest
from tar_readers import check_all_tar, check_tarfile, gnu_tar_listing

from zipwsgi import TarStream
from zipwsgi.engine.stream import DEFAULT_MTIME
from zipwsgi.sources import BytesSource

FORMATS = [None, "gzip"]
Expected = dict[str, Optional[bytes]]


@pytest.fixture
def write(tmp_path: Path) -> Callable[[TarStream], Path]:
    """Stream one pass into a file and check the size promise on the way."""

    def write(ts: TarStream) -> Path:
        path = tmp_path / ("archive" + ts.extension)
        written = 0
        with open(path, "wb") as f:
            for chunk in ts:
                written += f.write(chunk)
        if ts.stream_compression is None:
            assert ts.size == len(ts) == written
            assert written % 10240 == 0
        else:
            assert ts.size is None
        return path

    return write


def name_of(length: int, width: int = 60, tag: str = "") -> str:
    """A ``/``-separated name of exactly ``length`` characters, components up to ``width``
    long (file systems take 255 bytes per component)."""
    parts = []
    left = length
    while left > width + 1:
        parts.append(f"{tag}{len(parts)}".ljust(width, "d"))
        left -= width + 1
    parts.append(f"f{length}".ljust(left, "x"))
    name = "/".join(parts)
    assert len(name) == length
    return name


# --- the simplest shapes ---------------------------------------------------------------------


@pytest.mark.parametrize("compression", FORMATS)
def test_empty_archive(write, compression):
    ts = TarStream(compression)
    path = write(ts)
    if compression is None:
        assert path.read_bytes() == bytes(10240)
    check_all_tar(path, {})


@pytest.mark.parametrize("compression", FORMATS)
def test_empty_files(write, tmp_path, compression):
    (tmp_path / "empty.txt").write_bytes(b"")
    ts = TarStream(compression)
    ts.add(b"", "empty-bytes.txt")
    ts.add("", "empty-str.txt")
    ts.add_path(tmp_path / "empty.txt", "empty-disk.txt")
    ts.add(lambda: b"", "empty-callable.txt", size=0)
    ts.add(iter([]), "empty-iter.txt", size=0)
    expected: Expected = {
        n: b"" for n in ["empty-bytes.txt", "empty-str.txt", "empty-disk.txt",
                         "empty-callable.txt", "empty-iter.txt"]
    }
    check_all_tar(write(ts), expected)


@pytest.mark.parametrize("compression", FORMATS)
def test_empty_folders(write, tmp_path, compression):
    (tmp_path / "walked-empty").mkdir()
    ts = TarStream(compression)
    ts.mkdir("empty-folder")
    ts.mkdir("a/b/c/")
    ts.add_path(tmp_path / "walked-empty", "walked")
    expected: Expected = {"empty-folder/": None, "a/b/c/": None, "walked/": None}
    assert ts.names == list(expected)
    path = write(ts)
    infos = check_tarfile(path, expected)
    assert all(info.isdir() for info in infos.values())
    check_all_tar(path, expected)


# --- names -------------------------------------------------------------------------------------


LENGTHS = [99, 100, 101, 155, 156, 255, 256, 257, 300]


def long_names() -> Expected:
    """Names around every ustar limit: one component where a file system allows it,
    split by folders otherwise, and paths whose only split leaves a prefix over 155."""
    out: Expected = {}
    for length in LENGTHS:
        if length <= 255:
            out[f"{length}".ljust(length, "s")] = f"single {length}\n".encode()
        out[name_of(length, tag="p")] = f"split {length}\n".encode()
        out[name_of(length, width=40, tag="q")] = f"narrow {length}\n".encode()
    # The name field exactly full (100) after a prefix exactly full (155).
    out["p" * 155 + "/" + "n" * 100] = b"both fields full\n"
    # No ustar split: the only "/" leaves a 160-byte prefix.
    out["a" * 160 + "/" + "b" * 20] = b"no split: prefix too long\n"
    # No ustar split: the name after the last "/" is over 100 bytes.
    out["c" * 10 + "/" + "d" * 120] = b"no split: name too long\n"
    return out


@pytest.mark.parametrize("compression", FORMATS)
def test_long_names(write, compression):
    expected = long_names()
    ts = TarStream(compression)
    for name, data in expected.items():
        ts.add(data, name)
    for length in (99, 100, 101, 155, 156, 255):  # folders too: their names end in "/"
        folder = name_of(length, tag="dir") + "/"
        ts.mkdir(folder)
        expected[folder] = None
    assert sorted(ts.names) == sorted(expected)
    check_all_tar(write(ts), expected)


@pytest.mark.parametrize("compression", FORMATS)
def test_non_ascii_and_emoji_names(write, compression):
    expected: Expected = {
        "café/menu.txt": b"espresso\n",
        "Отчёт.txt": "Отчёт за квартал\n".encode(),
        "日本語/ファイル.txt": "こんにちは\n".encode(),
        "emoji 🎉.bin": bytes(range(256)),
        "🎉" * 30 + ".txt": b"four bytes a character: 124 bytes of name\n",
        "ascii.txt": b"plain\n",
    }
    ts = TarStream(compression)
    for name, data in expected.items():
        ts.add(data, name)
    path = write(ts)
    check_all_tar(path, expected)
    if compression is None:
        listed = dict(gnu_tar_listing(path))
        assert listed == {n: len(d) for n, d in expected.items() if d is not None}


def test_undecodable_file_names_are_written_as_raw_bytes(write, tmp_path):
    """A file name that is not UTF-8 on disk comes back byte for byte (pax
    ``hdrcharset=BINARY``)."""
    root = tmp_path / "root"
    root.mkdir()
    raw = b"caf\xe9 latin-1.txt"
    with open(os.path.join(os.fsencode(root), raw), "wb") as f:
        f.write(b"latin")
    ts = TarStream()
    ts.add_path(root, "root")
    name = "root/" + os.fsdecode(raw)
    expected: Expected = {"root/": None, name: b"latin"}
    path = write(ts)
    assert b"hdrcharset=BINARY" in path.read_bytes()
    check_all_tar(path, expected)


# --- trees and sources ----------------------------------------------------------------------------


def make_tree(root: Path) -> tuple[Expected, dict[str, int], dict[str, int]]:
    """A nested tree on disk with its own modes and mtimes; returns what
    ``add_path(root, "tree")`` must produce, and the mtimes and modes to expect."""
    files = {
        "a.txt": b"alpha\n",
        "empty.dat": b"",
        "sub/b.txt": b"bravo\n" * 1000,
        "sub/deeper/c.bin": os.urandom(70_000),
        "sub/deeper/deepest/d.txt": b"delta",
        "sub/block.bin": os.urandom(512),
        "z/last.txt": b"zulu",
        "z/run.sh": b"#!/bin/sh\necho hi\n",
    }
    for rel, data in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    (root / "emptydir").mkdir()
    os.chmod(root / "z" / "run.sh", 0o755)
    os.chmod(root / "a.txt", 0o600)
    os.utime(root / "a.txt", (1_600_000_000.75, 1_600_000_000.75))
    expected: Expected = {}
    mtimes: dict[str, int] = {}
    modes: dict[str, int] = {}
    for directory, _dirnames, filenames in os.walk(root):
        rel = os.path.relpath(directory, root)
        prefix = "tree" if rel == "." else "tree/" + rel.replace(os.sep, "/")
        st = os.stat(directory)
        expected[prefix + "/"] = None
        mtimes[prefix + "/"], modes[prefix + "/"] = int(st.st_mtime), st.st_mode
        for filename in filenames:
            full = os.path.join(directory, filename)
            st = os.stat(full)
            name = f"{prefix}/{filename}"
            with open(full, "rb") as f:
                expected[name] = f.read()
            mtimes[name], modes[name] = int(st.st_mtime), st.st_mode
    return expected, mtimes, modes


@pytest.mark.parametrize("compression", FORMATS)
def test_nested_tree(write, tmp_path, compression):
    root = tmp_path / "src"
    root.mkdir()
    expected, mtimes, modes = make_tree(root)
    ts = TarStream(compression)
    ts.add_path(root, "tree")
    assert sorted(ts.names) == sorted(expected)
    path = write(ts)
    check_tarfile(path, expected, mtimes=mtimes, modes=modes)
    assert mtimes["tree/a.txt"] == 1_600_000_000  # whole seconds: no pax header for it
    assert b"PaxHeaders" not in path.read_bytes() or compression is not None
    check_all_tar(path, expected)


@pytest.mark.parametrize("compression", FORMATS)
def test_mixed_sources(write, tmp_path, compression):
    on_disk = tmp_path / "disk.bin"
    on_disk.write_bytes(os.urandom(300_000))
    big = os.urandom(2_500_000) + b"text " * 400_000  # several gzip blocks
    handle = open(on_disk, "rb")
    ts = TarStream(compression, chunk_size=65536)
    ts.add(b"bytes\n", "bytes.txt", mtime=1_700_000_000, mode=0o640)
    ts.add("unicode ✓\n", "str.txt")
    ts.add(io.BytesIO(b"file object\n"), "fileobj.txt")
    ts.add(handle, "open-file.bin")
    ts.add_path(on_disk, "path.bin")
    ts.add(iter([b"it", b"er", b"able"]), "iterable.txt", size=8)
    ts.add(lambda: [b"call", b"able"], "callable.txt", size=8)
    ts.add(BytesSource(big), "source.bin")
    ts.add((bytes([i]) * 1000 for i in range(256)), "generator.bin", size=256_000)
    expected: Expected = {
        "bytes.txt": b"bytes\n",
        "str.txt": "unicode ✓\n".encode(),
        "fileobj.txt": b"file object\n",
        "open-file.bin": on_disk.read_bytes(),
        "path.bin": on_disk.read_bytes(),
        "iterable.txt": b"iterable",
        "callable.txt": b"callable",
        "source.bin": big,
        "generator.bin": b"".join(bytes([i]) * 1000 for i in range(256)),
    }
    path = write(ts)
    ts.close()
    assert handle.closed
    infos = check_tarfile(path, expected)
    assert infos["bytes.txt"].mtime == 1_700_000_000
    assert infos["bytes.txt"].mode == 0o640
    assert infos["str.txt"].mtime == DEFAULT_MTIME
    assert infos["str.txt"].mode == stat.S_IMODE(0o644)
    check_all_tar(path, expected)
