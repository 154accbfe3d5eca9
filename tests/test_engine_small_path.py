"""The writer's small-file path against its general path: the same bytes, the same checks.

The small-file path (``Writer._sized``) reads a whole entry at once and packs its records,
central record included (``ZipLayout.records_central``), while it writes the entry; the
general path streams the entry through a reader and packs the central directory in the
trailer. A chunk size smaller than every file sends each file through the general path,
so every archive here is built both ways and compared byte for byte.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import drain
from readers import check_7z, check_bsdtar, check_unzip, check_zipfile

from zipwsgi import SourceChangedError, TarStream, ZipStream
from zipwsgi.engine import smallfiles
from zipwsgi.formats.entry import Entry
from zipwsgi.formats.zip import records as zf
from zipwsgi.formats.zip.layout import ZipLayout

MTIME = 1_700_000_000

NAMES = [
    "a.txt",
    "d/b.bin",
    "d/é-utf8.txt",  # the UTF-8 flag
    "d/" + "n" * 200 + "/" + "o" * 100,  # a long name, still shaped
    "e/" + "/".join(["m" * 250] * 5),  # longer than any shape: the general code
    "e/empty",
]


def _tree(root: Path, names: list[str] = NAMES) -> dict[str, bytes]:
    contents = {}
    for index, name in enumerate(names):
        path = root / "top" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        data = b"" if name.endswith("empty") else os.urandom(1 + index * 1500)
        path.write_bytes(data)
        os.utime(path, (MTIME + index, MTIME + index))
        contents["top/" + name] = data
    for folder in (root / "top").rglob("*"):
        if folder.is_dir():
            os.utime(folder, (MTIME, MTIME))
    return contents


def _with_folders(contents: dict[str, bytes]) -> dict[str, bytes | None]:
    """``contents`` and every folder above its files (as readers list them)."""
    expected: dict[str, bytes | None] = dict(contents)
    for name in contents:
        parts = name.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            expected["/".join(parts[:depth]) + "/"] = None
    return expected


def _zip(root: Path, chunk_size: int = 256 * 1024, **options: object) -> ZipStream:
    zs = ZipStream(compression="stored", chunk_size=chunk_size, **options)  # type: ignore[arg-type]
    zs.add_path(str(root / "top"), "top")
    return zs


@pytest.mark.parametrize("options", [{}, {"precompute_crc": True}, {"charset": "cp437"}])
def test_small_path_writes_what_the_general_path_writes(tmp_path: Path, options: dict) -> None:
    _tree(tmp_path)
    fast = drain(_zip(tmp_path, **options))
    general = drain(_zip(tmp_path, chunk_size=1, **options))
    assert fast == general
    # A second pass (now every CRC is known) gives the same bytes again.
    zs = _zip(tmp_path, **options)
    assert drain(zs) == drain(zs) == fast


def test_ranges_and_a_capped_central_directory_give_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tree(tmp_path)
    whole = drain(_zip(tmp_path))
    zs = _zip(tmp_path)
    for start in (0, 1, 100, len(whole) // 2, len(whole) - 30):
        assert drain(zs.app_iter_range(start, None)) == whole[start:]
        assert drain(zs.app_iter_range(start, len(whole) - 1)) == whole[start:-1]
    # Central records packed ahead for only the first entries; the trailer packs the rest.
    # (A chunk of 2 KiB flushes, and so checks the cap, every file or two.)
    for cap in (0, 1, 200, 500):
        monkeypatch.setattr(smallfiles, "CENTRAL_CAP", cap)
        assert drain(_zip(tmp_path)) == whole
        assert drain(_zip(tmp_path, chunk_size=2048)) == whole


def test_a_big_file_between_small_ones_keeps_the_central_records_in_order(
    tmp_path: Path,
) -> None:
    contents = _tree(tmp_path, ["a/1", "b/big", "c/3", "c/4"])
    big = os.urandom(300_000)
    (tmp_path / "top" / "b" / "big").write_bytes(big)
    contents["top/b/big"] = big
    fast = drain(_zip(tmp_path, chunk_size=64 * 1024))  # big takes the general path
    assert fast == drain(_zip(tmp_path, chunk_size=1))
    path = tmp_path / "out.zip"
    path.write_bytes(fast)
    check_zipfile(path, _with_folders(contents))


def test_records_central_is_records_and_central_record(monkeypatch: pytest.MonkeyPatch) -> None:
    def entry(name: str, size: int, crc: int | None) -> Entry:
        e = Entry(name, False, None, size, MTIME, 0o100640, "stored", None, crc)
        return e

    cases = [("plain.txt", 10, None), ("crc-given", 5, 123), ("ü/ß", 7, None),
             ("x" * 1100, 3, None), ("big", 2000, None)]
    for charset in (None, "cp437"):
        layout = ZipLayout(charset=charset)
        for name, size, crc in cases:
            e = entry(name, size, crc)
            layout.prepare(e)
            for offset in (0, 999, zf.ZIP64_LIMIT - 1, zf.ZIP64_LIMIT):
                central = bytearray(b"before")
                got = layout.records_central(e, offset, 0xDEADBEEF, central)
                assert got == layout.records(e, offset, 0xDEADBEEF)
                assert got == (layout.header(e, offset) if crc is None else got[0],
                               layout.footer(e, 0xDEADBEEF, size, size))
                record = (offset, 0xDEADBEEF, size, size)
                assert bytes(central) == b"before" + layout.central_record(e, record)
    # Entries that need zip64 (a lowered limit) take the general code, same bytes.
    monkeypatch.setattr(zf, "ZIP64_LIMIT", 1000)
    layout = ZipLayout()
    e = entry("big", 2000, None)
    layout.prepare(e)
    central = bytearray()
    assert layout.records_central(e, 5, 1, central) == layout.records(e, 5, 1)
    assert bytes(central) == layout.central_record(e, (5, 1, 2000, 2000))


def test_real_readers_accept_the_small_path(tmp_path: Path) -> None:
    contents = _tree(tmp_path, NAMES[:4] + ["f/g/h.txt"])
    path = tmp_path / "fast.zip"
    path.write_bytes(drain(_zip(tmp_path)))
    expected = _with_folders(contents)
    check_zipfile(path, expected)
    check_unzip(path)
    check_7z(path)
    check_bsdtar(path, expected)


def test_tar_small_path_writes_what_the_general_path_writes(tmp_path: Path) -> None:
    _tree(tmp_path, NAMES[:4] + ["f/g/h.txt"])

    def tar(chunk_size: int) -> bytes:
        ts = TarStream(chunk_size=chunk_size)
        ts.add_path(str(tmp_path / "top"), "top")
        return drain(ts)

    assert tar(256 * 1024) == tar(1)


@pytest.mark.parametrize("change", ["same-size", "grow", "mtime"])
def test_a_file_changed_before_the_small_path_reads_it_is_refused(
    tmp_path: Path, change: str
) -> None:
    _tree(tmp_path)
    zs = _zip(tmp_path)
    first = drain(zs)  # the CRCs are now known
    victim = tmp_path / "top" / "d" / "b.bin"
    data = victim.read_bytes()
    if change == "same-size":  # size and mtime kept: only the CRC can tell
        victim.write_bytes(bytes(b ^ 1 for b in data))
        os.utime(victim, (MTIME + 1, MTIME + 1))
    elif change == "grow":
        victim.write_bytes(data + b"x")
        os.utime(victim, (MTIME + 1, MTIME + 1))
    else:
        os.utime(victim, (MTIME + 5, MTIME + 5))
    with pytest.raises(SourceChangedError):
        drain(zs)
    assert first


def test_a_folder_gone_before_the_pass_reaches_it_is_refused(tmp_path: Path) -> None:
    """Walked files are opened relative to their folder's descriptor: a folder renamed
    away after planning cannot be opened, and its files then fail by their paths."""
    _tree(tmp_path)
    zs = _zip(tmp_path)
    (tmp_path / "top" / "d").rename(tmp_path / "elsewhere")
    with pytest.raises(SourceChangedError, match="vanished"):
        drain(zs)


def test_a_pass_closed_mid_run_leaves_no_descriptor_open(tmp_path: Path) -> None:
    for i in range(3):
        (tmp_path / "top" / f"d{i}").mkdir(parents=True)
        for j in range(40):
            (tmp_path / "top" / f"d{i}" / f"f{j}").write_bytes(os.urandom(1000 + j))
    zs = _zip(tmp_path, chunk_size=16 * 1024)  # every file in the run, 16 files a chunk
    before = set(os.listdir("/proc/self/fd"))
    for _ in range(3):
        chunks = iter(zs)
        next(chunks)
        next(chunks)
        assert len(set(os.listdir("/proc/self/fd")) - before) <= 1  # the folder's
        chunks.close()  # type: ignore[attr-defined]
        assert set(os.listdir("/proc/self/fd")) <= before
    assert drain(zs) == drain(_zip(tmp_path, chunk_size=512))  # the general path
