"""Red team of the three fast paths (manifest by columns, small-file runs, waitress's
file path): what each promises must hold exactly as on the general path.

- Manifests: random manifests (odd names: ``\\r``, U+2028, ``\\x85``, ``\\x0b``, combining
  characters, ``%00``, ``C:``...; odd locations: ``//``, ``/./``, ``%2e%2e``, ``%2f``,
  queries, trailing ``/``, links in and out, a FIFO) built by columns, with the column
  build switched off, and with the column parse switched off: the same bytes, or the
  same refusal naming the same line, never echoing the manifest.
- Small-file runs: a file swapped for a link or a FIFO, a folder swapped for a link, a
  folder renamed while the run holds its descriptor, a given CRC the data contradicts.
- waitress's file path (``zipwsgi serve``): clients dropping at random points of
  downloads, ranges, HEAD and If-Range, many at once; no descriptor left behind.
"""

from __future__ import annotations

import io
import logging
import os
import random
import socket
import struct
import threading
import time
import zipfile
import zlib
from pathlib import Path
from typing import Any, Iterator, Optional
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from readers import check_unzip
from servers import fd_count, thread_server, zipwsgi_serve
from webtest import TestApp

import zipwsgi.http.manifest_archive as manifest_archive
from zipwsgi import ZipMiddleware, ZipStream
from zipwsgi.errors import DuplicateNameError, SourceChangedError, SourceError

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")

SECRET = b"TOP SECRET, outside the root"

# -- manifests: the column build against the line build --------------------------------


@pytest.fixture(scope="module")
def share(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("share")
    root = base / "root"
    (root / "d").mkdir(parents=True)
    (root / "a").write_bytes(b"hello")
    (root / "d" / "b").write_bytes(b"world!")
    (root / "d" / "c c").write_bytes(b"x")
    (root / "\u00e9").write_bytes(b"e")
    (base / "outside").write_bytes(SECRET)
    os.symlink("d/b", root / "ln")
    os.symlink(base / "outside", root / "out")
    os.symlink(base, root / "up")
    os.mkfifo(root / "fifo")
    return root


SIZES = {"a": 5, "d/b": 6, "d/c%20c": 1, "%C3%A9": 1, "ln": 6, "out": len(SECRET),
         "up/outside": len(SECRET)}
LOCATIONS = st.sampled_from([
    "/files/a", "/files/d/b", "/files/d/c%20c", "/files/%C3%A9", "/files/ln", "/files/out",
    "/files/up/outside", "/files//a", "/files/./a", "/files/d/../a", "/files/%2e%2e/x",
    "/files/d%2fb", "/files/d%5cb", "/files/a?x=1", "/files/a/", "/files/d/b%3F",
    "/files/%00", "/files/a%", "/files/a%2", "/files/d//b", "/other/a", "/files/d/./b",
    "/files/", "/files/d", "/files%2fa", "/files/a%0d", "/files/.%2e/up", "/files/fifo",
    "/files/d/", "/files/%64/b", "/files/d/%62", "/files/a#x", "@directory", "%40directory",
])
NAME_PIECES = st.sampled_from([
    "a", "b", "/", ".", "..", "\\", ":", "C:", " ", "\r", "\u2028", "\x85", "\x0b", "\x0c",
    "\x1c", "\u0301", "\u00e9", "%00", "%", "\x00", "\t", "\u2215", "x" * 300,
])
NAMES = st.lists(NAME_PIECES, max_size=6).map("".join)
CRCS = st.sampled_from(["-", "-", "3610a686", "0", "ffffffff", "1a2B3c4D"])
BREAKS = st.sampled_from(["\n", "\r\n", "\r", "\n\n", "\n\r"])


def manifest_app(body: bytes, fmt: str, charset: Optional[str]) -> Any:
    headers = [("X-Archive-Files", fmt), ("Content-Type", "text/plain"),
               ("X-Archive-Pass-Headers", "Cookie")]
    if charset:
        headers.append(("X-Archive-Charset", charset))

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", headers)
        return [body]

    return app


def answer(root: Path, body: bytes, *, way: str, fmt: str = "zip", lazy: bool = False,
           charset: Optional[str] = None, monkeypatch: pytest.MonkeyPatch) -> Any:
    """What the client gets: (status, headers, body), or what the body raised."""
    middleware = ZipMiddleware(manifest_app(body, fmt, charset), {"/files/": str(root)},
                               allow_subrequests=False,
                               verify_sizes="lazy" if lazy else "eager")
    with monkeypatch.context() as patch:
        if way != "columns":
            patch.setattr(middleware.manifests, "_add_plain", lambda stream, columns: False)
        if way == "lines":
            patch.setattr(manifest_archive, "parse_columns", lambda *a, **k: None)
        try:
            response = TestApp(middleware).get("/", expect_errors=True)
        except (SourceError, OSError) as exc:
            return "raised", type(exc).__name__, str(exc)
    headers = sorted((name.lower(), value) for name, value in response.headerlist
                     if name.lower() not in ("date",))
    return response.status, headers, response.body


def check_answer(result: Any, body: bytes) -> None:
    """The promises any answer keeps: no X-Archive-* header and no line break in any
    header; a refusal names its line and repeats nothing of the manifest."""
    if result[0] == "raised":
        return
    status, headers, content = result
    for name, value in headers:
        assert not name.startswith("x-archive"), name
        assert "\r" not in value and "\n" not in value
    if not content.startswith((b"PK", b"d/")) and status != "200 OK":
        text = content.decode("latin-1")
        assert "manifest line" in text or "bad manifest" in text, text
        for line in body.splitlines():
            fields = line.split(b" ")
            for field in fields[2:]:
                if len(field) > 3:
                    assert field.decode("latin-1") not in text, (field, text)
    if content.startswith(b"PK"):
        assert SECRET not in content
        zipfile.ZipFile(io.BytesIO(content)).testzip()


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(lines=st.lists(st.tuples(CRCS, LOCATIONS, NAMES, BREAKS, st.booleans()),
                      min_size=1, max_size=5),
       charset=st.sampled_from([None, None, "cp1252", "raw_unicode_escape"]),
       fmt=st.sampled_from(["zip", "zip", "tar"]), lazy=st.booleans(),
       directory=st.booleans(), invalid_utf8=st.booleans())
def test_the_three_ways_of_a_manifest_answer_alike(
    share: Path, monkeypatch: pytest.MonkeyPatch, lines: list[tuple[str, str, str, str, bool]],
    charset: Optional[str], fmt: str, lazy: bool, directory: bool, invalid_utf8: bool,
) -> None:
    text = ""
    for crc, location, name, brk, right in lines:
        size = SIZES.get(location[len("/files/"):], 5) if right else 3
        if location.endswith("directory"):
            size = 0
        text += f"{crc} {size} {location} {name}{brk}"
    if directory:
        text += "- 0 @directory d/\n"
    body = text.encode("utf-8")
    if invalid_utf8:  # so that X-Archive-Charset applies
        body += b"- 5 /files/a \xff\xe9\n"
    results = [answer(share, body, way=way, fmt=fmt, lazy=lazy, charset=charset,
                      monkeypatch=monkeypatch) for way in ("columns", "entries", "lines")]
    assert results[0] == results[1] == results[2]
    check_answer(results[0], body)


@pytest.mark.parametrize("names", [
    ["a", "./a"], ["d/b", "d\\b"], ["x/a", "/x/a"], ["a", "a/b"], ["a/b", "a"],
    ["C:/a", "a"], ["a/C:b", "a/b"], ["q", "q/"], ["dir/", "dir"],
])
def test_names_that_clash_only_once_normalised_are_refused_naming_the_second_line(
    share: Path, monkeypatch: pytest.MonkeyPatch, names: list[str]
) -> None:
    body = "".join(f"- 5 /files/a {name}\n" for name in names).encode()
    results = [answer(share, body, way=way, monkeypatch=monkeypatch)
               for way in ("columns", "entries", "lines")]
    assert results[0] == results[1] == results[2]
    status, _, content = results[0]
    assert status.startswith("500")
    assert b"manifest line 2: archive name refused" in content
    check_answer(results[0], body)


def test_a_plain_manifest_takes_the_column_build(
    share: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = b"- 5 /files/a a\n- 6 /files/d/b d/b\n- 1 /files/d/c%20c d/c c\n"
    taken: list[bool] = []
    original = manifest_archive.ManifestArchive._add_plain

    def spy(self: Any, stream: Any, columns: Any) -> bool:
        taken.append(original(self, stream, columns))
        return taken[-1]

    monkeypatch.setattr(manifest_archive.ManifestArchive, "_add_plain", spy)
    status, headers, content = answer(share, body, way="columns", monkeypatch=monkeypatch)
    assert taken == [True] and status == "200 OK"
    assert zipfile.ZipFile(io.BytesIO(content)).namelist() == ["a", "d/b", "d/c c"]


# -- small-file runs: what changes between plan and pass -------------------------------


def same_size_and_mtime(path: Path, model: Path) -> None:
    """Make ``path`` (the attacker's own file) look like ``model`` to a size and mtime
    check: the same length, the same mtime."""
    path.write_bytes(b"h" * model.stat().st_size)
    st = model.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.fixture()
def swap_tree(tmp_path: Path) -> tuple[Path, Path]:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "d").mkdir(parents=True)
    outside.mkdir()
    (outside / "s.txt").write_bytes(SECRET)
    same_size_and_mtime(root / "d" / "s.txt", outside / "s.txt")
    return root, outside


def walked(root: Path) -> ZipStream:
    stream = ZipStream()
    stream.add_path(str(root / "d"), "d")
    stream.size  # noqa: B018 -- planned
    return stream


def manifest_body(root: Path) -> Iterator[bytes]:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("X-Archive-Files", "zip")])
        return [b"- %d /files/d/s.txt d/s.txt\n" % len(SECRET)]

    response = TestApp(ZipMiddleware(app, {"/files/": str(root)}))
    # The body as the server gets it (planned, not yet read): webtest would read it.
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "SERVER_NAME": "t",
               "SERVER_PORT": "80", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(),
               "wsgi.errors": io.StringIO()}
    body = response.app(environ, lambda status, headers, exc_info=None: None)
    return iter(body)


def planned(root: Path, how: str) -> Iterator[bytes]:
    return iter(walked(root)) if how == "walk" else manifest_body(root)


def drain_or_error(chunks: Iterator[bytes]) -> Any:
    try:
        return b"".join(chunks)
    except SourceError as exc:
        return exc


def emitted(chunks: Iterator[bytes]) -> tuple[bytes, Optional[BaseException]]:
    """Every byte a pass gave before it ended, and what ended it (None: it completed)."""
    data = b""
    try:
        for chunk in chunks:
            data += chunk
    except SourceError as exc:
        return data, exc
    return data, None


@pytest.mark.parametrize("how", ["walk", "manifest"])
def test_a_file_swapped_for_a_link_after_planning_is_refused(
    swap_tree: tuple[Path, Path], how: str
) -> None:
    root, outside = swap_tree
    chunks = planned(root, how)
    (root / "d" / "s.txt").unlink()
    os.symlink(outside / "s.txt", root / "d" / "s.txt")
    result = drain_or_error(chunks)
    assert isinstance(result, SourceError), result


@pytest.mark.parametrize("how", ["walk", "manifest"])
def test_a_folder_swapped_for_a_link_after_planning_is_not_read_through(
    swap_tree: tuple[Path, Path], how: str
) -> None:
    root, outside = swap_tree
    chunks = planned(root, how)
    os.rename(root / "d", root / "gone")
    os.symlink(outside, root / "d")
    data, error = emitted(chunks)
    assert SECRET not in data, "the outside file was archived"
    assert isinstance(error, SourceChangedError)


def test_a_folder_renamed_while_the_run_holds_its_descriptor_reads_nothing_outside(
    tmp_path: Path,
) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    outside.mkdir()
    for index in range(40):
        (outside / f"f{index:02d}").write_bytes(SECRET)
    (root / "d").mkdir(parents=True)
    for index in range(40):
        same_size_and_mtime(root / "d" / f"f{index:02d}", outside / f"f{index:02d}")
    stream = ZipStream(chunk_size=64)  # a chunk per file or so: the run yields mid-folder
    stream.add_path(str(root / "d"), "d")
    chunks = iter(stream)
    first = next(chunks)
    os.rename(root / "d", root / "moved")
    os.symlink(outside, root / "d")
    rest = drain_or_error(chunks)
    # Read on through the folder it opened (the moved one, inside the root): the archive
    # is whole and holds the files it announced, nothing from outside.
    assert isinstance(rest, bytes)
    data = first + rest
    assert SECRET not in data
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.testzip() is None and len(archive.namelist()) == 41


def run_with_bound(work: Any, unblock: Path) -> list[Any]:
    """Run ``work`` in a thread; if it is still blocked after a while (an open of a FIFO
    waits for a writer), open the FIFO for writing so the thread can end. Returns what
    it gave, and whether it had to be unblocked."""
    result: list[Any] = []

    def target() -> None:
        try:
            result.append(work())
        except Exception as exc:  # noqa: BLE001 -- compared by the caller
            result.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(5)
    blocked = thread.is_alive()
    while thread.is_alive():
        try:
            os.close(os.open(unblock, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
        thread.join(0.05)
    return [*result, blocked]


@pytest.mark.parametrize("how", ["walk", "manifest"])
def test_a_fifo_swapped_in_after_planning_is_refused_without_blocking(
    swap_tree: tuple[Path, Path], how: str
) -> None:
    root, _ = swap_tree
    chunks = planned(root, how)
    (root / "d" / "s.txt").unlink()
    os.mkfifo(root / "d" / "s.txt")
    result, blocked = run_with_bound(lambda: drain_or_error(chunks), root / "d" / "s.txt")
    assert isinstance(result, SourceError)
    assert not blocked, "the pass blocked opening a FIFO"


def test_a_file_rewritten_in_place_cuts_a_later_run(tmp_path: Path) -> None:
    """Same size, same mtime, other bytes: the write moved the file's ctime, so its
    identity says so when opened (and the CRC the first pass learned would too)."""
    root = tmp_path / "root"
    (root / "d").mkdir(parents=True)
    for index in range(30):
        (root / "d" / f"f{index:02d}").write_bytes(b"%02d" % index * 50)
    stream = ZipStream(chunk_size=256)
    stream.add_path(str(root / "d"), "d")
    first = drain_or_error(iter(stream))
    assert isinstance(first, bytes) and zipfile.ZipFile(io.BytesIO(first)).testzip() is None
    target = root / "d" / "f29"
    st = target.stat()
    target.write_bytes(b"XX" * 50)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    again = drain_or_error(iter(stream))
    assert isinstance(again, SourceChangedError)
    assert "another file stands" in str(again) or "CRC-32" in str(again)


# -- waitress's file path ----------------------------------------------------------------


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    share = tmp_path_factory.mktemp("serve")
    rnd = random.Random(7)
    for folder in range(12):
        sub = share / "docs" / f"d{folder:02d}"
        sub.mkdir(parents=True)
        for index in range(25):
            (sub / f"f{index}.txt").write_bytes(rnd.randbytes(rnd.randint(0, 5000)))
    (share / "docs" / "big.bin").write_bytes(rnd.randbytes(3_000_000))
    return share


def exchange(port: int, request: bytes, keep: int, reset: bool) -> bytes:
    """Send ``request``; read until ``keep`` bytes came or the server closed; then close
    (with a reset if asked)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    got = b""
    try:
        sock.sendall(request)
        while len(got) < keep:
            data = sock.recv(65536)
            if not data:
                break
            got += data
    finally:
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    return got


def settled_fds(pid: int, base: int) -> int:
    """The server's descriptor count once closing connections are done (polled: waitress
    closes on its own loop)."""
    count = fd_count(pid)
    for _ in range(200):
        if count <= base:
            break
        time.sleep(0.05)
        count = fd_count(pid)
    return count


def test_clients_dropping_anywhere_under_serve_leave_no_descriptor(docs: Path) -> None:
    with zipwsgi_serve(docs) as server:
        port = urlsplit(server.url).port
        assert port is not None
        close = b"Host: t\r\nConnection: close\r\n"
        whole = exchange(port, b"GET /docs.zip HTTP/1.1\r\n" + close + b"\r\n", 1 << 40, False)
        head, _, body = whole.partition(b"\r\n\r\n")
        archive = zipfile.ZipFile(io.BytesIO(body))
        assert archive.testzip() is None and len(archive.namelist()) == 12 * 26 + 2
        etag = [line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
                if line.lower().startswith(b"etag:")][0]
        base = settled_fds(server.pid, 0)
        requests = [
            b"GET /docs.zip HTTP/1.1\r\n" + close,
            b"GET /docs.tar HTTP/1.1\r\n" + close,
            b"GET /docs.zip HTTP/1.1\r\n" + close + b"Range: bytes=1000-2500000\r\n",
            b"GET /docs.zip HTTP/1.1\r\n" + close + b"Range: bytes=0-10,500-900000\r\n",
            b"GET /docs.zip HTTP/1.1\r\n" + close + b"Range: bytes=-70000\r\n"
            b"If-Range: \"other\"\r\n",
            b"GET /docs.zip HTTP/1.1\r\n" + close + b"Range: bytes=3000-\r\nIf-Range: "
            + etag + b"\r\n",
            b"HEAD /docs.zip HTTP/1.1\r\n" + close,
        ]
        rnd = random.Random(11)
        plan = [(rnd.choice(requests) + b"\r\n", rnd.choice([0, 200, 9000, 300_000, 2_000_000,
                                                             1 << 40]), rnd.random() < 0.5)
                for _ in range(72)]
        answers: list[bytes] = []

        def client(share: list[tuple[bytes, int, bool]]) -> None:
            for request, keep, reset in share:
                answers.append(exchange(port, request, keep, reset))

        threads = [threading.Thread(target=client, args=(plan[i::12],)) for i in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert settled_fds(server.pid, base) <= base
        assert "Traceback" not in "".join(server.errors)  # type: ignore[attr-defined]
        # The ranges that were read whole are the archive's own bytes.
        ranged = exchange(port, requests[5] + b"\r\n", 1 << 40, False)
        assert ranged.startswith(b"HTTP/1.1 206") and ranged.partition(b"\r\n\r\n")[2] == \
            body[3000:]
        stale = exchange(port, requests[4] + b"\r\n", 1 << 40, False)
        assert stale.startswith(b"HTTP/1.1 200") and stale.partition(b"\r\n\r\n")[2] == body
        headed = exchange(port, requests[6] + b"\r\n", 1 << 40, False)
        assert headed.startswith(b"HTTP/1.1 200") and headed.endswith(b"\r\n\r\n")
        assert settled_fds(server.pid, base) <= base


@pytest.fixture()
def crc_files(tmp_path: Path) -> Path:
    root = tmp_path / "files"
    root.mkdir()
    rnd = random.Random(3)
    for index in range(20):
        (root / f"s{index}").write_bytes(rnd.randbytes(rnd.randint(1, 3000)))
    (root / "big").write_bytes(rnd.randbytes(900_000))
    return root


def crc_manifest(root: Path, wrong: str = "", given: bool = False) -> bytes:
    lines = []
    for path in sorted(root.iterdir()):
        data = path.read_bytes()
        crc = zlib.crc32(data) ^ (1 if path.name == wrong else 0)
        field = f"{crc:08x}" if given or path.name == wrong else "-"
        lines.append(f"{field} {len(data)} /files/{path.name} {path.name}\n")
    return "".join(lines).encode()


def serving(root: Path, body: bytes) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("X-Archive-Files", "zip"), ("X-Archive-Charset", "utf-8")])
        return [body]

    return thread_server(ZipMiddleware(app, {"/files/": str(root)}))


def raw_get(url: str, headers: str = "", method: str = "GET") -> bytes:
    address = urlsplit(url)
    assert address.port is not None
    return exchange(address.port, f"{method} / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                    f"{headers}\r\n".encode(), 1 << 40, False)


def content_length(answer: bytes) -> int:
    head = answer.partition(b"\r\n\r\n")[0].decode("latin-1").lower()
    return int(head.split("content-length:")[1].split("\r\n")[0])


@pytest.mark.parametrize("wrong", ["s7", "big", "s19"])
def test_a_contradicted_crc_cuts_the_file_path_short_of_its_length(
    crc_files: Path, wrong: str, open_fds: Any, caplog: pytest.LogCaptureFixture
) -> None:
    body = crc_manifest(crc_files, wrong=wrong)
    base = open_fds()
    with caplog.at_level(logging.ERROR, logger="zipwsgi"), serving(crc_files, body) as url:
        answer = raw_get(url)
        assert answer.startswith(b"HTTP/1.1 200")  # the first chunk was good
        assert len(answer.partition(b"\r\n\r\n")[2]) < content_length(answer)
        assert b"x-archive" not in answer.lower()
    assert "CRC-32" in caplog.text
    assert open_fds() <= base


@pytest.mark.parametrize("spec", ["5000-", "100-200", "40000-700000", "-1000", "0-0"])
def test_ranges_mid_entry_with_dash_crcs_through_the_file_path(
    crc_files: Path, tmp_path: Path, spec: str, open_fds: Any
) -> None:
    body = crc_manifest(crc_files)
    base = open_fds()
    with serving(crc_files, body) as url:
        whole = raw_get(url).partition(b"\r\n\r\n")[2]
        out = tmp_path / "whole.zip"
        out.write_bytes(whole)
        check_unzip(out)
        part = raw_get(url, f"Range: bytes={spec}\r\n")
        assert part.startswith(b"HTTP/1.1 206")
        first, _, last = spec.partition("-")
        if not first:
            expected = whole[-int(last):]
        else:
            expected = whole[int(first):(int(last) + 1 if last else None)]
        assert part.partition(b"\r\n\r\n")[2] == expected
        head = raw_get(url, f"Range: bytes={spec}\r\n", method="HEAD")
        assert head.endswith(b"\r\n\r\n") and b"x-archive" not in head.lower()
    assert open_fds() <= base


def test_a_failure_in_the_first_chunk_is_a_500_and_closes_everything(
    crc_files: Path, open_fds: Any, caplog: pytest.LogCaptureFixture
) -> None:
    (crc_files / "big").unlink()  # small files only: the first chunk holds them all
    body = crc_manifest(crc_files, wrong="s4")
    base = open_fds()
    with caplog.at_level(logging.ERROR, logger="zipwsgi"), serving(crc_files, body) as url:
        for _ in range(3):
            answer = raw_get(url)
            assert answer.startswith(b"HTTP/1.1 500")
            assert b"s4" not in answer and b"/files/" not in answer
            assert b"x-archive" not in answer.lower()
            part = raw_get(url, "Range: bytes=10-\r\n")
            assert part.startswith(b"HTTP/1.1 500")
    assert "CRC-32" in caplog.text
    assert open_fds() <= base


# -- folder walks: names on disk with backslashes ---------------------------------------


@pytest.mark.parametrize("files", [["a", "a\\b"], ["m\\n\\o", "m\\n"], ["q\\r", "q"],
                                   ["C:a\\b", "a"], ["b\\c", "C:b"], ["C:a", "a\\b"]])
def test_a_walk_refuses_a_file_where_a_backslash_name_needs_a_folder(
    tmp_path: Path, files: list[str]
) -> None:
    for name in files:
        (tmp_path / name).write_bytes(name.encode())
    stream = ZipStream()
    try:
        stream.add_path(str(tmp_path), "d")
        data = b"".join(stream)
    except DuplicateNameError:
        return
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    files_named = [name for name in names if not name.endswith("/")]
    clashes = [name for name in files_named
               if any(other.startswith(name + "/") for other in names)]
    assert not clashes, f"files where folders must be: {clashes} in {names}"


@pytest.mark.parametrize("spec", ["1000000-", "-100", "6000-3100000"])
def test_crcs_a_range_needs_are_read_on_a_task_thread_not_the_io_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spec: str
) -> None:
    """With '-' CRCs a range that starts mid-archive needs the CRCs of entries it does
    not send whole; reading those (whole files) must not stall waitress's one I/O thread."""
    from zipwsgi.engine import writer

    threads: list[str] = []
    original = writer.Writer._crc_of

    def spy(self: Any, entry: Any) -> int:
        threads.append(threading.current_thread().name)
        return original(self, entry)

    monkeypatch.setattr(writer.Writer, "_crc_of", spy)
    rnd = random.Random(5)
    sizes = {"a": 5000, "big": 3_000_000, "c": 2_000_000, "z": 10}
    for name, size in sizes.items():
        (tmp_path / name).write_bytes(rnd.randbytes(size))
    body = "".join(f"- {size} /files/{name} {name}\n" for name, size in sizes.items()).encode()
    with serving(tmp_path, body) as url:
        whole = raw_get(url).partition(b"\r\n\r\n")[2]
        answer = raw_get(url, f"Range: bytes={spec}\r\n")
    first, _, last = spec.partition("-")
    expected = whole[-int(last):] if not first else whole[int(first):(int(last) + 1 if last
                                                                    else None)]
    assert answer.startswith(b"HTTP/1.1 206") and answer.partition(b"\r\n\r\n")[2] == expected
    assert threads and all(name.startswith("waitress-") for name in threads), threads
