"""Archives handed to waitress as a file (``wsgi.file_wrapper``), end to end.

``zipwsgi.http.filelike`` lets waitress's I/O thread read a sized archive straight from
the engine instead of copying each chunk through its output buffer. What must not
change: the archive is valid (zipfile, ``unzip -t``), Range/206 and HEAD answer the
same bytes and headers, a file that changes or a CRC that does not match cuts the
connection (never a clean end), every file is closed; archives with data from the app
(sub-requests) and servers without waitress's wrapper keep the plain iterable.
"""

from __future__ import annotations

import io
import logging
import os
import socket
import subprocess
import zipfile
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from wsgiref.util import FileWrapper

import pytest
from readers import check_unzip
from servers import thread_server
from webtest import TestApp

from zipwsgi import ZipMiddleware, ZipStream
from zipwsgi.http.filelike import ArchiveFile, reads_locally, server_file

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")


def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["curl", "-sS", *args], capture_output=True, timeout=60)


@pytest.fixture()
def files(tmp_path: Path) -> Path:
    root = tmp_path / "files"
    root.mkdir()
    (root / "a.bin").write_bytes(os.urandom(700_000))
    (root / "b.txt").write_bytes(b"hello world\n" * 30_000)
    (root / "empty").write_bytes(b"")
    return root


def manifest(root: Path, crcs: bool = True, wrong: str = "") -> bytes:
    lines = []
    for name in ("a.bin", "b.txt", "empty"):
        data = (root / name).read_bytes()
        crc = f"{zlib.crc32(data) ^ (1 if name == wrong else 0):08x}" if crcs else "-"
        lines.append(f"{crc} {len(data)} /files/{name} {name}\n")
    return "".join(lines).encode()


class Recording:
    """ZipMiddleware around a manifest app; remembers each body it handed the server
    (by type) and keeps it alive, so it is close(), not the collector, that frees files."""

    def __init__(self, root: Path, body: bytes, **options: Any) -> None:
        def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            if environ["PATH_INFO"] == "/sub":
                start_response("200 OK", [("Content-Length", "5")])
                return [b"12345"]
            start_response("200 OK", [("X-Archive-Files", "zip")])
            return [self.manifest]

        self.manifest = body
        self.middleware = ZipMiddleware(app, roots={"/files/": str(root)}, **options)
        self.bodies: list[Any] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        body = self.middleware(environ, start_response)
        self.bodies.append(body)
        return body

    def kinds(self) -> list[str]:
        return [type(body).__name__ for body in self.bodies]


def open_files(folder: Path) -> list[str]:
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(folder)):
            found.append(target)
    return found


# --- over HTTP ------------------------------------------------------------------------


@pytest.mark.parametrize("crcs", [True, False], ids=["crc-given", "crc-unknown"])
def test_a_whole_archive_goes_out_as_a_file_and_is_valid(files: Path, tmp_path: Path,
                                                         crcs: bool) -> None:
    app = Recording(files, manifest(files, crcs))
    out = tmp_path / "out.zip"
    with thread_server(app) as url:
        result = curl("-o", str(out), "-D", "-", url + "all.zip")
    assert result.returncode == 0, result.stderr
    assert app.kinds() == ["ReadOnlyFileBasedBuffer"]
    headers = result.stdout.decode("latin-1").lower()
    assert f"content-length: {out.stat().st_size}" in headers
    with zipfile.ZipFile(out) as archive:
        assert archive.read("a.bin") == (files / "a.bin").read_bytes()
        assert archive.read("b.txt") == (files / "b.txt").read_bytes()
        assert archive.testzip() is None
    check_unzip(out)
    assert not open_files(files)


def test_ranges_and_head_answer_the_same_bytes(files: Path, tmp_path: Path) -> None:
    app = Recording(files, manifest(files))
    whole = tmp_path / "whole.zip"
    with thread_server(app) as url:
        assert curl("-o", str(whole), url + "all.zip").returncode == 0
        data = whole.read_bytes()
        for first, last in ((0, 0), (100, 299_999), (650_000, len(data) - 1), (5, None)):
            spec = f"{first}-{'' if last is None else last}"
            part = curl("-D", "-", "-r", spec, "-o", str(tmp_path / "part"), url + "all.zip")
            assert part.returncode == 0 and b" 206 " in part.stdout.split(b"\r\n")[0]
            stop = len(data) if last is None else last + 1
            assert (tmp_path / "part").read_bytes() == data[first:stop], spec
        multi = curl("-r", "0-9,500-509", url + "all.zip").stdout
        assert data[0:10] in multi and data[500:510] in multi and b"multipart" not in data
        head = curl("-I", url + "all.zip").stdout.decode("latin-1").lower()
        assert f"content-length: {len(data)}" in head
        suffix = curl("-r", "-100", url + "all.zip").stdout
        assert suffix == data[-100:]
    kinds = app.kinds()
    assert kinds.count("ReadOnlyFileBasedBuffer") == 1 + 4 + 1  # whole, ranges, suffix
    assert not open_files(files)


def test_a_crc_that_does_not_match_cuts_the_connection(
    files: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = Recording(files, manifest(files, wrong="b.txt"))
    out = tmp_path / "cut.zip"
    with caplog.at_level(logging.ERROR, logger="zipwsgi"), thread_server(app) as url:
        result = curl("-o", str(out), "-D", "-", url + "all.zip")
    assert app.kinds() == ["ReadOnlyFileBasedBuffer"]
    headers = result.stdout.decode("latin-1").lower()
    announced = int(headers.split("content-length:")[1].split()[0])
    assert result.returncode == 18, result.stderr  # CURLE_PARTIAL_FILE: never a clean end
    assert 700_000 < out.stat().st_size < announced
    assert "archive aborted after" in caplog.text
    assert not open_files(files)


def test_a_file_changed_mid_download_cuts_the_connection(tmp_path: Path) -> None:
    root = tmp_path / "files"
    root.mkdir()
    size = 32 * 1024 * 1024
    for name in ("one", "two"):
        with open(root / name, "wb") as f:
            f.truncate(size)  # sparse: more than every buffer holds, cheap to read
    body = "".join(f"- {size} /files/{name} {name}\n" for name in ("one", "two")).encode()
    app = Recording(root, body)
    with thread_server(app) as url:
        address = urlsplit(url)
        client = socket.create_connection((address.hostname, address.port))
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        client.sendall(b"GET /all.zip HTTP/1.1\r\nHost: t\r\n\r\n")
        received = b""
        while len(received) < 1024 * 1024:
            received += client.recv(65536)
        os.truncate(root / "two", 1000)  # the server is still in "one"
        client.settimeout(30)
        while True:
            data = client.recv(1 << 20)
            if not data:
                break
            received += data
        client.close()
    head, _, rest = received.partition(b"\r\n\r\n")
    announced = int(head.lower().split(b"content-length:")[1].split()[0])
    assert size < len(rest) < announced  # the first file went out, then the cut
    assert app.kinds() == ["ReadOnlyFileBasedBuffer"]
    assert not open_files(root)


def test_sub_request_entries_are_never_read_on_the_servers_thread(
    files: Path, tmp_path: Path
) -> None:
    app = Recording(files, manifest(files) + b"- 5 /sub sub.txt\n")
    out = tmp_path / "out.zip"
    with thread_server(app) as url:
        assert curl("-o", str(out), url + "all.zip").returncode == 0
    assert app.kinds() == ["LoggedBody"]
    with zipfile.ZipFile(out) as archive:
        assert archive.read("sub.txt") == b"12345"


def test_other_servers_keep_the_plain_body(files: Path) -> None:
    app = Recording(files, manifest(files))
    response = TestApp(app, extra_environ={"wsgi.file_wrapper": FileWrapper}).get("/all.zip")
    assert app.kinds() == ["LoggedBody"]
    with zipfile.ZipFile(io.BytesIO(response.body)) as archive:
        assert archive.testzip() is None


# --- the file itself --------------------------------------------------------------------


def stream_of(root: Path) -> ZipStream:
    zs = ZipStream()
    zs.add_path(str(root / "a.bin"), "a.bin")
    zs.add_path(str(root / "b.txt"), "b.txt")
    return zs


def test_archive_file_reads_what_the_stream_yields_whatever_the_pattern(files: Path) -> None:
    zs = stream_of(files)
    whole = b"".join(zs)
    size = len(whole)
    f = ArchiveFile(zs, 0, size)
    assert f.seek(0, 2) == size and f.tell() == size and f.seek(0) == 0
    got = bytearray()
    while len(got) < size:  # waitress: peek, seek back, skip what the socket took
        at = f.tell()
        peek = f.read(16384)
        assert peek
        f.seek(at)
        sent = max(1, len(peek) // 3)
        got += peek[:sent]
        f.seek(sent, 1)
    assert bytes(got) == whole
    assert f.read(10) == b""
    f.seek(1000)
    assert f.read(5) == whole[1000:1005]  # a jump backwards starts a new pass
    f.seek(size - 3)
    assert f.read() == whole[-3:]
    f.close()
    f.close()
    assert f.closed


def test_archive_file_of_a_range_and_its_failures(files: Path) -> None:
    zs = stream_of(files)
    whole = b"".join(zs)
    f = ArchiveFile(zs, 100, 200)
    assert f.seek(0, 2) == 100
    f.seek(0)
    assert f.read(1000) == whole[100:200]
    f.close()
    with pytest.raises(ValueError):
        ArchiveFile(zs, 0, 10).seek(-1)
    short = ArchiveFile(zs, 0, len(whole) + 10)  # announces more than there is
    short.seek(len(whole) - 1)
    assert short.read(1) == whole[-1:]
    for _ in range(2):  # the failure stays: no later read may look like a clean end
        with pytest.raises(RuntimeError, match="ended at byte"):
            short.read(1)
    short.close()


def test_which_archives_and_servers_get_a_file(files: Path) -> None:
    zs = stream_of(files)
    assert reads_locally(zs)
    zs.add(iter([b"x"]), "it", size=1)
    assert not reads_locally(zs)
    assert server_file({"wsgi.file_wrapper": FileWrapper}, zs, 0, 10) is None
    assert server_file({}, zs, 0, 10) is None
    zs.close()


def test_a_failure_before_the_first_byte_is_still_a_500(files: Path, tmp_path: Path) -> None:
    app = Recording(files, manifest(files), verify_sizes="lazy")  # found missing when read
    (files / "a.bin").unlink()
    out = tmp_path / "answer"
    with thread_server(app) as url:
        result = curl("-o", str(out), "-w", "%{http_code}", url + "all.zip")
    assert result.stdout == b"500" and not out.read_bytes().startswith(b"PK")
    assert not open_files(files)


class FailingBody:
    """A rangeable body whose every pass fails at once; counts its close() calls."""

    def __init__(self) -> None:
        self.closed = 0

    def app_iter_range(self, start: int, stop: int) -> Any:
        raise OSError("gone")

    def close(self) -> None:
        self.closed += 1


def test_a_file_that_fails_to_prime_leaves_the_body_to_the_plain_answer() -> None:
    import gc

    body = FailingBody()
    f = ArchiveFile(body, 0, 10)
    assert not f.prime() and f.closed
    del f
    gc.collect()
    assert body.closed == 0  # the plain body still owns it and will close it once
    other = ArchiveFile(body, 0, 10)
    other.close()
    assert body.closed == 1


def test_a_middleware_that_wraps_the_body_still_gets_the_whole_archive(
    files: Path, tmp_path: Path
) -> None:
    """Something between us and waitress (a tween, a logging middleware) iterates the
    wrapper instead: waitress's wrapper then reads the file block by block."""
    inner = Recording(files, manifest(files))

    class Wrapped:
        def __init__(self, body: Any) -> None:
            self.body = body

        def __iter__(self) -> Any:
            return iter(self.body)

        def close(self) -> None:
            self.body.close()

    def app(environ: dict[str, Any], start_response: Any) -> Wrapped:
        return Wrapped(inner(environ, start_response))

    out = tmp_path / "out.zip"
    with thread_server(app) as url:
        assert curl("-o", str(out), url + "all.zip").returncode == 0
    assert inner.kinds() == ["ReadOnlyFileBasedBuffer"]
    with zipfile.ZipFile(out) as archive:
        assert archive.testzip() is None
    assert not open_files(files)
