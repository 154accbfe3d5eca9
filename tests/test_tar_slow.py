"""The big shapes: a member over 8 GiB (past ustar's 11 octal digits) and more than
70,000 entries. Streamed straight into the readers, never stored."""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Iterator

import pytest
from readers import ENV, TIMEOUT, _describe, need, scratch_dir
from tar_readers import _compare, _tree

from zipwsgi import TarStream
from zipwsgi.formats.tar import records as tf

pytestmark = pytest.mark.slow

BIG = 8 * (1 << 30) + 5  # one byte past a multiple of 512 would do; this is past 8 GiB too


class IterFile(io.RawIOBase):
    """An iterator of chunks as an unseekable file, so tarfile reads it as a stream."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.pending = b""
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        while not self.pending:
            self.pending = next(self.chunks, b"")
            if not self.pending:
                return 0
        n = min(len(buffer), len(self.pending))
        buffer[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        self.count += n
        return n


def pipe_into(cmd: list[str], chunks: Iterator[bytes]) -> tuple[int, bytes]:
    """Write every chunk into ``cmd``'s stdin; (bytes written, its stdout). Its output
    goes to files, so a reader that prints a lot cannot block on a full pipe."""
    written = 0
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=out, stderr=err, env=ENV)
        assert proc.stdin is not None
        try:
            for chunk in chunks:
                proc.stdin.write(chunk)
                written += len(chunk)
            proc.stdin.close()
            code = proc.wait(TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if code != 0 or stderr.strip():
        raise AssertionError(_describe(cmd, code, stdout, stderr))
    return written, stdout


@pytest.fixture
def sparse(tmp_path: Path) -> Path:
    path = tmp_path / "sparse.bin"
    with open(path, "wb") as f:
        f.write(b"head")
        f.truncate(BIG)
        f.seek(BIG - 4)
        f.write(b"tail")
    return path


@pytest.mark.timeout(900)
def test_member_over_8_gib(sparse):
    ts = TarStream(chunk_size=1 << 20)
    ts.add(b"before\n", "before.txt")
    ts.add_path(sparse, "big/sparse.bin")
    ts.add(b"after\n", "after.txt")
    records = tf.pax_record(b"size", b"%d" % BIG)
    data_at = 1024 + 512 + len(records) + tf.padding(len(records)) + 512
    data_end = data_at + BIG + tf.padding(BIG)
    members_end = data_end + 1024
    assert ts.size == members_end + tf.end_size(members_end)
    # A range seeks: the last bytes of the member come without reading 8 GiB.
    assert b"".join(ts.app_iter_range(data_end - 4 - tf.padding(BIG), data_end)) == (
        b"tail" + bytes(tf.padding(BIG)))

    written, listing = pipe_into([need("tar"), "-tvf", "-"], iter(ts))
    assert written == ts.size
    lines = listing.decode().splitlines()
    assert [line.split()[-1] for line in lines] == ["before.txt", "big/sparse.bin", "after.txt"]
    assert lines[1].split()[2] == str(BIG)

    stream = IterFile(iter(ts))
    with tarfile.open(fileobj=stream, mode="r|") as archive:
        got = [(m.name, m.size) for m in archive]
    assert got == [("before.txt", 7), ("big/sparse.bin", BIG), ("after.txt", 6)]


@pytest.mark.timeout(900)
@pytest.mark.parametrize("compression", [None, "gzip"])
def test_more_than_70000_entries(compression):
    count = 70_001
    ts = TarStream(compression)
    expected = {}
    for i in range(count):
        name = f"d{i // 1000:03d}/f{i:05d}.txt"
        data = f"entry {i}\n".encode()
        ts.add(data, name)
        expected[name] = data
    if compression is None:
        assert ts.size == count * 1024 + tf.end_size(count * 1024)

    flags = ["-z"] if compression else []
    written, listing = pipe_into([need("tar"), *flags, "-tf", "-"], iter(ts))
    assert listing.decode().splitlines() == list(expected)
    if compression is None:
        assert written == ts.size

    with tarfile.open(fileobj=IterFile(iter(ts)), mode="r|*") as archive:
        assert sum(1 for _ in archive) == count

    with scratch_dir() as out:
        pipe_into([need("bsdtar"), "-xf", "-", "-C", out], iter(ts))
        _compare("bsdtar -xf - (pipe)", _tree(out), expected)
