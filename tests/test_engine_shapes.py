"""Every archive shape the engine can produce, opened by every real reader.

Readers: Python zipfile, ``unzip -t``, ``7z t``, ``bsdtar`` from a file and from a pipe,
stream-unzip, and Java's ZipInputStream (for CRC-known stored and deflate entries).
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import pytest
from readers import (
    check_7z,
    check_all,
    check_bsdtar,
    check_bsdtar_file,
    check_bsdtar_pipe,
    check_java,
    check_stream_unzip,
    check_unzip,
    check_zipfile,
    ext_mtime,
    java_entries,
    parse_zip,
    sevenzip_names,
    stream_unzip_entries,
    unzip_names,
)

from zipwsgi import ZipStream
from zipwsgi.engine.stream import DEFAULT_MTIME

FLAG_DESCRIPTOR = 1 << 3
FLAG_UTF8 = 1 << 11
ROOT = Path(__file__).resolve().parent.parent

NON_ASCII = {
    "café/menu.txt": b"espresso\n",
    "Отчёт.txt": "Отчёт за квартал\n".encode(),
    "日本語/ファイル.txt": "こんにちは\n".encode(),
    "emoji 🎉.bin": bytes(range(256)),
    "ascii.txt": b"plain\n",
}


def make_tree(root: Path) -> dict[str, bytes | None]:
    """A small nested tree on disk; returns what add_path(root, "tree") must produce."""
    files = {
        "a.txt": b"alpha\n",
        "empty.dat": b"",
        "sub/b.txt": b"bravo\n" * 1000,
        "sub/deeper/c.bin": os.urandom(70_000),
        "sub/deeper/deepest/d.txt": b"delta",
        "z/last.txt": b"zulu",
    }
    for rel, data in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    (root / "emptydir").mkdir()
    expected: dict[str, bytes | None] = {}

    def walk(directory: Path, name: str) -> None:  # depth-first, children sorted by name
        expected[name + "/"] = None
        for child in sorted(directory.iterdir(), key=lambda p: p.name):
            if child.is_dir():
                walk(child, f"{name}/{child.name}")
            else:
                expected[f"{name}/{child.name}"] = child.read_bytes()

    walk(root, "tree")
    return expected


# --- the simplest shapes ---------------------------------------------------------------------


def test_empty_archive(save):
    zs = ZipStream()
    full = b"".join(zs)
    assert zs.size == len(zs) == len(full) == 22
    path = save(zs)
    check_all(path, {})


def test_empty_file_from_bytes(save):
    zs = ZipStream()
    zs.add(b"", "empty.txt")
    zs.add("", "empty-str.txt")
    path = save(zs)
    assert len(b"".join(zs)) == zs.size
    check_all(path, {"empty.txt": b"", "empty-str.txt": b""})
    # CRC known (crc32(b"") == 0): no data descriptor, so Java and streamers read it.
    assert all(not h.flags & FLAG_DESCRIPTOR for h in parse_zip(path).entries)


def test_empty_file_from_disk(save, tmp_path):
    """An empty file on disk (or any 0-byte source): its CRC is known (0) without reading
    it, so it needs no descriptor, and streaming readers and Java read it too."""
    (tmp_path / "empty.txt").write_bytes(b"")
    zs = ZipStream()
    zs.add_path(tmp_path / "empty.txt", "empty.txt")
    zs.add(lambda: b"", "empty-callable.txt", size=0)
    zs.add(iter([]), "empty-iter.txt", size=0)
    path = save(zs)
    assert all(not h.flags & FLAG_DESCRIPTOR for h in parse_zip(path).entries)
    check_all(path, {"empty.txt": b"", "empty-callable.txt": b"", "empty-iter.txt": b""})


def test_empty_directory(save, tmp_path):
    (tmp_path / "walked-empty").mkdir()
    zs = ZipStream()
    zs.mkdir("empty-folder")
    zs.mkdir("a/b/c/")
    zs.add_path(tmp_path / "walked-empty", "walked")
    path = save(zs)
    expected = {"empty-folder/": None, "a/b/c/": None, "walked/": None}
    assert zs.names == list(expected)
    check_all(path, expected)
    for header in parse_zip(path).entries:
        assert header.name.endswith(b"/")
        assert header.external_attr & 0x10
        assert (header.external_attr >> 16) & 0o170000 == 0o040000
        assert not header.flags & FLAG_DESCRIPTOR
        assert header.size == header.compressed_size == header.crc == 0


# --- names -------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["stored", "deflate"])
def test_non_ascii_names(save, compression):
    zs = ZipStream(compression)
    for name, data in NON_ASCII.items():
        zs.add(data, name)
    path = save(zs)
    check_all(path, NON_ASCII)
    for header in parse_zip(path).entries:
        name = header.name.decode("utf-8")
        assert bool(header.flags & FLAG_UTF8) == (not name.isascii()), name
        assert header.local_flags == header.flags
        assert 0x7075 not in header.central_extra  # UTF-8 names need no Unicode Path field
    assert sorted(unzip_names(path)) == sorted(NON_ASCII)
    assert sorted(sevenzip_names(path)) == sorted(NON_ASCII)


CYRILLIC = {"Отчёт.txt": b"report", "папка/файл.txt": b"file", "plain.txt": b"ascii"}


def test_charset_cp866_writes_legacy_names_and_unicode_path(save):
    zs = ZipStream(charset="cp866")
    for name, data in CYRILLIC.items():
        zs.add(data, name)
    zs.add(b"x", "Ωmega.txt")  # not in cp866: "_" in the header, the truth in 0x7075
    path = save(zs)
    expected = {**CYRILLIC, "Ωmega.txt": b"x"}
    for header in parse_zip(path).entries:
        assert not header.flags & FLAG_UTF8
        assert header.local_name == header.name
        name = header.name.decode("cp866")
        if name.isascii() and "_" not in name:
            assert 0x7075 not in header.central_extra
            continue
        for extra in (header.central_extra, header.local_extra):
            body = extra[0x7075]
            assert body[0] == 1
            assert int.from_bytes(body[1:5], "little") == zlib.crc32(header.name)
            real = body[5:].decode("utf-8")
            assert real in expected
    assert [h.name for h in parse_zip(path).entries] == [
        "Отчёт.txt".encode("cp866"), "папка/файл.txt".encode("cp866"), b"plain.txt",
        b"_mega.txt",
    ]
    # Readers that honour the Unicode Path field show the real names.
    assert sorted(unzip_names(path)) == sorted(expected)
    assert sorted(sevenzip_names(path)) == sorted(expected)
    check_unzip(path)
    check_7z(path)
    check_bsdtar(path, expected)
    # Readers that do not read 0x7075 see the header names, in cp866.
    legacy = {name.replace("Ω", "_"): data for name, data in expected.items()}
    check_zipfile(path, legacy, encoding="cp866")
    check_java(path, legacy, charset="IBM866")
    check_stream_unzip(path, legacy, encoding="cp866")


def test_charset_native_clears_utf8_flag(save):
    zs = ZipStream(charset="native")
    for name, data in NON_ASCII.items():
        zs.add(data, name)
    path = save(zs)
    for header in parse_zip(path).entries:
        assert not header.flags & FLAG_UTF8
        assert not header.local_flags & FLAG_UTF8
        assert 0x7075 not in header.central_extra
        assert header.name.decode("utf-8") in NON_ASCII  # raw UTF-8 bytes, unflagged
    check_zipfile(path, NON_ASCII, encoding="utf-8")
    check_unzip(path)
    check_7z(path)
    check_bsdtar(path, NON_ASCII)  # libarchive uses the (UTF-8) locale for unflagged names
    check_stream_unzip(path, NON_ASCII)
    check_java(path, NON_ASCII)  # Java decodes unflagged names with its charset: UTF-8


# --- trees from disk -------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["stored", "deflate"])
def test_nested_tree_add_path(save, tmp_path, compression):
    root = tmp_path / "src"
    root.mkdir()
    expected = make_tree(root)
    os.chmod(root / "a.txt", 0o755)
    stamp = 1_600_000_000
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            os.utime(os.path.join(dirpath, name), (stamp, stamp))
    zs = ZipStream(compression)
    zs.add_path(root, "tree")
    assert zs.names == list(expected)  # sorted walk, directories before their contents
    path = save(zs)
    mtimes = {name: stamp for name, data in expected.items() if data is not None}
    # Java cannot read stored entries with a descriptor (CRC unknown): deflate covers it.
    check_all(path, expected, java=compression == "deflate", mtimes=mtimes)
    attrs = {h.name.decode(): h.external_attr >> 16 for h in parse_zip(path).entries}
    assert attrs["tree/a.txt"] & 0o777 == 0o755
    assert attrs["tree/sub/b.txt"] & 0o777 == 0o644 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_add_path_default_arcname_and_single_file(save, tmp_path):
    root = tmp_path / "folder"
    root.mkdir()
    (root / "x.txt").write_bytes(b"x")
    (tmp_path / "x.txt").write_bytes(b"x")  # beside the folder: one inside it is refused
    zs = ZipStream()
    zs.add_path(root)
    zs.add_path(str(tmp_path / "x.txt"))
    assert zs.names == ["folder/", "folder/x.txt", "x.txt"]
    check_all(save(zs), {"folder/": None, "folder/x.txt": b"x", "x.txt": b"x"}, java=False)


# --- sources ---------------------------------------------------------------------------------


def _mixed(zs: ZipStream, tmp_path: Path, sized: bool) -> dict[str, bytes]:
    """Every kind of source; ``sized`` gives sizes to those that cannot see their own."""
    payload = {name: (name * 300).encode() for name in ("iter", "gen", "call", "fobj", "rawfile")}
    (tmp_path / "rawfile.bin").write_bytes(payload["rawfile"])

    def gen():
        data = payload["gen"]
        for i in range(0, len(data), 7):
            yield data[i : i + 7]

    def size_of(name: str):
        return len(payload[name]) if sized else None

    zs.add(b"bytes\x00data", "bytes.bin")
    zs.add(bytearray(b"bytearray"), "bytearray.bin")
    zs.add(memoryview(b"memoryview"), "memoryview.bin")
    zs.add("str → UTF-8", "str.txt")
    zs.add([payload["iter"][:5], payload["iter"][5:]], "iterable.txt", size=size_of("iter"))
    zs.add(gen(), "generator.txt", size=size_of("gen"))
    zs.add(lambda: io.BytesIO(payload["call"]), "callable-fileobj.txt", size=size_of("call"))
    zs.add(lambda: [payload["call"]], "callable-iterable.txt", size=size_of("call"))
    zs.add(lambda: payload["call"], "callable-bytes.txt", size=size_of("call"))
    zs.add(io.BytesIO(payload["fobj"]), "bytesio.txt")
    zs.add(open(tmp_path / "rawfile.bin", "rb"), "fileobj.bin")  # noqa: SIM115 - zs closes it
    return {
        "bytes.bin": b"bytes\x00data",
        "bytearray.bin": b"bytearray",
        "memoryview.bin": b"memoryview",
        "str.txt": "str → UTF-8".encode(),
        "iterable.txt": payload["iter"],
        "generator.txt": payload["gen"],
        "callable-fileobj.txt": payload["call"],
        "callable-iterable.txt": payload["call"],
        "callable-bytes.txt": payload["call"],
        "bytesio.txt": payload["fobj"],
        "fileobj.bin": payload["rawfile"],
    }


def test_mixed_sources_deflate(save, tmp_path):
    with ZipStream("deflate") as zs:
        expected = _mixed(zs, tmp_path, sized=False)
        assert zs.size is None
        path = save(zs)
    check_all(path, expected)


def test_mixed_sources_stored_sized(save, tmp_path):
    with ZipStream() as zs:
        expected = _mixed(zs, tmp_path, sized=True)
        assert zs.size is not None
        path = save(zs)
        assert path.stat().st_size == zs.size
    # Entries without a given CRC carry a descriptor: not for Java (see test_crc_given_*).
    check_all(path, expected, java=False)


def test_mixed_sources_stored_unsized(save, tmp_path):
    """Stored data of unknown size: the local header cannot carry sizes."""
    with ZipStream() as zs:
        expected = _mixed(zs, tmp_path, sized=False)
        assert zs.size is None
        with pytest.raises(TypeError):
            len(zs)
        path = save(zs)
    check_all(path, expected, java=False, streaming=False)


def test_reader_findings_stored_with_descriptor(save, tmp_path):
    """What streaming readers accept for STORED entries with a data descriptor.

    - sizes in the local header (the engine's choice for known sizes): stream-unzip and
      bsdtar from a pipe both read them;
    - sizes unknown (0 in the local header): bsdtar from a pipe still reads them (libarchive
      scans for the descriptor), stream-unzip refuses (NotStreamUnzippable), and Java
      refuses any STORED entry with a descriptor.
    """
    from stream_unzip import NotStreamUnzippable

    data = b"known size, unknown crc " * 100
    sized = ZipStream()
    sized.add(lambda: data, "sized.txt", size=len(data))
    sized_path = save(sized, "sized.zip")
    header = parse_zip(sized_path).entries[0]
    assert header.local_flags & FLAG_DESCRIPTOR
    assert header.local_size == header.local_compressed_size == len(data)
    assert header.local_crc == 0
    check_stream_unzip(sized_path, {"sized.txt": data})
    check_bsdtar(sized_path, {"sized.txt": data})
    with pytest.raises(AssertionError, match="only DEFLATED entries can have EXT descriptor"):
        check_java(sized_path, {"sized.txt": data})

    unsized = ZipStream()
    unsized.add(lambda: data, "unsized.txt")
    unsized_path = save(unsized, "unsized.zip")
    header = parse_zip(unsized_path).entries[0]
    assert header.local_size == header.local_compressed_size == 0
    check_bsdtar(unsized_path, {"unsized.txt": data})
    with pytest.raises(NotStreamUnzippable):
        stream_unzip_entries(unsized_path)


@pytest.mark.parametrize("compression", ["stored", "deflate"])
def test_per_entry_compression_mix(save, tmp_path, compression):
    text = b"compressible text " * 5000
    other = "deflate" if compression == "stored" else "stored"
    zs = ZipStream(compression)
    zs.add(text, "default.txt")
    zs.add(text, "override.txt", compression=other)
    zs.add(text, "level1.txt", compression="deflate", level=1)
    zs.add(text, "level9.txt", compression="deflate", level=9)
    zs.add(os.urandom(1000), "stored-random.bin", compression="stored")
    path = save(zs)
    methods = {h.name.decode(): h.method for h in parse_zip(path).entries}
    assert methods["default.txt"] == (0 if compression == "stored" else 8)
    assert methods["override.txt"] == (8 if compression == "stored" else 0)
    assert methods["level1.txt"] == methods["level9.txt"] == 8
    assert methods["stored-random.bin"] == 0
    expected = {name: text for name in ("default.txt", "override.txt", "level1.txt",
                                         "level9.txt")}
    with zipfile.ZipFile(path) as zf:
        expected["stored-random.bin"] = zf.read("stored-random.bin")
    assert expected["default.txt"] == text
    check_all(path, expected)
    sizes = {h.name.decode(): h.compressed_size for h in parse_zip(path).entries}
    assert sizes["level1.txt"] < len(text) // 10
    assert sizes["level9.txt"] <= sizes["level1.txt"]


# --- CRC known in advance ------------------------------------------------------------------


def test_crc_given_stored_entries_have_no_descriptor_and_java_reads_them(save, tmp_path):
    data = os.urandom(50_000)
    disk = tmp_path / "f.bin"
    disk.write_bytes(data)
    zs = ZipStream()
    zs.add(lambda: data, "callable.bin", size=len(data), crc=zlib.crc32(data))
    zs.add_path(disk, "file.bin", crc=zlib.crc32(data))
    zs.add(data, "bytes.bin")  # bytes: the engine computes the CRC when adding
    zs.add(iter([data[:10], data[10:]]), "iter.bin", size=len(data), crc=zlib.crc32(data))
    zs.mkdir("dir")
    path = save(zs)
    directory = parse_zip(path)
    for header in directory.entries:
        assert not header.flags & FLAG_DESCRIPTOR, header.name
        assert not header.local_flags & FLAG_DESCRIPTOR, header.name
        assert header.local_crc == header.crc
        assert header.local_size == header.size
    # No descriptor anywhere: each entry's data ends exactly where the next header starts.
    ends = [h.data_offset + h.compressed_size for h in directory.entries]
    starts = [h.real_offset for h in directory.entries[1:]] + [directory.cd_offset]
    assert ends == starts
    expected = {"callable.bin": data, "file.bin": data, "bytes.bin": data, "iter.bin": data,
                "dir/": None}
    check_all(path, expected, java=True)
    assert len(java_entries(path)) == 5


def test_crc_unknown_stored_entries_get_signed_descriptor(save, tmp_path):
    data = b"descriptor me" * 10
    zs = ZipStream()
    zs.add(lambda: data, "a.txt", size=len(data))
    path = save(zs)
    header = parse_zip(path).entries[0]
    assert header.flags & FLAG_DESCRIPTOR
    with open(path, "rb") as f:
        f.seek(header.data_offset + len(data))
        sig, crc, csize, size = struct.unpack("<IIII", f.read(16))
    assert sig == 0x08074B50
    assert crc == zlib.crc32(data) == header.crc
    assert csize == size == len(data)


# --- size, passes, determinism -------------------------------------------------------------------


def test_size_len_and_two_passes(tmp_path):
    (tmp_path / "f.txt").write_bytes(b"file" * 1000)
    zs = ZipStream(chunk_size=1000)
    zs.add(b"a" * 5000, "a")
    zs.add_path(tmp_path / "f.txt", "f.txt")
    zs.add(lambda: [b"x" * 300] * 10, "x", size=3000)
    zs.mkdir("d")
    first = b"".join(zs)
    second = b"".join(zs)
    assert first == second
    assert zs.size == len(zs) == len(first)
    assert max(len(c) for c in zs) <= 2 * 1000


def test_len_raises_type_error_when_size_unknown():
    deflated = ZipStream("deflate")
    deflated.add(b"x", "x")
    assert deflated.size is None
    with pytest.raises(TypeError):
        len(deflated)
    unsized = ZipStream()
    unsized.add(lambda: b"x", "x")
    assert unsized.size is None
    with pytest.raises(TypeError):
        len(unsized)
    deflated_dirs_only = ZipStream("deflate")
    deflated_dirs_only.mkdir("d")
    assert len(deflated_dirs_only) == len(b"".join(deflated_dirs_only))


def test_default_mtime_is_the_zip_epoch(save):
    zs = ZipStream()
    zs.add(b"x", "x")
    zs.add(b"y", "y", mtime=1_700_000_000)
    path = save(zs)
    check_zipfile(path, {"x": b"x", "y": b"y"}, mtimes={"x": DEFAULT_MTIME, "y": 1_700_000_000})
    for header in parse_zip(path).entries:
        # local and central extended timestamps agree; DOS time is UTC
        assert ext_mtime(_join(header.local_extra)) == ext_mtime(_join(header.central_extra))


def _join(fields: dict[int, bytes]) -> bytes:
    return b"".join(struct.pack("<HH", tag, len(body)) + body for tag, body in fields.items())


_BUILD = r"""
import os, sys
sys.path.insert(0, {root!r})
from zipwsgi import ZipStream
src = {src!r}
for compression in ("stored", "deflate"):
    zs = ZipStream(compression)
    zs.add_path(src, "tree")
    zs.add(b"bytes", "bytes.txt")
    zs.add("Отчёт", "Отчёт.txt")
    zs.add(lambda: [b"gen"] * 100, "callable.txt")
    zs.mkdir("empty")
    sys.stdout.buffer.write(b"".join(zs))
"""


def test_deterministic_across_processes(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    make_tree(src)
    script = _BUILD.format(root=str(ROOT), src=str(src))
    outputs = [
        subprocess.run([sys.executable, "-c", script], capture_output=True, check=True,
                       env={**os.environ, "TZ": tz}).stdout
        for tz in ("UTC", "Asia/Kolkata")
    ]
    assert len(outputs[0]) > 100_000
    assert hashlib.sha256(outputs[0]).hexdigest() == hashlib.sha256(outputs[1]).hexdigest()


# --- the oracles themselves -----------------------------------------------------------------------


def test_every_reader_rejects_a_corrupt_archive(save, tmp_path):
    """The checks are not vacuous: one flipped data byte fails each reader."""
    data = b"0123456789abcdef" * 64
    zs = ZipStream()
    zs.add(data, "victim.txt")  # stored, CRC known: corruption is only visible via the CRC
    zs.add(b"tail", "tail.txt")
    good = b"".join(zs)
    header = parse_zip(save(zs, "good.zip")).entries[0]
    bad = bytearray(good)
    bad[header.data_offset + 100] ^= 0x01
    path = tmp_path / "bad.zip"
    path.write_bytes(bytes(bad))
    expected = {"victim.txt": data, "tail.txt": b"tail"}
    for check in (
        lambda: check_zipfile(path, expected),
        lambda: check_unzip(path),
        lambda: check_7z(path),
        lambda: check_bsdtar_file(path, expected),
        lambda: check_bsdtar_pipe(path, expected),
        lambda: check_stream_unzip(path, expected),
        lambda: check_java(path, expected),
    ):
        with pytest.raises(AssertionError):
            check()
    # and a wrong expectation fails on a good archive
    good_path = save(zs, "good2.zip")
    wrong = {"victim.txt": data[:-1] + b"?", "tail.txt": b"tail"}
    for check in (check_zipfile, check_bsdtar_file, check_stream_unzip, check_java):
        with pytest.raises(AssertionError):
            check(good_path, wrong)
    with pytest.raises(AssertionError):
        check_zipfile(good_path, {"victim.txt": data})


@pytest.mark.parametrize("mtime", [-5, 0, 315532799, 1_000_000_001, 2**31 + 100, 5e9, 1.7e9 + 0.9])
def test_extreme_mtimes(save, mtime):
    zs = ZipStream()
    zs.add(b"x", "x", mtime=mtime)
    path = save(zs)
    check_all(path, {"x": b"x"})
    header = parse_zip(path).entries[0]
    assert ext_mtime(_join(header.central_extra)) == max(0, min(int(mtime), 2**31 - 1))


@pytest.mark.parametrize("require", [False, True])
def test_a_missing_reader_skips_or_fails(monkeypatch, require):
    import readers

    monkeypatch.setattr(readers.shutil, "which", lambda name: None)
    monkeypatch.setattr(readers, "REQUIRE_READERS", require)
    expected_outcome = pytest.fail.Exception if require else pytest.skip.Exception
    with pytest.raises(expected_outcome, match="unzip"):
        readers.check_unzip("/nonexistent.zip")


def test_walked_files_are_read_from_where_they_were_found(tmp_path, save):
    """Walked files rebuild their paths from their folder and archive name; files whose
    name was rewritten (a backslash) or that are links keep their own path. All of them
    must read back their own bytes, also in a second pass over a folder with the same
    name elsewhere (paths are per walk, not per name)."""
    root = tmp_path / "tree"
    (root / "sub" / "deeper").mkdir(parents=True)
    files = {
        "plain.txt": b"plain",
        "sub/inner.txt": b"inner",
        "sub/deeper/deep.txt": b"deep",
        "back\\slash.txt": b"backslash",
    }
    for rel, data in files.items():
        (root / rel).write_bytes(data)
    os.symlink("sub/inner.txt", root / "link.txt")
    other = tmp_path / "elsewhere" / "tree"
    other.mkdir(parents=True)
    (other / "plain.txt").write_bytes(b"other plain")

    zs = ZipStream()
    zs.add_path(root, "a/tree")
    zs.add_path(other, "b/tree")
    expected = {
        "a/": None, "b/": None, "a/tree/": None, "a/tree/sub/": None,
        "a/tree/sub/deeper/": None, "b/tree/": None,
        "a/tree/plain.txt": b"plain",
        "a/tree/sub/inner.txt": b"inner",
        "a/tree/sub/deeper/deep.txt": b"deep",
        "a/tree/back/slash.txt": b"backslash",
        "a/tree/link.txt": b"inner",
        "b/tree/plain.txt": b"other plain",
    }
    expected = {name: data for name, data in expected.items() if name in zs.names}
    assert {n for n in zs.names if not n.endswith("/")} == {
        n for n, d in expected.items() if d is not None
    }
    path = save(zs)
    check_all(path, expected, java=False)
    assert Path(save(zs)).read_bytes() == Path(path).read_bytes()  # a second pass


def test_a_callable_may_return_str_as_add_accepts_it() -> None:
    """The README promises str wherever bytes go; a callable's str is written as UTF-8."""
    zs = ZipStream()
    zs.add(lambda: "héllo\n", "late.txt", size=len("héllo\n".encode()))
    with zipfile.ZipFile(io.BytesIO(b"".join(zs))) as archive:
        assert archive.read("late.txt") == "héllo\n".encode()
