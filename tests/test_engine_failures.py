"""What the engine refuses: changed sources, wrong CRCs, spent iterators, unsafe names,
duplicates, and symlinks that leave a walked directory."""

from __future__ import annotations

import io
import logging
import os
import zlib
from pathlib import Path

import pytest
from conftest import drain
from hypothesis import given, settings
from hypothesis import strategies as st
from readers import (
    check_7z,
    check_all,
    check_bsdtar,
    check_java,
    check_stream_unzip,
    check_unzip,
    check_zipfile,
    parse_zip,
)

from zipwsgi import (
    ArchiveNameError,
    DuplicateNameError,
    SourceChangedError,
    SourceError,
    SourceUnavailableError,
    ZipStream,
)
from zipwsgi.paths import normalise_name

COMPRESSIONS = ["stored", "deflate"]


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    path = tmp_path / "victim.bin"
    path.write_bytes(os.urandom(64 * 1024))
    return path


# --- files that change between add and streaming -----------------------------------------------


def _shrink(path: Path) -> None:
    os.truncate(path, path.stat().st_size - 1)


def _grow(path: Path) -> None:
    with open(path, "ab") as f:
        f.write(b"more")


def _vanish(path: Path) -> None:
    path.unlink()


def _touch(path: Path) -> None:  # same size, new mtime: contents may differ
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def _rewrite_same_size(path: Path) -> None:
    st = path.stat()
    path.write_bytes(os.urandom(st.st_size))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000))


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("change", [_shrink, _grow, _vanish, _touch, _rewrite_same_size])
def test_file_changed_between_add_and_streaming(victim, compression, change, open_fds):
    zs = ZipStream(compression)
    zs.add(b"before", "before.txt")
    zs.add_path(victim, "victim.bin")
    zs.add(b"after", "after.txt")
    change(victim)
    before = open_fds()
    with pytest.raises(SourceChangedError, match="victim"):
        drain(zs)
    assert open_fds() == before
    if compression == "stored":  # a range that touches the file raises too
        with pytest.raises(SourceChangedError):
            drain(zs.app_iter_range(100, 200))
        assert drain(zs.app_iter_range(0, 20)) == drain_prefix(zs, 20)


def drain_prefix(zs: ZipStream, n: int) -> bytes:
    """The first n bytes via a range (header bytes only: no source is needed)."""
    return drain(zs.app_iter_range(0, n))


def _until_open(it, open_fds, before: int, limit: int = 10_000) -> bytes:
    """Iterate until the pass holds the file open (deflate may read ahead before it
    yields); returns what it yielded so far."""
    got = b""
    for _ in range(limit):
        got += next(it)
        if open_fds() == before + 1:
            return got
    raise AssertionError("the pass never yielded while the file was open")


BIG = 16 << 20  # past any deflate read-ahead budget


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_file_shrinking_mid_stream_raises_during_iteration(victim, compression, open_fds):
    victim.write_bytes(os.urandom(BIG))
    zs = ZipStream(compression, level=1, chunk_size=4096)
    zs.add_path(victim, "victim.bin")
    before = open_fds()
    it = iter(zs)
    got = _until_open(it, open_fds, before)
    os.truncate(victim, BIG // 2)
    with pytest.raises(SourceChangedError, match="victim"):
        for chunk in it:
            got += chunk
    assert open_fds() == before  # the file was closed on the way out
    assert len(got) < BIG


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_file_growing_mid_stream_raises(victim, compression, open_fds):
    victim.write_bytes(os.urandom(BIG))
    zs = ZipStream(compression, level=1, chunk_size=4096)
    zs.add_path(victim, "victim.bin")
    before = open_fds()
    it = iter(zs)
    _until_open(it, open_fds, before)
    _grow(victim)
    with pytest.raises(SourceChangedError, match="victim"):
        drain(it)
    assert open_fds() == before


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("delta", [-1, +1])
def test_sized_iterable_that_breaks_its_promise(compression, delta):
    zs = ZipStream(compression)
    zs.add(lambda: [b"x" * 50, b"y" * 50], "lying.txt", size=100 + delta)
    with pytest.raises(SourceChangedError, match="lying"):
        drain(zs)


def test_bytes_with_a_size_that_disagrees():
    with pytest.raises(ValueError):
        ZipStream().add(b"abc", "a", size=4)


# --- CRCs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_wrong_crc_raises(victim, compression):
    data = b"some data" * 100
    wrong = zlib.crc32(data) ^ 1
    for add in (
        lambda zs: zs.add(data, "e", crc=wrong),
        lambda zs: zs.add(lambda: data, "e", size=len(data), crc=wrong),
        lambda zs: zs.add(lambda: iter([data]), "e", crc=wrong),
        lambda zs: zs.add_path(victim, "e", crc=zlib.crc32(victim.read_bytes()) ^ 0x80000000),
    ):
        zs = ZipStream(compression)
        add(zs)
        with pytest.raises(SourceChangedError, match="CRC"):
            drain(zs)


def test_crc_out_of_range():
    with pytest.raises(ValueError):
        ZipStream().add(b"x", "x", crc=1 << 32)
    with pytest.raises(ValueError):
        ZipStream().add(b"x", "x", crc=-1)


# --- one-shot sources --------------------------------------------------------------------------


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_one_shot_generator_iterated_twice(compression):
    def gen():
        yield b"once"

    zs = ZipStream(compression)
    zs.add(gen(), "gen.txt", size=4)
    first = drain(zs)
    assert b"once" in first or compression == "deflate"
    with pytest.raises(SourceError, match="one-shot"):
        drain(zs)
    zs.close()


def test_one_shot_iterator_with_range_then_pass():
    zs = ZipStream()
    zs.add(iter([b"a" * 100]), "it.txt", size=100, crc=zlib.crc32(b"a" * 100))
    drain(zs.app_iter_range(0, 10))  # header only: nothing consumed
    drain(zs.app_iter_range(50, 60))  # consumes the iterator
    with pytest.raises(SourceError):
        drain(zs)


def test_unseekable_file_object_twice():
    class Pipe(io.RawIOBase):
        def __init__(self) -> None:
            self.data = io.BytesIO(b"streamed once")

        def readable(self) -> bool:
            return True

        def readinto(self, b) -> int:
            chunk = self.data.read(len(b))
            b[: len(chunk)] = chunk
            return len(chunk)

    with ZipStream() as zs:
        zs.add(Pipe(), "pipe.txt")
        assert zs.size is None
        drain(zs)
        with pytest.raises(SourceError):
            drain(zs)


def test_callable_that_cannot_open():
    def opener():
        raise FileNotFoundError("/nowhere")

    zs = ZipStream()
    zs.add(opener, "x", size=1)
    with pytest.raises(SourceUnavailableError, match="'x'"):
        drain(zs)


def test_add_path_missing():
    with pytest.raises(SourceUnavailableError):
        ZipStream().add_path("/definitely/not/here", "x")


def test_interleaved_passes_over_a_file_object():
    data = os.urandom(100_000)
    with ZipStream(chunk_size=1000) as zs:
        zs.add(io.BytesIO(data), "f")
        full = drain(zs)
        a, b = interleave(iter(zs), iter(zs))
        assert a == full
        assert b == full


def test_interleaved_passes_over_files_and_callables(tmp_path):
    data = os.urandom(100_000)
    (tmp_path / "f").write_bytes(data)
    zs = ZipStream(chunk_size=1000)
    zs.add_path(tmp_path / "f", "f")
    zs.add(lambda: io.BytesIO(data), "c", size=len(data))
    zs.add([data], "l", size=len(data))
    full = drain(zs)
    a, b = interleave(iter(zs), zs.app_iter_range(500, None))
    assert a == full
    assert b == full[500:]


def interleave(first, second) -> tuple[bytes, bytes]:
    """Drain two passes in lock step, one chunk of each at a time."""
    outs: tuple[list[bytes], list[bytes]] = ([], [])
    live = [(first, outs[0]), (second, outs[1])]
    while live:
        for pair in list(live):
            chunk = next(pair[0], None)
            if chunk is None:
                live.remove(pair)
            else:
                pair[1].append(chunk)
    return b"".join(outs[0]), b"".join(outs[1])


# --- names -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["..", "../etc/passwd", "a/../../b", "a/..", "a\\..\\b", "C:\\..\\x", "/../x", "a\x00b",
     "\x00"],
)
def test_unsafe_names_are_refused_with_the_name(name):
    zs = ZipStream()
    with pytest.raises(ArchiveNameError) as info:
        zs.add(b"x", name)
    assert repr(name) in str(info.value)
    assert isinstance(info.value, ValueError)
    with pytest.raises(ArchiveNameError):
        zs.mkdir(name)
    assert zs.names == []


@pytest.mark.parametrize(
    "name,normal",
    [
        ("a\\b\\c.txt", "a/b/c.txt"),
        ("/etc/passwd", "etc/passwd"),
        ("//server/share/x", "server/share/x"),
        ("C:\\Users\\x.txt", "Users/x.txt"),
        ("c:/x.txt", "x.txt"),
        ("C:relative.txt", "relative.txt"),
        ("./a/./b/.", "a/b"),
        ("a//b", "a/b"),
        ("...", "..."),
        ("..a/b..", "..a/b.."),
        ("dir/", "dir"),
    ],
)
def test_names_are_normalised(name, normal, save):
    zs = ZipStream()
    zs.add(b"x", name)
    assert zs.names == [normal]
    path = save(zs)
    check_all(path, {normal: b"x"})


def test_directory_names_are_normalised():
    zs = ZipStream()
    zs.mkdir("\\a\\b")
    zs.mkdir("C:/c/./")
    assert zs.names == ["a/b/", "c/"]


def _reference_normalise(name: str, is_dir: bool) -> str:
    """The normalisation rules spelled out step by step (no shortcuts), for comparison."""
    if "\x00" in name:
        raise ArchiveNameError(name)
    parts = []
    for part in name.replace("\\", "/").split("/"):
        # A drive prefix starting any segment is dropped, as often as it repeats.
        while len(part) >= 2 and part[1] == ":" and part[0].isascii() and part[0].isalpha():
            part = part[2:]
        if part not in ("", "."):
            parts.append(part)
    if ".." in parts or not parts:
        raise ArchiveNameError(name)
    return "/".join(parts) + ("/" if is_dir else "")


@settings(max_examples=400, deadline=None)
@given(
    name=st.text(alphabet=st.sampled_from(list("ab./\\:C\x00 é")), max_size=12),
    is_dir=st.booleans(),
)
def test_name_normalisation_matches_the_rules(name, is_dir):
    """The fast path for already-canonical names agrees with the full rules everywhere."""
    try:
        expected = _reference_normalise(name, is_dir)
    except ArchiveNameError:
        with pytest.raises(ArchiveNameError):
            normalise_name(name, is_dir=is_dir)
        return
    assert normalise_name(name, is_dir=is_dir) == expected


@pytest.mark.parametrize("name", ["", "/", ".", "./", "C:", "\\\\"])
def test_names_empty_after_normalisation(name):
    with pytest.raises(ArchiveNameError):
        ZipStream().add(b"x", name)


def test_duplicates_are_refused(tmp_path):
    zs = ZipStream()
    zs.add(b"x", "a/b.txt")
    for again in ("a/b.txt", "/a/b.txt", "a\\b.txt", "./a/./b.txt", "C:\\a\\b.txt"):
        with pytest.raises(DuplicateNameError, match="a/b.txt"):
            zs.add(b"y", again)
    zs.mkdir("d")
    with pytest.raises(DuplicateNameError):
        zs.mkdir("/d/")
    (tmp_path / "d").mkdir()
    with pytest.raises(DuplicateNameError):
        zs.add_path(tmp_path / "d", "d")
    assert zs.names == ["a/b.txt", "d/"]
    allowed = ZipStream(allow_duplicates=True)
    allowed.add(b"x", "same")
    allowed.add(b"y", "same")
    assert allowed.names == ["same", "same"]


def test_undecodable_file_names_are_written_as_raw_bytes(tmp_path, save):
    """A file name that is not UTF-8 on disk (Python sees surrogate escapes) goes into the
    archive as its exact bytes, without the UTF-8 flag, and extracts to the same name."""
    root = tmp_path / "folder"
    root.mkdir()
    (root / "ok.txt").write_bytes(b"ok")
    try:
        with open(os.path.join(os.fsencode(root), b"caf\xe9.txt"), "wb") as f:
            f.write(b"latin-1 name")
    except OSError:
        pytest.skip("file system refuses non-UTF-8 names")
    zs = ZipStream("deflate")  # so Java can read the files from disk too
    zs.add_path(root, "folder")
    zs.add(b"x", "direct-\udcff.bin")
    odd = "folder/caf\udce9.txt"
    assert zs.names == ["folder/", odd, "folder/ok.txt", "direct-\udcff.bin"]
    path = save(zs)
    headers = {h.name: h for h in parse_zip(path).entries}
    for raw in (b"folder/caf\xe9.txt", b"direct-\xff.bin"):
        assert not headers[raw].flags & (1 << 11)
        assert headers[raw].local_name == raw
    expected = {"folder/": None, odd: b"latin-1 name", "folder/ok.txt": b"ok",
                "direct-\udcff.bin": b"x"}
    check_unzip(path)
    check_7z(path)
    check_bsdtar(path, expected)  # extracted under the very same bytes
    check_stream_unzip(path, expected, encoding="utf-8", errors="surrogateescape")
    latin1 = {name.encode("utf-8", "surrogateescape").decode("latin-1"): data
              for name, data in expected.items()}
    check_zipfile(path, latin1, encoding="latin-1")
    check_java(path, latin1, charset="ISO-8859-1")


# --- symlinks --------------------------------------------------------------------------------


@pytest.fixture
def linked_tree(tmp_path: Path) -> Path:
    """root/ with links pointing in, out, nowhere, and back up (a cycle)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"secret")
    root = tmp_path / "root"
    (root / "real").mkdir(parents=True)
    (root / "real" / "inside.txt").write_bytes(b"inside")
    (root / "top.txt").write_bytes(b"top")
    os.symlink(outside / "secret.txt", root / "escape-file.txt")
    os.symlink(outside, root / "escape-dir")
    os.symlink("../../outside", root / "real" / "escape-relative")
    os.symlink(root / "top.txt", root / "link-to-top.txt")
    os.symlink("../top.txt", root / "real" / "relative-link.txt")
    os.symlink(root / "nowhere", root / "broken")
    os.symlink(root, root / "real" / "loop-to-root")
    os.symlink(".", root / "real" / "loop-to-self")
    return root


@pytest.mark.timeout(60)
def test_symlinks_in_a_walked_directory(linked_tree, save, caplog):
    zs = ZipStream()
    with caplog.at_level(logging.WARNING, logger="zipwsgi"):
        zs.add_path(linked_tree, "root")
    names = zs.names
    assert not any("secret" in n or "escape" in n or "broken" in n for n in names), names
    assert not any("loop" in n for n in names), names  # cycles end (and are not entries)
    assert "root/link-to-top.txt" in names
    assert "root/real/relative-link.txt" in names
    assert "root/real/inside.txt" in names
    assert any("escape" in r.getMessage() for r in caplog.records)
    expected = {
        "root/": None,
        "root/link-to-top.txt": b"top",
        "root/real/": None,
        "root/real/inside.txt": b"inside",
        "root/real/relative-link.txt": b"top",
        "root/top.txt": b"top",
    }
    assert sorted(names) == sorted(expected)
    check_all(save(zs), expected, java=False)


def test_symlinked_root_is_walked(linked_tree, tmp_path):
    os.symlink(linked_tree, tmp_path / "alias")
    zs = ZipStream()
    zs.add_path(tmp_path / "alias", "alias")
    assert "alias/real/inside.txt" in zs.names
    assert not any("secret" in n for n in zs.names)


def test_symlink_to_a_sibling_directory_keeps_both(tmp_path):
    root = tmp_path / "root"
    (root / "z-real").mkdir(parents=True)
    (root / "z-real" / "f.txt").write_bytes(b"f")
    os.symlink(root / "z-real", root / "a-link")  # sorts (and is walked) first
    zs = ZipStream()
    zs.add_path(root, "root")
    assert "root/z-real/f.txt" in zs.names, zs.names
    assert "root/a-link/f.txt" in zs.names, zs.names
    # a link to an ancestor is still a cycle, and still ends
    os.symlink(root, root / "z-real" / "up")
    zs = ZipStream()
    zs.add_path(root, "root")
    assert not any("/up" in n for n in zs.names), zs.names


@pytest.mark.parametrize(
    "first,second",
    [
        (("file", "a"), ("dir", "a")),
        (("dir", "a"), ("file", "a")),
        (("file", "a"), ("file", "a/b")),
        (("file", "x/a"), ("dir", "x/a/b")),
        # the other order: a name made "a" a folder, a file cannot take its place
        (("file", "a/b"), ("file", "a")),
        (("file", "x/a/b/c"), ("file", "x/a")),
        (("dir", "a/b"), ("file", "a")),
    ],
)
def test_names_an_extractor_cannot_hold_together_are_refused(first, second):
    zs = ZipStream()
    for kind, name in (first, second)[:1]:
        zs.add(b"x", name) if kind == "file" else zs.mkdir(name)
    kind, name = second
    with pytest.raises(DuplicateNameError):
        zs.add(b"x", name) if kind == "file" else zs.mkdir(name)


def test_folders_and_their_children_are_not_clashes():
    zs = ZipStream()
    zs.mkdir("a")
    zs.add(b"1", "a/b")
    zs.add(b"2", "a/c/d")
    assert zs.names == ["a/", "a/b", "a/c/d"]


def test_a_walked_file_cannot_stand_where_an_earlier_name_made_a_folder(tmp_path):
    """add_path's fast path for walked files checks the folders earlier names imply,
    as add() does: ``d/a/b`` added, then a folder ``d`` holding a file ``a``."""
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a").write_bytes(b"file a")
    zs = ZipStream()
    zs.add(b"x", "d/a/b")
    with pytest.raises(DuplicateNameError, match="'d/a'"):
        zs.add_path(tmp_path / "d", "d")
