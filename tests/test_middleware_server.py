"""ZipMiddleware behind a real waitress server, downloaded with curl and raw sockets.

What only a real server shows: that a failure after the first byte cuts the connection
(curl reports a short transfer, never a complete-looking archive), that a client going
away closes every file at once, that ``curl -C -`` resumes to the identical file, and
that two server processes serve byte-identical archives.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import zlib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from servers import example_server, open_with_readers, thread_server

from zipwsgi import ZipMiddleware

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")


def curl(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["curl", "-sS", *args], capture_output=True, timeout=60)
    if check:
        assert result.returncode == 0, result.stderr.decode()
    return result


def head_of(url: str) -> dict[str, str]:
    lines = curl("-I", url).stdout.decode("latin-1").splitlines()
    return {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}


@pytest.fixture()
def files(tmp_path: Path) -> Path:
    """A folder with a few hundred KiB in several files and a non-ASCII name."""
    root = tmp_path / "files"
    (root / "café").mkdir(parents=True)
    (root / "café" / "menu.txt").write_bytes(b"espresso\n" * 1000)
    (root / "Отчёт.txt").write_text("отчёт\n" * 100, "utf-8")
    (root / "random.bin").write_bytes(os.urandom(300_000))
    (root / "empty.txt").write_bytes(b"")
    return root


# --- two processes, resume, readers ----------------------------------------------------


def test_two_server_processes_serve_identical_bytes(files, tmp_path):
    bodies = {}
    for run in ("first", "second"):
        with example_server("wsgi_app", files) as server:
            for trigger in ("manifest", "stream"):
                out = tmp_path / f"{run}-{trigger}.zip"
                curl("-o", str(out), server.url + f"{trigger}.zip")
                bodies[run, trigger] = out.read_bytes()
                bodies[run, trigger, "etag"] = head_of(server.url + f"{trigger}.zip")["etag"]
    for key in [("manifest",), ("stream",), ("manifest", "etag"), ("stream", "etag")]:
        assert bodies[("first", *key)] == bodies[("second", *key)]
    open_with_readers(tmp_path / "first-manifest.zip")
    open_with_readers(tmp_path / "first-stream.zip")


def test_curl_resumes_a_cut_download_to_the_identical_file(files, tmp_path):
    with example_server("wsgi_app", files) as server:
        for trigger in ("manifest", "stream"):
            url = server.url + f"{trigger}.zip"
            whole = tmp_path / f"{trigger}-whole.zip"
            curl("-o", str(whole), url)
            size = whole.stat().st_size
            for cut in (1, 1000, size // 2, size - 1):
                part = tmp_path / f"{trigger}-{cut}.zip"
                # A download that stopped after `cut` bytes, as a dropped connection leaves it.
                part.write_bytes(whole.read_bytes()[:cut])
                result = curl("-C", "-", "-o", str(part), "-w", "%{http_code}", url)
                assert result.stdout == b"206"
                assert part.read_bytes() == whole.read_bytes()
            open_with_readers(whole)


def test_a_download_with_known_crcs_opens_in_javas_stream_reader(files, tmp_path):
    names = ["café/menu.txt", "random.bin", "Отчёт.txt"]
    lines = []
    for name in names:
        data = (files / name).read_bytes()
        location = "/files/" + "".join(f"%{byte:02X}" for byte in name.encode())
        lines.append(f"{zlib.crc32(data):08x} {len(data)} {location} {name}")
    manifest = "\n".join(lines).encode()

    def app(environ, start_response):
        start_response("200 OK", [("X-Archive-Files", "zip")])
        return [manifest]

    with thread_server(ZipMiddleware(app, roots={"/files/": str(files)})) as url:
        out = tmp_path / "known.zip"
        curl("-o", str(out), url + "known")
    open_with_readers(out, java_stream=True)


# --- failures on the wire ---------------------------------------------------------------


def test_a_file_truncated_after_the_first_byte_cuts_the_connection(files, tmp_path, caplog):
    victim = files / "random.bin"

    def app(environ, start_response):
        if environ["PATH_INFO"] == "/big":
            def body():
                yield b"x" * 400_000
                # Runs once the archive has taken all 400 000 bytes, i.e. mid-download.
                os.truncate(victim, 1000)

            start_response("200 OK", [("Content-Length", "400000")])
            return body()
        start_response("200 OK", [("X-Archive-Files", "zip")])
        return [b"- 400000 /big big.bin\n- 300000 /files/random.bin random.bin\n"]

    with thread_server(ZipMiddleware(app, roots={"/files/": str(files)})) as url:
        out = tmp_path / "cut.zip"
        result = curl("-o", str(out), "-D", "-", url + "cut", check=False)
    headers = result.stdout.decode("latin-1").lower()
    assert "200 ok" in headers and "content-length:" in headers
    announced = int(headers.split("content-length:")[1].split()[0])
    assert result.returncode == 18, result.stderr  # CURLE_PARTIAL_FILE
    assert 400_000 < out.stat().st_size < announced
    assert "archive aborted after" in caplog.text


def test_a_failing_sub_request_answers_502_over_http(files, tmp_path):
    def app(environ, start_response):
        if environ["PATH_INFO"] == "/dl":
            start_response("200 OK", [("X-Archive-Files", "zip")])
            return [b"- 0 /files/empty.txt a\n- 5 /nowhere b\n"]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no"]

    with thread_server(ZipMiddleware(app, roots={"/files/": str(files)})) as url:
        out = tmp_path / "answer"
        result = curl("-o", str(out), "-w", "%{http_code}", url + "dl")
    assert result.stdout == b"502"
    assert b"manifest line 2" in out.read_bytes() and not out.read_bytes().startswith(b"PK")


# --- disconnects ------------------------------------------------------------------------


def _open_data_files(folder: Path) -> list[str]:
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(folder)):
            found.append(target)
    return found


def _wait_until(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_a_client_that_disconnects_leaves_no_file_open(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    size = 64 * 1024 * 1024
    names = [f"part{n}.bin" for n in range(4)]
    for name in names:
        with open(data / name, "wb") as f:
            f.truncate(size)  # sparse: big enough to outrun every buffer, cheap to read
    manifest = "\n".join(f"- {size} /data/{name} {name}" for name in names).encode()

    def app(environ, start_response):
        start_response("200 OK", [("X-Archive-Files", "zip")])
        return [manifest]

    middleware = ZipMiddleware(app, roots={"/data/": str(data)})
    kept = []

    def keeping(environ, start_response):
        # Holding the body alive proves it is close() that releases the file, not the
        # garbage collector tidying up after the server dropped it.
        kept.append(middleware(environ, start_response))
        return kept[-1]

    with thread_server(keeping) as url:
        address = urlsplit(url)
        client = socket.create_connection((address.hostname, address.port))
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        client.sendall(b"GET /all HTTP/1.1\r\nHost: test\r\n\r\n")
        received = 0
        while received < 1024 * 1024:
            received += len(client.recv(65536))
        # The server is mid-archive, blocked on a slow reader, with a file open.
        assert _wait_until(lambda: _open_data_files(data))
        client.close()
        assert _wait_until(lambda: not _open_data_files(data)), _open_data_files(data)
