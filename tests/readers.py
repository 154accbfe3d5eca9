"""Real zip readers as test oracles, plus a tiny struct-level parser for header facts.

Every ``check_*`` function opens an archive file with one independent reader and raises
``AssertionError`` carrying that reader's own output when it disagrees with ``expected``
(a dict of archive name -> bytes, or ``None`` for a directory whose name ends in ``/``).

A reader that is not installed skips the test, unless ``ZIPWSGI_REQUIRE_READERS=1`` (as
in CI), where it fails it: a green CI run must mean every reader really opened every shape.
"""

from __future__ import annotations

import atexit
import calendar
import functools
import os
import shutil
import stat
import struct
import subprocess
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable, Iterable, Iterator, Mapping, Optional, Union

import pytest

Expected = Mapping[str, Optional[bytes]]
PathLike = Union[str, "os.PathLike[str]"]

REQUIRE_READERS = os.environ.get("ZIPWSGI_REQUIRE_READERS") == "1"
JAVA_SOURCE = Path(__file__).parent / "java" / "ZipList.java"
TIMEOUT = 900
# The same environment for every reader: UTF-8 names on the terminal, UTC times.
ENV = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8", "TZ": "UTC"}


# --- plumbing -------------------------------------------------------------------------------


def missing(what: str) -> None:
    """Skip (or, with ZIPWSGI_REQUIRE_READERS=1, fail) because a reader is not installed."""
    if REQUIRE_READERS:
        pytest.fail(f"{what} is not installed and ZIPWSGI_REQUIRE_READERS=1", pytrace=False)
    pytest.skip(f"{what} is not installed")


def need(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        missing(binary)
    return path  # type: ignore[return-value]


def run(
    cmd: list[str], *, ok_codes: tuple[int, ...] = (0,), **kwargs
) -> subprocess.CompletedProcess:
    """Run a reader; an unexpected exit code raises AssertionError with everything it said."""
    proc = subprocess.run(cmd, capture_output=True, env=ENV, timeout=TIMEOUT, **kwargs)
    if proc.returncode not in ok_codes:
        raise AssertionError(_describe(cmd, proc.returncode, proc.stdout, proc.stderr))
    return proc


def _describe(cmd: list[str], code: int, out: bytes, err: bytes) -> str:
    def tail(data: bytes) -> str:
        text = data.decode("utf-8", "replace")
        return text if len(text) < 6000 else "...\n" + text[-6000:]

    command = " ".join(map(str, cmd))
    return f"{command} exited {code}\n--- stdout\n{tail(out)}\n--- stderr\n{tail(err)}"


def _files(expected: Expected) -> dict[str, bytes]:
    return {name: data for name, data in expected.items() if data is not None}


def _dirs(expected: Expected) -> set[str]:
    return {name for name, data in expected.items() if data is None}


def _compare(reader: str, got: Mapping[str, Optional[bytes]], expected: Expected) -> None:
    """Same file names and contents; every expected directory present (readers may add
    parent directories of their own when extracting)."""
    got_files = {n: d for n, d in got.items() if d is not None}
    want_files = _files(expected)
    problems = []
    for name in sorted(set(want_files) - set(got_files)):
        problems.append(f"missing file {name!r}")
    for name in sorted(set(got_files) - set(want_files)):
        problems.append(f"unexpected file {name!r}")
    for name in sorted(set(want_files) & set(got_files)):
        if got_files[name] != want_files[name]:
            problems.append(
                f"content of {name!r} differs: {len(got_files[name])} bytes "
                f"(crc {zlib.crc32(got_files[name]):08x}), expected {len(want_files[name])} "
                f"(crc {zlib.crc32(want_files[name]):08x})"
            )
    got_dirs = {n for n, d in got.items() if d is None}
    for name in sorted(_dirs(expected) - got_dirs):
        problems.append(f"missing directory {name!r}")
    if problems:
        raise AssertionError(f"{reader}: " + "; ".join(problems[:20]))


# --- Python's zipfile ---------------------------------------------------------------------------


def ext_mtime(extra: bytes) -> Optional[int]:
    """The UTC mtime from an Info-ZIP extended-timestamp extra field (0x5455), if any."""
    fields = split_extra(extra)
    body = fields.get(0x5455)
    if body is None or len(body) < 5 or not body[0] & 1:
        return None
    return struct.unpack("<l", body[1:5])[0]


def check_zipfile(
    path: PathLike,
    expected: Expected,
    *,
    mtimes: Optional[Mapping[str, float]] = None,
    encoding: Optional[str] = None,
) -> None:
    """Python's zipfile: names, contents, CRCs (testzip), mtimes, directory flags and modes.

    ``encoding`` decodes names stored without the UTF-8 flag (``charset=`` archives); when
    it is None the flag must be set exactly on the non-ASCII names. ``mtimes`` maps names
    to the Unix time each entry must carry (DOS time in UTC and the extended timestamp,
    within DOS's 2-second resolution); every entry's DOS time must agree with its own
    extended timestamp either way.
    """
    try:
        _check_zipfile(path, expected, mtimes, encoding)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, zlib.error,
            KeyError, ValueError, NotImplementedError) as exc:
        raise AssertionError(f"zipfile: {type(exc).__name__}: {exc}") from exc


def _check_zipfile(
    path: PathLike,
    expected: Expected,
    mtimes: Optional[Mapping[str, float]],
    encoding: Optional[str],
) -> None:
    kwargs = {"metadata_encoding": encoding} if encoding else {}  # Python >= 3.11
    with zipfile.ZipFile(path, **kwargs) as zf:
        bad = zf.testzip()
        assert bad is None, f"zipfile: testzip found a bad CRC in {bad!r}"
        infos = zf.infolist()
        names = [info.filename for info in infos]
        assert len(names) == len(set(names)), f"zipfile: duplicate names in {names}"
        assert sorted(names) == sorted(expected), (
            f"zipfile: names differ:\n got {sorted(names)[:50]}\nwant {sorted(expected)[:50]}"
        )
        for info in infos:
            want = expected[info.filename]
            mode = info.external_attr >> 16
            if want is None:
                assert info.is_dir(), f"zipfile: {info.filename!r} is not a directory"
                assert info.external_attr & 0x10, f"zipfile: {info.filename!r} lacks MS-DOS dir bit"
                assert stat.S_ISDIR(mode), f"zipfile: {info.filename!r} mode {mode:o} not a dir"
                assert info.file_size == 0 and info.CRC == 0
            else:
                assert not info.is_dir(), f"zipfile: {info.filename!r} is a directory"
                assert stat.S_ISREG(mode), f"zipfile: {info.filename!r} mode {mode:o} not a file"
                assert not info.external_attr & 0x10
                assert info.file_size == len(want), f"zipfile: size of {info.filename!r}"
                assert info.CRC == zlib.crc32(want), f"zipfile: CRC of {info.filename!r}"
                data = zf.read(info)
                assert data == want, f"zipfile: content of {info.filename!r} differs"
            if encoding is None:
                utf8 = bool(info.flag_bits & 0x800)
                assert utf8 == (not info.filename.isascii()), (
                    f"zipfile: UTF-8 flag is {utf8} for {info.filename!r}"
                )
            dos = calendar.timegm(info.date_time + (0, 0, -1))
            ext = ext_mtime(info.extra)
            assert ext is not None, f"zipfile: {info.filename!r} has no extended timestamp"
            if ext >= 315532800:
                assert 0 <= ext - dos < 2, f"zipfile: DOS time {info.date_time} vs ext {ext}"
            if mtimes is not None and info.filename in mtimes:
                want_time = mtimes[info.filename]
                assert abs(ext - want_time) < 2, f"zipfile: mtime of {info.filename!r}: {ext}"
                assert abs(dos - want_time) <= 2, f"zipfile: DOS time of {info.filename!r}"


# --- Info-ZIP unzip ------------------------------------------------------------------------


def check_unzip(path: PathLike) -> str:
    """``unzip -t``: every CRC checked; returns its output (one line per entry)."""
    proc = run([need("unzip"), "-t", os.fspath(path)], ok_codes=(0, 1))
    out = proc.stdout.decode("utf-8", "replace")
    if proc.returncode == 1:
        # Info-ZIP's one warning for a valid entry-less archive (byte-identical to what
        # Python's zipfile writes for an empty archive); anything else exiting 1 is a fail.
        said = out + proc.stderr.decode("utf-8", "replace")
        assert "zipfile is empty" in said, _describe(["unzip", "-t"], 1, proc.stdout, proc.stderr)
        return out
    assert "No errors detected" in out, _describe(["unzip", "-t"], 0, proc.stdout, proc.stderr)
    assert not proc.stderr.strip(), _describe(["unzip", "-t"], 0, proc.stdout, proc.stderr)
    return out


def unzip_names(path: PathLike) -> list[str]:
    """Names as Info-ZIP unzip shows them (``unzip -Z1``), decoded as UTF-8."""
    proc = run([need("unzip"), "-Z1", os.fspath(path)])
    return proc.stdout.decode("utf-8").splitlines()


# --- 7-Zip ---------------------------------------------------------------------------------


def check_7z(path: PathLike) -> str:
    """``7z t``: every CRC checked; returns its output."""
    proc = run([need("7z"), "t", "-bd", os.fspath(path)])
    out = proc.stdout.decode("utf-8", "replace")
    assert "Everything is Ok" in out, _describe(["7z", "t"], 0, proc.stdout, proc.stderr)
    return out


def sevenzip_names(path: PathLike) -> list[str]:
    """Names as 7-Zip shows them (``7z l -slt``)."""
    proc = run([need("7z"), "l", "-slt", "-ba", os.fspath(path)])
    return [
        line[len("Path = ") :]
        for line in proc.stdout.decode("utf-8").splitlines()
        if line.startswith("Path = ")
    ]


# --- libarchive's bsdtar -------------------------------------------------------------------


def _tree(root: str) -> dict[str, Optional[bytes]]:
    out: dict[str, Optional[bytes]] = {}
    for directory, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(directory, root)
        prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        for name in dirnames:
            out[prefix + name + "/"] = None
        for name in filenames:
            with open(os.path.join(directory, name), "rb") as f:
                out[prefix + name] = f.read()
    return out


def scratch_dir() -> tempfile.TemporaryDirectory:
    """A temporary directory for extracted trees, in RAM where possible: creating 70,000
    files on some disk file systems takes a minute, on tmpfs two seconds."""
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK):
        return tempfile.TemporaryDirectory(prefix="zipwsgi-", dir=shm)
    return tempfile.TemporaryDirectory(prefix="zipwsgi-")


def check_bsdtar_file(path: PathLike, expected: Expected) -> None:
    """``bsdtar -xf ARCHIVE``: libarchive seeks to the central directory."""
    bsdtar = need("bsdtar")
    with scratch_dir() as out:
        run([bsdtar, "-xf", os.fspath(path), "-C", out])
        _compare("bsdtar -xf FILE", _tree(out), expected)


def pipe_into(cmd: list[str], path: PathLike, chunk: int = 65536) -> tuple[int, bytes, bytes]:
    """Feed ``path`` to ``cmd`` through a real pipe (a reader that cannot seek);
    (exit code, stdout, stderr). A reader closing the pipe early is left to its exit code."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, open(path, "rb") as src:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=out, stderr=err, env=ENV)
        try:
            assert proc.stdin is not None
            while True:
                block = src.read(chunk)
                if not block:
                    break
                try:
                    proc.stdin.write(block)
                except BrokenPipeError:
                    break
            try:
                proc.stdin.close()
            except BrokenPipeError:
                pass
            code = proc.wait(TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        out.seek(0)
        err.seek(0)
        return code, out.read(), err.read()


def check_bsdtar_pipe(path: PathLike, expected: Expected, chunk: int = 65536) -> None:
    """``bsdtar -xf -`` fed through a real pipe: libarchive must stream, it cannot seek."""
    bsdtar = need("bsdtar")
    with scratch_dir() as out:
        cmd = [bsdtar, "-xf", "-", "-C", out]
        code, stdout, stderr = pipe_into(cmd, path, chunk)
        if code != 0:
            raise AssertionError(_describe(cmd, code, stdout, stderr))
        _compare("bsdtar -xf - (pipe)", _tree(out), expected)


def check_bsdtar(path: PathLike, expected: Expected) -> None:
    """bsdtar both from the file and from a pipe."""
    check_bsdtar_file(path, expected)
    check_bsdtar_pipe(path, expected)


# --- stream-unzip (PyPI) ---------------------------------------------------------------------


def _chunks(path: PathLike, size: int) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while True:
            block = f.read(size)
            if not block:
                return
            yield block


def stream_unzip_entries(
    path: PathLike, chunk: int = 4093, encoding: str = "utf-8", errors: str = "strict"
) -> dict[str, Optional[bytes]]:
    """What stream-unzip extracts when fed the archive in small odd-sized chunks."""
    try:
        from stream_unzip import stream_unzip
    except ImportError:
        missing("stream-unzip (pip install stream-unzip)")
    got: dict[str, Optional[bytes]] = {}
    for raw_name, size, chunks in stream_unzip(_chunks(path, chunk)):
        name = raw_name.decode(encoding, errors)
        data = b"".join(chunks)
        if size is not None:
            assert size == len(data), f"stream-unzip: {name!r} announced {size}, gave {len(data)}"
        if name.endswith("/"):
            assert data == b"", f"stream-unzip: directory {name!r} has data"
            got[name] = None
        else:
            got[name] = data
    return got


def check_stream_unzip(
    path: PathLike, expected: Expected, encoding: str = "utf-8", errors: str = "strict"
) -> None:
    """stream-unzip: a pure streaming reader; it checks CRCs and sizes on its own."""
    try:
        got = stream_unzip_entries(path, encoding=encoding, errors=errors)
    except Exception as exc:  # its own exception classes: UnzipError and subclasses
        if isinstance(exc, (AssertionError, pytest.skip.Exception)):
            raise
        raise AssertionError(f"stream-unzip: {type(exc).__name__}: {exc}") from exc
    assert sorted(got) == sorted(expected), f"stream-unzip: names {sorted(got)[:50]}"
    _compare("stream-unzip", got, expected)


# --- Java's ZipInputStream ------------------------------------------------------------------


@functools.cache
def _java_classes() -> str:
    """Compile tests/java/ZipList.java once per session into a temp dir."""
    javac = need("javac")
    need("java")
    out = tempfile.mkdtemp(prefix="zipwsgi-java-")
    atexit.register(shutil.rmtree, out, True)
    run([javac, "-d", out, str(JAVA_SOURCE)])
    return out


def java_entries(
    path: PathLike, charset: Optional[str] = None
) -> list[tuple[str, bool, int, int, int, int]]:
    """(name, is_dir, bytes read, CRC of bytes read, getSize(), getCrc()) per entry."""
    classes = _java_classes()
    cmd = [need("java"), "-Xshare:auto", "-XX:TieredStopAtLevel=1", "-cp", classes, "ZipList",
           os.fspath(path)]
    if charset:
        cmd.append(charset)
    proc = run(cmd)
    rows = []
    for line in proc.stdout.decode().splitlines():
        name, kind, count, crc, size, entry_crc = line.split("\t")
        rows.append((bytes.fromhex(name).decode("utf-8"), kind == "d", int(count), int(crc, 16),
                     int(size), int(entry_crc, 16)))
    return rows


def check_java(path: PathLike, expected: Expected, charset: Optional[str] = None) -> None:
    """``java.util.zip.ZipInputStream``: reads local headers only, checks CRCs itself."""
    rows = java_entries(path, charset)
    names = [row[0] for row in rows]
    assert sorted(names) == sorted(expected), f"java: names {sorted(names)[:50]}"
    got: dict[str, Optional[bytes]] = {}
    for name, is_dir, count, crc, size, entry_crc in rows:
        want = expected[name]
        assert is_dir == (want is None), f"java: {name!r} is_dir={is_dir}"
        if want is None:
            got[name] = None
            continue
        assert count == len(want) == size, f"java: {name!r} read {count}, size {size}"
        assert crc == zlib.crc32(want) == entry_crc, f"java: {name!r} crc {crc:08x}"
        got[name] = want
    _compare("java", got, expected)


# --- all of them -------------------------------------------------------------------------------


def check_all(
    path: PathLike,
    expected: Expected,
    java: bool = True,
    *,
    streaming: bool = True,
    mtimes: Optional[Mapping[str, float]] = None,
) -> None:
    """Every reader. ``java``/``streaming`` off for shapes those readers cannot read
    by design (stored entries without a known CRC; stored entries of unknown size).

    Readers that are missing are skipped together at the end, after the others ran.
    """
    checks = [
        ("zipfile", lambda: check_zipfile(path, expected, mtimes=mtimes)),
        ("unzip", lambda: check_unzip(path)),
        ("7z", lambda: check_7z(path)),
        ("bsdtar file", lambda: check_bsdtar_file(path, expected)),
        ("bsdtar pipe", lambda: check_bsdtar_pipe(path, expected)),
    ]
    if streaming:
        checks.append(("stream-unzip", lambda: check_stream_unzip(path, expected)))
    if java:
        checks.append(("java", lambda: check_java(path, expected)))
    run_checks(checks)


def run_checks(checks: Iterable[tuple[str, Callable[[], object]]]) -> None:
    """Run every ``(reader, check)``; the missing readers are skipped together at the end,
    so one absent tool does not hide what the others say."""
    skipped = []
    for name, check in checks:
        try:
            check()
        except pytest.skip.Exception as exc:
            skipped.append(f"{name}: {exc}")
    if skipped:
        pytest.skip("; ".join(skipped))


# --- a struct-level view of the headers (our own, to prove layout facts) ------------------------


def split_extra(extra: bytes) -> dict[int, bytes]:
    fields: dict[int, bytes] = {}
    pos = 0
    while pos + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, pos)
        fields[tag] = extra[pos + 4 : pos + 4 + size]
        pos += 4 + size
    assert pos == len(extra), f"extra field overruns: {extra!r}"
    return fields


@dataclass
class Header:
    """One entry as both of its headers describe it (32-bit fields as written)."""

    name: bytes
    version_needed: int
    flags: int
    method: int
    crc: int
    compressed_size: int
    size: int
    offset: int  # as written in the central record (0xFFFFFFFF when in zip64 extra)
    external_attr: int
    central_extra: dict[int, bytes]
    local_version_needed: int = 0
    local_flags: int = 0
    local_crc: int = 0
    local_compressed_size: int = 0
    local_size: int = 0
    local_name: bytes = b""
    local_extra: dict[int, bytes] = field(default_factory=dict)
    real_offset: int = 0
    data_offset: int = 0

    @property
    def zip64_central(self) -> Optional[tuple[int, ...]]:
        body = self.central_extra.get(0x0001)
        return None if body is None else struct.unpack(f"<{len(body) // 8}Q", body)

    @property
    def zip64_local(self) -> Optional[tuple[int, ...]]:
        body = self.local_extra.get(0x0001)
        return None if body is None else struct.unpack(f"<{len(body) // 8}Q", body)


@dataclass
class Directory:
    entries: list[Header]
    count: int  # the real count (from the zip64 end record when there is one)
    eocd_count: int
    cd_offset: int
    cd_size: int
    zip64_end: bool
    eocd_cd_offset: int
    eocd_cd_size: int


def parse_zip(path: PathLike) -> Directory:
    """Read the central directory and every local header, seeking (works on 4 GiB files)."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        total = f.tell()
        f.seek(total - 22)
        eocd = f.read(22)
        sig, _, _, _, eocd_count, cd_size32, cd_offset32, comment = struct.unpack("<IHHHHIIH", eocd)
        assert sig == 0x06054B50 and comment == 0, "no comment-less EOCD at the end"
        count, cd_size, cd_offset, zip64_end = eocd_count, cd_size32, cd_offset32, False
        if total >= 22 + 20:
            f.seek(total - 22 - 20)
            locator = f.read(20)
            if struct.unpack_from("<I", locator)[0] == 0x07064B50:
                zip64_end = True
                _, _, end_offset, _ = struct.unpack("<IIQI", locator)
                f.seek(end_offset)
                record = f.read(56)
                fields = struct.unpack("<IQHHIIQQQQ", record)
                assert fields[0] == 0x06064B50, "zip64 locator points at no zip64 end record"
                count, cd_size, cd_offset = fields[7], fields[8], fields[9]
        f.seek(cd_offset)
        central = f.read(cd_size)
        entries = []
        pos = 0
        for _ in range(count):
            (sig, _, need_v, flags, method, _, _, crc, csize, size, nlen, xlen, clen, _, _,
             attr, offset) = struct.unpack_from("<IHHHHHHIIIHHHHHII", central, pos)
            assert sig == 0x02014B50, f"bad central signature at {cd_offset + pos}"
            pos += 46
            name = central[pos : pos + nlen]
            extra = split_extra(central[pos + nlen : pos + nlen + xlen])
            pos += nlen + xlen + clen
            entries.append(
                Header(name, need_v, flags, method, crc, csize, size, offset, attr, extra)
            )
        assert pos == len(central), "central directory size disagrees with its records"
        for entry in entries:
            real = entry.offset
            if real == 0xFFFFFFFF:
                real = entry.zip64_central[-1]  # type: ignore[index]
            entry.real_offset = real
            f.seek(real)
            local = f.read(30)
            (sig, need_v, flags, _, _, _, crc, csize, size, nlen, xlen) = struct.unpack(
                "<IHHHHHIIIHH", local
            )
            assert sig == 0x04034B50, f"no local header at {real}"
            entry.local_version_needed = need_v
            entry.local_flags, entry.local_crc = flags, crc
            entry.local_compressed_size, entry.local_size = csize, size
            entry.local_name = f.read(nlen)
            entry.local_extra = split_extra(f.read(xlen))
            entry.data_offset = real + 30 + nlen + xlen
    return Directory(entries, count, eocd_count, cd_offset, cd_size, zip64_end,
                     cd_offset32, cd_size32)


def read_descriptor(f: IO[bytes], offset: int, zip64: bool) -> tuple[int, int, int, int]:
    """(signature, crc, compressed size, size) of the data descriptor at ``offset``."""
    f.seek(offset)
    if zip64:
        return struct.unpack("<IIQQ", f.read(24))
    return struct.unpack("<IIII", f.read(16))
