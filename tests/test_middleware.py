"""ZipMiddleware's HTTP semantics, driven in-process with webtest.

Each test wraps a small WSGI app (:class:`Upstream`) that answers a manifest the way an
nginx mod_zip upstream would, or returns a ZipStream, or has nothing to do with zips at
all; the archives that come back are opened with :mod:`zipfile` and compared with the
archive the engine builds directly from the same files, never with stored bytes.
"""

from __future__ import annotations

import datetime
import logging
import os
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any, Callable

import pytest
import webob
import webtest
from share_tree import open_zip

from zipwsgi import ZipMiddleware, ZipStream
from zipwsgi.engine.files import FileSource
from zipwsgi.errors import SourceChangedError, SubrequestError

FILE1 = b"This is the first file.\n"  # mod_zip's own test data
FILE2 = b"This is the second file.\n"
SECRET = b"TOP SECRET: this must never leave the server"


# --- fixtures and helpers --------------------------------------------------------------


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    """The folder served under /files/, with a secret next to it (outside the root)."""
    (tmp_path / "secret.txt").write_bytes(SECRET)
    root = tmp_path / "root"
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "file1.txt").write_bytes(FILE1)
    (root / "file2.txt").write_bytes(FILE2)
    (root / "file 3.txt").write_bytes(b"a name with a space\n")
    (root / "a+b.txt").write_bytes(b"plus stays plus\n")
    (root / "sub" / "deep" / "c.txt").write_bytes(b"deep\n")
    (root / "Отчёт.txt").write_bytes("отчёт\n".encode())
    return root


class Upstream:
    """The wrapped app. ``/dl...`` answers the manifest; ``docs`` are sub-request targets.

    Every call's environ is recorded in ``calls`` (copied as it arrived).
    """

    def __init__(self, manifest: bytes = b"", headers: list[tuple[str, str]] | None = None,
                 status: str = "200 OK") -> None:
        self.manifest = manifest
        self.status = status
        self.headers = [("Content-Type", "text/plain"), ("X-Archive-Files", "zip")]
        self.headers += headers or []
        self.docs: dict[str, tuple[str, list[tuple[str, str]], list[bytes]]] = {}
        self.calls: list[dict[str, Any]] = []

    def doc(self, path: str, body: bytes, status: str = "200 OK",
            headers: list[tuple[str, str]] | None = None) -> None:
        if headers is None:
            headers = [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
        self.docs[path] = (status, headers, [body])

    def __call__(self, environ, start_response):
        self.calls.append(dict(environ))
        path = environ["PATH_INFO"].encode("latin-1").decode("utf-8")
        if path in self.docs:
            status, headers, body = self.docs[path]
            start_response(status, headers)
            return list(body)
        if path.startswith("/dl"):
            start_response(self.status, list(self.headers))
            return [self.manifest]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]

    def subrequests(self) -> list[dict[str, Any]]:
        return [call for call in self.calls if call.get("zipwsgi.subrequest")]


@pytest.fixture()
def serve(root: Path) -> Callable[..., webtest.TestApp]:
    def serve(upstream, **options) -> webtest.TestApp:
        options.setdefault("roots", {"/files/": str(root)})
        return webtest.TestApp(ZipMiddleware(upstream, **options))

    return serve


def engine_archive(root: Path, entries: list[tuple[str, str]], **options) -> bytes:
    """What the engine itself makes of ``(file under root, name)`` pairs."""
    stream = ZipStream(**options)
    for rel, name in entries:
        stream.add(FileSource(str(root / rel)), name)
    return b"".join(stream)


def two_files() -> bytes:
    return b"- 24 /files/file1.txt file1.txt\n- 25 /files/file2.txt file2.txt\n"


def call(app, path: str = "/dl", **headers: str) -> tuple[str, list[tuple[str, str]], bytes]:
    """Status, headers and body exactly as the app gives them (webtest adds a length)."""
    seen: list[Any] = []
    environ = webob.Request.blank(path, headers=headers).environ
    body = app(environ, lambda status, headerlist, exc_info=None: seen.extend([status, headerlist]))
    try:
        data = b"".join(body)
    finally:
        getattr(body, "close", lambda: None)()
    return seen[0], seen[1], data


def newest_mtime(root: Path, *names: str) -> datetime.datetime:
    newest = max(int(os.stat(root / name).st_mtime) for name in names)
    return datetime.datetime.fromtimestamp(newest, datetime.timezone.utc)


# --- a manifest becomes an archive ----------------------------------------------------


def test_get_answers_a_complete_archive_with_every_header(serve, root):
    response = serve(Upstream(two_files())).get("/dl/reports")
    assert response.status_int == 200
    assert response.headers["Content-Type"] == "application/zip"
    assert int(response.headers["Content-Length"]) == len(response.body)
    assert response.headers["Accept-Ranges"] == "bytes"
    etag = response.headers["ETag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    assert response.last_modified == newest_mtime(root, "file1.txt", "file2.txt")
    assert response.headers["Content-Disposition"] == 'attachment; filename="reports.zip"'
    archive = open_zip(response.body)
    assert archive.read("file1.txt") == FILE1 and archive.read("file2.txt") == FILE2
    assert response.body == engine_archive(root, [("file1.txt", "file1.txt"),
                                                  ("file2.txt", "file2.txt")])


def test_known_crcs_match_the_engine_and_mod_zips_test_values(serve, root):
    assert zlib.crc32(FILE1) == 0x1A6349C5 and zlib.crc32(FILE2) == 0x5D70C4D3
    manifest = b"1a6349c5 24 /files/file1.txt file1.txt\n5D70C4D3 25 /files/file2.txt file2.txt\n"
    body = serve(Upstream(manifest)).get("/dl").body
    stream = ZipStream()
    stream.add(FileSource(str(root / "file1.txt")), "file1.txt", crc=0x1A6349C5)
    stream.add(FileSource(str(root / "file2.txt")), "file2.txt", crc=0x5D70C4D3)
    assert body == b"".join(stream)
    # A CRC known up front means no data descriptor: Java's ZipInputStream needs that.
    assert all(not info.flag_bits & 0x08 for info in open_zip(body).infolist())


def test_a_wrong_crc_in_the_manifest_aborts_the_stream(serve, root, caplog):
    manifest = b"deadbeef 24 /files/file1.txt file1.txt\n"
    with pytest.raises(SourceChangedError, match="CRC"):
        serve(Upstream(manifest)).get("/dl")
    assert "archive aborted" in caplog.text


def test_default_download_name(serve):
    upstream = Upstream(two_files())
    app = serve(upstream)
    assert app.get("/dl/").headers["Content-Disposition"] == 'attachment; filename="dl.zip"'
    assert app.get("/dl/x.zip").headers["Content-Disposition"] == 'attachment; filename="x.zip"'
    upstream.docs["/"] = ("200 OK", upstream.headers, [two_files()])
    assert app.get("/").headers["Content-Disposition"] == 'attachment; filename="archive.zip"'
    name = app.get("/dl/%D0%9E%D1%82%D1%87%D1%91%D1%82").headers["Content-Disposition"]
    assert name == ("attachment; filename=\"_____.zip\"; "
                    "filename*=UTF-8''%D0%9E%D1%82%D1%87%D1%91%D1%82.zip")


def test_the_apps_disposition_etag_and_last_modified_win(serve):
    upstream = Upstream(two_files(), headers=[
        ("Content-Disposition", "inline; filename=\"mine.zip\""),
        ("ETag", '"app-v1"'),
        ("Last-Modified", "Tue, 02 Jan 2024 03:04:05 GMT"),
    ])
    response = serve(upstream).get("/dl")
    assert response.headers["Content-Disposition"] == 'inline; filename="mine.zip"'
    assert response.headers["ETag"] == '"app-v1"'
    assert response.headers["Last-Modified"] == "Tue, 02 Jan 2024 03:04:05 GMT"
    assert len(response.headers.getall("ETag")) == 1


def test_a_weak_app_etag_is_replaced_by_a_strong_one(serve):
    response = serve(Upstream(two_files(), headers=[("ETag", 'W/"weak"')])).get("/dl")
    assert "weak" not in response.headers["ETag"] and not response.headers["ETag"].startswith("W/")


def test_other_app_headers_pass_and_manifest_headers_do_not(serve):
    upstream = Upstream(two_files(), headers=[
        ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("Cache-Control", "private"),
        ("Content-Encoding", "identity"), ("X-Archive-Charset", "native"),
        ("X-Archive-Pass-Headers", "Cookie"), ("X-Archive-Name-Sep", "/"),
    ])
    response = serve(upstream).get("/dl")
    assert response.headers.getall("Set-Cookie") == ["a=1", "b=2"]
    assert response.headers["Cache-Control"] == "private"
    assert response.headers.getall("Content-Type") == ["application/zip"]
    assert "Content-Encoding" not in response.headers
    assert not [name for name in response.headers if name.lower().startswith("x-archive")]


def test_etag_changes_when_a_file_changes(serve, root):
    app = serve(Upstream(two_files()))
    before = app.get("/dl").headers["ETag"]
    assert app.get("/dl").headers["ETag"] == before  # stable while nothing changes
    os.utime(root / "file2.txt", (1_000_000_000, 1_000_000_000))
    assert app.get("/dl").headers["ETag"] != before


def test_empty_manifest_gives_an_empty_archive(serve):
    response = serve(Upstream(b"")).get("/dl")
    assert response.status_int == 200
    assert open_zip(response.body).namelist() == []
    assert len(response.body) == int(response.headers["Content-Length"]) == 22


def test_post_answered_with_a_manifest_is_an_archive(serve):
    response = serve(Upstream(two_files())).post("/dl", {"pick": "1"})
    assert open_zip(response.body).namelist() == ["file1.txt", "file2.txt"]


def test_deflate_streams_without_length_and_ignores_range(serve, root):
    (root / "big.txt").write_bytes(b"compressible " * 10_000)
    manifest = two_files() + b"- 130000 /files/big.txt big.txt\n"
    middleware = ZipMiddleware(Upstream(manifest), roots={"/files/": str(root)},
                               compression="deflate")
    status, headers, body = call(middleware)
    names = {name.lower() for name, _ in headers}
    assert status == "200 OK" and "content-length" not in names and "accept-ranges" not in names
    archive = open_zip(body)
    assert archive.getinfo("big.txt").compress_type == zipfile.ZIP_DEFLATED
    assert archive.getinfo("big.txt").compress_size < 10_000
    assert call(middleware, Range="bytes=0-9")[0] == "200 OK"


# --- Range, If-Range, conditionals, HEAD ----------------------------------------------


@pytest.fixture()
def full(serve) -> tuple[webtest.TestApp, webtest.TestResponse]:
    """An app serving files with '-' CRCs (computed while streaming) and its full body."""
    app = serve(Upstream(two_files() + b"- 20 /files/file%203.txt dir/file 3.txt\n"))
    return app, app.get("/dl")


@pytest.mark.parametrize(
    ("header", "start", "stop"),
    [
        ("bytes=0-9", 0, 10),
        ("bytes=10-99", 10, 100),
        ("bytes=100-", 100, None),
        ("bytes=-50", -50, None),
        ("bytes=0-9,10-29", 0, 30),  # touching ranges coalesce into one part (one 206)
        ("bytes=5-1000000", 5, None),
    ],
)
def test_range_with_computed_crcs(full, header, start, stop):
    app, whole = full
    body = whole.body
    response = app.get("/dl", headers={"Range": header}, status=206)
    expected = body[start:stop]
    first = start if start >= 0 else len(body) + start
    assert response.body == expected
    assert response.headers["Content-Length"] == str(len(expected))
    last = first + len(expected) - 1
    assert response.headers["Content-Range"] == f"bytes {first}-{last}/{len(body)}"


def test_every_single_byte_range_agrees_with_the_whole(full):
    app, whole = full
    body = whole.body
    for start in range(0, len(body), 37):
        part = app.get("/dl", headers={"Range": f"bytes={start}-{start + 52}"}, status=206).body
        assert part == body[start : start + 53]


def test_unsatisfiable_range_gives_416(full):
    app, whole = full
    size = len(whole.body)
    response = app.get("/dl", headers={"Range": f"bytes={size}-"}, status=416)
    assert response.headers["Content-Range"] == f"bytes */{size}"
    assert b"PK" not in response.body


def test_if_range_by_etag_and_by_date(full):
    app, whole = full
    etag, modified = whole.headers["ETag"], whole.headers["Last-Modified"]

    def ranged(if_range: str, status: int) -> bytes:
        return app.get("/dl", headers={"Range": "bytes=3-", "If-Range": if_range},
                       status=status).body

    assert ranged(etag, 206) == whole.body[3:]
    assert ranged('"other"', 200) == whole.body
    assert ranged(modified, 206) == whole.body[3:]
    assert ranged("Mon, 01 Jan 2001 00:00:00 GMT", 200) == whole.body


def test_if_none_match_and_if_modified_since_give_304(full):
    app, whole = full
    assert app.get("/dl", headers={"If-None-Match": whole.headers["ETag"]}, status=304).body == b""
    assert app.get("/dl", headers={"If-None-Match": '"nope"'}, status=200).body == whole.body
    modified = whole.headers["Last-Modified"]
    assert app.get("/dl", headers={"If-Modified-Since": modified}, status=304).body == b""
    old = "Mon, 01 Jan 2001 00:00:00 GMT"
    assert app.get("/dl", headers={"If-Modified-Since": old}, status=200).body == whole.body


def test_head_has_the_get_headers_no_body_and_opens_no_file(full, monkeypatch):
    app, whole = full
    opened = []
    original = FileSource.open
    monkeypatch.setattr(FileSource, "open", lambda self: opened.append(self.path) or original(self))
    head = app.head("/dl")
    assert head.status_int == 200 and head.body == b""
    for name in ("Content-Length", "Content-Type", "ETag", "Last-Modified", "Accept-Ranges",
                 "Content-Disposition"):
        assert head.headers[name] == whole.headers[name]
    ranged = app.head("/dl", headers={"Range": "bytes=10-19"}, status=206)
    assert ranged.headers["Content-Range"] == f"bytes 10-19/{len(whole.body)}"
    assert ranged.body == b""
    assert opened == []


def test_the_app_is_asked_with_get_and_without_range_or_conditionals(serve):
    upstream = Upstream(two_files())
    app = serve(upstream)
    app.head("/dl", headers={"Range": "bytes=0-1", "If-None-Match": '"x"',
                             "If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"})
    (call,) = upstream.calls
    assert call["REQUEST_METHOD"] == "GET"  # the app answered a 200: no second call


def test_a_manifest_the_app_ranged_itself_is_fetched_again_whole(serve, root):
    """mod_zip #84: a framework with conditional responses ranges the manifest itself."""
    calls = []

    def conditional_upstream(environ, start_response):
        calls.append(dict(environ))
        response = webob.Response(body=two_files(), content_type="text/plain",
                                  conditional_response=True)
        response.etag = "manifest-v1"
        response.headers["X-Archive-Files"] = "zip"
        return response(environ, start_response)

    app = serve(conditional_upstream)
    whole = app.get("/dl").body
    calls.clear()
    response = app.get("/dl", headers={"Range": "bytes=30-"}, status=206)
    assert response.body == whole[30:]
    assert [call.get("HTTP_RANGE") for call in calls] == ["bytes=30-", None]
    calls.clear()
    # The app's 304 for its own ETag is not passed on as the archive's: it is re-asked,
    # and the archive (whose validator is the app's ETag) is then the one answering 304.
    app.get("/dl", headers={"If-None-Match": '"manifest-v1"'}, status=304)
    assert [call.get("HTTP_IF_NONE_MATCH") for call in calls] == ['"manifest-v1"', None]
    calls.clear()
    head = app.head("/dl", headers={"Range": "bytes=30-"}, status=206)
    assert head.headers["Content-Length"] == str(len(whole) - 30)


def test_head_works_when_the_framework_drops_head_bodies(serve):
    def framework(environ, start_response):  # WebOb, like every framework, drops HEAD bodies
        response = webob.Response(body=two_files(), content_type="text/plain")
        response.headers["X-Archive-Files"] = "zip"
        return response(environ, start_response)

    app = serve(framework)
    assert app.head("/dl").headers["Content-Length"] == str(len(app.get("/dl").body))


# --- the manifest grammar, end to end --------------------------------------------------


@pytest.mark.parametrize(
    ("manifest", "names"),
    [
        (b"- 24 /files/file1.txt one.txt", ["one.txt"]),  # no trailing newline
        (b"- 24 /files/file1.txt one.txt\r\n- 25 /files/file2.txt two.txt\r\n",
         ["one.txt", "two.txt"]),
        (b"- 24 /files/file1.txt one.txt\r- 25 /files/file2.txt two.txt", ["one.txt", "two.txt"]),
        (b"\n\r\n\n- 24 /files/file1.txt one.txt\n\n\r\r\n- 25 /files/file2.txt two.txt\n\n",
         ["one.txt", "two.txt"]),
        (b"-    24   /files/file1.txt    one.txt", ["one.txt"]),  # runs of spaces
        (b"1A6349C5 24 /files/file1.txt one.txt", ["one.txt"]),  # upper-case CRC
        (b"1a6349c5 24 /files/file1.txt one.txt", ["one.txt"]),
        (b"- 20 /files/file%203.txt name with  spaces .txt", ["name with  spaces .txt"]),
        (b"- 16 /files/a+b.txt a+b.txt", ["a+b.txt"]),  # '+' is not a space
        (b"- 16 /files/a%2Bb.txt plus.txt", ["plus.txt"]),
        (b"- 24 /files/file1.txt?v=2&x=y versioned.txt", ["versioned.txt"]),
        (b"- 5 /files/sub/deep/c.txt a/b/c.txt", ["a/b/c.txt"]),
        (b"- 5 /files/sub//deep/./c.txt c.txt", ["c.txt"]),
        ("- 11 /files/%D0%9E%D1%82%D1%87%D1%91%D1%82.txt Отчёт.txt".encode(), ["Отчёт.txt"]),
        (b"- 24 /files/file1.txt /leading/slash.txt", ["leading/slash.txt"]),  # django-zip-stream
        (b"- 0 @directory empty/\n- 0 @directory also empty\n0 0 @directory zero-crc/",
         ["empty/", "also empty/", "zero-crc/"]),
    ],
)
def test_manifest_grammar(serve, manifest, names):
    archive = open_zip(serve(Upstream(manifest)).get("/dl").body)
    assert archive.namelist() == names


def test_directory_entries_are_real_directories(serve):
    body = serve(Upstream(b"- 0 @directory empty/\n- 24 /files/file1.txt empty/x")).get("/dl").body
    info = open_zip(body).getinfo("empty/")
    assert info.is_dir() and info.file_size == 0


def test_136_entries_and_a_10_mb_file(serve, root):
    lines = []
    for number in range(135):
        name = f"many/{number:03}.txt"
        (root / "many").mkdir(exist_ok=True)
        (root / name).write_bytes(b"x" * number)
        lines.append(f"- {number} /files/{name} {name}")
    (root / "ten.bin").write_bytes(os.urandom(10 * 1024 * 1024))
    lines.append(f"- {10 * 1024 * 1024} /files/ten.bin ten.bin")
    app = serve(Upstream("\n".join(lines).encode()))
    response = app.get("/dl")
    archive = open_zip(response.body)
    assert len(archive.namelist()) == 136
    assert archive.read("ten.bin") == (root / "ten.bin").read_bytes()
    middle = app.get("/dl", headers={"Range": "bytes=5000000-5999999"}, status=206)
    assert middle.body == response.body[5_000_000:6_000_000]


def _unicode_path_extra(extra: bytes) -> bytes | None:
    while len(extra) >= 4:
        kind, size = struct.unpack("<HH", extra[:4])
        if kind == 0x7075:
            return extra[4 + 5 : 4 + size]  # version, CRC-32 of the legacy name, UTF-8 name
        extra = extra[4 + size :]
    return None


def test_charset_cp866_writes_legacy_names_and_the_utf8_name_in_an_extra(serve):
    manifest = "- 11 /files/%D0%9E%D1%82%D1%87%D1%91%D1%82.txt Отчёт.txt".encode()
    for body in (manifest, manifest.decode().encode("cp866")):  # ours, and mod_zip-style
        upstream = Upstream(body, headers=[("X-Archive-Charset", "cp866")])
        (info,) = open_zip(serve(upstream).get("/dl").body).infolist()
        assert not info.flag_bits & 0x800
        assert info.filename.encode("cp437") == "Отчёт.txt".encode("cp866")
        assert _unicode_path_extra(info.extra) == "Отчёт.txt".encode()


def test_charset_native_clears_the_utf8_flag(serve):
    manifest = "- 11 /files/%D0%9E%D1%82%D1%87%D1%91%D1%82.txt Отчёт.txt".encode()
    upstream = Upstream(manifest, headers=[("X-Archive-Charset", "native")])
    (info,) = open_zip(serve(upstream).get("/dl").body).infolist()
    assert not info.flag_bits & 0x800
    assert info.filename.encode("cp437") == "Отчёт.txt".encode()
    default = open_zip(serve(Upstream(manifest)).get("/dl").body).infolist()[0]
    assert default.flag_bits & 0x800 and default.filename == "Отчёт.txt"


# --- sub-requests ---------------------------------------------------------------------


def test_sub_requests_fetch_locations_under_no_root(serve):
    upstream = Upstream(b"- 24 /files/file1.txt disk.txt\n- 5 /gen/a%20b+c?x=1&y=%20 gen.txt\n"
                        b"- 3 /gen/%C3%A9 e.txt\n")
    upstream.doc("/gen/a b+c", b"hello")
    upstream.doc("/gen/é", b"\xc3\xa9!")
    archive = open_zip(serve(upstream).get("/dl").body)
    assert archive.read("gen.txt") == b"hello" and archive.read("e.txt") == b"\xc3\xa9!"
    call = upstream.subrequests()[0]
    assert call["REQUEST_METHOD"] == "GET"
    assert call["PATH_INFO"] == "/gen/a b+c" and call["QUERY_STRING"] == "x=1&y=%20"


def test_sub_request_paths_under_a_script_name(root):
    upstream = Upstream(b"- 5 /app/gen full.txt\n- 5 /gen relative.txt\n")
    upstream.doc("/gen", b"hello")
    middleware = ZipMiddleware(upstream)
    environ = webob.Request.blank("/dl", environ={"SCRIPT_NAME": "/app"}).environ
    environ["REQUEST_URI"] = "/app/dl"
    status, _, body = call(lambda env, sr: middleware(environ, sr))
    assert status == "200 OK" and open_zip(body).namelist() == ["full.txt", "relative.txt"]
    for sub in upstream.subrequests():
        assert (sub["SCRIPT_NAME"], sub["PATH_INFO"]) == ("/app", "/gen")
        assert "REQUEST_URI" not in sub


def test_pass_headers_choose_what_sub_requests_receive(serve):
    upstream = Upstream(b"- 5 /gen gen.txt",
                        headers=[("X-Archive-Pass-Headers", "Cookie:X-Auth-Token")])
    upstream.doc("/gen", b"hello")
    serve(upstream).get("/dl", headers={"Cookie": "s=1", "X-Auth-Token": "t", "X-Other": "o",
                                        "Authorization": "Basic eDp5"})
    for call in upstream.subrequests():  # the check and the fetch
        assert call["HTTP_COOKIE"] == "s=1" and call["HTTP_X_AUTH_TOKEN"] == "t"
        assert "HTTP_X_OTHER" not in call and "HTTP_AUTHORIZATION" not in call
        assert call["HTTP_HOST"] == "localhost:80"


def test_sub_requests_get_no_client_headers_by_default_and_never_range(serve):
    upstream = Upstream(b"- 5 /gen gen.txt", headers=[("X-Archive-Pass-Headers", "Range:Cookie")])
    upstream.doc("/gen", b"hello")
    serve(upstream).get("/dl", headers={"Range": "bytes=0-", "Cookie": "c=1"}, status=206)
    assert upstream.subrequests()
    for call in upstream.subrequests():
        assert "HTTP_RANGE" not in call and call["HTTP_COOKIE"] == "c=1"
    plain = Upstream(b"- 5 /gen gen.txt")
    plain.doc("/gen", b"hello")
    serve(plain).get("/dl", headers={"Cookie": "c=1"})
    assert all("HTTP_COOKIE" not in call for call in plain.subrequests())


def test_range_over_a_sub_request_entry_without_crc(serve):
    upstream = Upstream(b"- 5 /gen gen.txt\n- 24 /files/file1.txt file1.txt\n")
    upstream.doc("/gen", b"hello")
    app = serve(upstream)
    whole = app.get("/dl").body
    # Starting past the sub-request's data: its CRC (for the central directory) is
    # computed by fetching it once more.
    assert app.get("/dl", headers={"Range": "bytes=60-"}, status=206).body == whole[60:]


def test_sub_request_failing_gives_502_before_the_first_byte(serve, caplog):
    upstream = Upstream(b"- 24 /files/file1.txt one.txt\n- 5 /missing gone.txt\n")
    response = serve(upstream).get("/dl", status=502)
    assert response.headers["Content-Type"].startswith("text/plain")
    assert b"PK" not in response.body and b"manifest line 2" in response.body
    assert "manifest line 2" in caplog.text and "/missing" in caplog.text and "404" in caplog.text


def test_sub_request_with_the_wrong_length_gives_502(serve, caplog):
    upstream = Upstream(b"- 6 /gen gen.txt\n")
    upstream.doc("/gen", b"hello")
    serve(upstream).get("/dl", status=502)
    assert "Content-Length is 5" in caplog.text


def test_head_does_not_run_sub_requests(serve):
    upstream = Upstream(b"- 5 /gen gen.txt\n")
    upstream.doc("/gen", b"hello")
    serve(upstream).head("/dl")
    assert upstream.subrequests() == []


def test_sub_requests_can_be_disabled(serve, caplog):
    upstream = Upstream(b"- 5 /gen gen.txt\n")
    upstream.doc("/gen", b"hello")
    serve(upstream, allow_subrequests=False).get("/dl", status=500)
    assert upstream.subrequests() == [] and "sub-requests are disabled" in caplog.text


def test_unchecked_sub_request_failing_mid_stream_raises(serve, root):
    (root / "big.bin").write_bytes(os.urandom(300_000))
    upstream = Upstream(b"- 300000 /files/big.bin big.bin\n- 5 /missing gone.txt\n")
    middleware = ZipMiddleware(upstream, roots={"/files/": str(root)}, check_subrequests=False)
    statuses = []
    body = middleware(webob.Request.blank("/dl").environ, lambda s, h, e=None: statuses.append(s))
    chunks = iter(body)
    assert next(chunks)  # bytes went out: the 200 is on the wire
    with pytest.raises(SubrequestError, match="404"):
        for _ in chunks:
            pass
    body.close()
    assert statuses == ["200 OK"]


# --- failures before the first byte ---------------------------------------------------


@pytest.mark.parametrize(
    "location",
    [
        "/files/../secret.txt",
        "/files/%2e%2e/secret.txt",
        "/files/%2E%2E%2Fsecret.txt",
        "/files%2F..%2Fsecret.txt",
        "/files/sub/deep/%2e%2e/%2e%2e/%2e%2e/secret.txt",
        "/files/..%2f..%2f..%2f..%2fetc/passwd",
        "/files//etc/passwd",
        "/files/%2Fetc%2Fpasswd",
        "/files/..\\secret.txt",
        "/files/..%5Csecret.txt",
        "/files/a%00.txt",
        "/files/file1.txt%00.png",
        "/files/",
        "/files/link-out.txt",
        "/files/dir-out/secret.txt",
        "/gen/../files/../secret.txt",
    ],
)
def test_malicious_locations_are_refused_before_any_byte(serve, root, location, caplog):
    (root / "link-out.txt").symlink_to(root.parent / "secret.txt")
    (root / "dir-out").symlink_to(root.parent)
    size = len(SECRET)
    upstream = Upstream(f"- 24 /files/file1.txt ok.txt\n- {size} {location} loot.txt\n".encode())
    response = serve(upstream).get("/dl", status=500)
    assert SECRET not in response.body and b"PK" not in response.body
    assert upstream.subrequests() == []
    assert "line 2" in caplog.text
    assert [r for r in caplog.records if r.name == "zipwsgi" and r.levelno == logging.ERROR]


def test_a_symlink_inside_the_root_is_followed(serve, root):
    (root / "link-in.txt").symlink_to(root / "file1.txt")
    (root / "dir-in").symlink_to(root / "sub")
    upstream = Upstream(b"- 24 /files/link-in.txt a.txt\n- 5 /files/dir-in/deep/c.txt c.txt\n")
    archive = open_zip(serve(upstream).get("/dl").body)
    assert archive.read("a.txt") == FILE1 and archive.read("c.txt") == b"deep\n"


def test_the_longest_root_prefix_wins(serve, root, tmp_path):
    private = tmp_path / "private"
    private.mkdir()
    (private / "file1.txt").write_bytes(b"private!")
    app = serve(Upstream(b"- 8 /files/private/file1.txt p.txt\n"),
                roots={"/files/": str(root), "/files/private": str(private)})
    assert open_zip(app.get("/dl").body).read("p.txt") == b"private!"


@pytest.mark.parametrize(
    ("manifest", "logged", "public"),
    [
        (b"- 24 /files/nope.txt x.txt", "no such file", b"file not found"),
        (b"- 99 /files/file1.txt x.txt", "the manifest says 99 bytes", b"size in the manifest"),
        (b"- 0 /files/sub x.txt", "not a regular file", b"not a regular file"),
        (b"xyz 24 /files/file1.txt x.txt", "CRC-32", b"bad manifest"),
        (b"- 24 /files/file1.txt", "missing archive name", b"bad manifest"),
        (b"- twelve /files/file1.txt x.txt", "size must be", b"bad manifest"),
        (b"- 24 /files/%zz.txt x.txt", "percent-escape", b"bad manifest"),
        (b"- 24 /files/file1.txt ../evil.txt", "escapes", b"archive name refused"),
        (b"- 24 /files/file1.txt a.txt\n- 25 /files/file2.txt a.txt", "duplicate", b"name refused"),
    ],
)
def test_app_mistakes_give_500_and_a_log_line(serve, manifest, logged, public, caplog):
    response = serve(Upstream(manifest)).get("/dl", status=500)
    assert public in response.body and b"PK" not in response.body
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert logged in caplog.text
    assert not [name for name in response.headers if name.lower().startswith("x-archive")]


def test_a_missing_root_folder_gives_500(serve, root, tmp_path, caplog):
    app = serve(Upstream(b"- 24 /gone/file1.txt x.txt"), roots={"/gone/": str(tmp_path / "no")})
    app.get("/dl", status=500)
    assert "root folder unavailable" in caplog.text


def test_a_missing_last_file_fails_before_the_first(serve, root):
    lines = [f"- 24 /files/file1.txt {n}.txt" for n in range(500)] + ["- 1 /files/gone x"]
    assert serve(Upstream("\n".join(lines).encode())).get("/dl", status=500)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_gives_500(serve, root, caplog):
    (root / "file1.txt").chmod(0)
    serve(Upstream(b"- 24 /files/file1.txt x.txt")).get("/dl", status=500)
    assert "not readable" in caplog.text


def test_unknown_charset_gives_500(serve, caplog):
    serve(Upstream(two_files(), headers=[("X-Archive-Charset", "klingon")])).get("/dl", status=500)
    assert "klingon" in caplog.text


def test_limits(serve, caplog):
    app = serve(Upstream(two_files()), max_manifest_bytes=40)
    assert b"larger than the configured limit" in app.get("/dl", status=500).body
    assert "max_manifest_bytes=40" in caplog.text
    app = serve(Upstream(two_files() + b"- 0 @directory d/\n"), max_entries=2)
    app.get("/dl", status=500)
    assert "more than 2 entries" in caplog.text
    assert serve(Upstream(two_files()), max_entries=2).get("/dl").status_int == 200


def test_error_response_to_head_has_no_body(serve):
    response = serve(Upstream(b"- 24 /files/nope.txt x")).head("/dl", status=500)
    assert response.body == b"" and int(response.headers["Content-Length"]) > 0


# --- failures after the first byte ----------------------------------------------------


def test_a_file_truncated_mid_download_raises_and_is_logged(root, caplog):
    (root / "big.bin").write_bytes(os.urandom(1 << 20))
    upstream = Upstream(b"- 1048576 /files/big.bin big.bin\n- 25 /files/file2.txt file2.txt\n")
    middleware = ZipMiddleware(upstream, roots={"/files/": str(root)})
    environ = webob.Request.blank("/dl").environ
    body = middleware(environ, lambda status, headers, exc_info=None: None)
    chunks = iter(body)
    sent = len(next(chunks))
    (root / "file2.txt").write_bytes(b"short")
    with pytest.raises(SourceChangedError):
        for chunk in chunks:
            sent += len(chunk)
    body.close()
    assert 0 < sent < (1 << 20) + 200
    assert "archive aborted after" in caplog.text and "file2.txt" in caplog.text


def test_a_file_shrinking_while_it_streams_raises(root):
    (root / "big.bin").write_bytes(os.urandom(2 << 20))
    upstream = Upstream(b"- 2097152 /files/big.bin big.bin\n")
    app = webtest.TestApp(ZipMiddleware(upstream, roots={"/files/": str(root)}))

    response = app.get("/dl")  # complete when nothing changes
    assert len(response.body) == int(response.headers["Content-Length"])
    middleware = ZipMiddleware(upstream, roots={"/files/": str(root)})
    body = middleware(webob.Request.blank("/dl").environ, lambda *args: None)
    chunks = iter(body)
    next(chunks)
    next(chunks)
    os.truncate(root / "big.bin", 1 << 20)
    with pytest.raises(SourceChangedError):
        for _ in chunks:
            pass
    body.close()


# --- the ZipStream marker ---------------------------------------------------------------


def marker_app(root: Path, **response_headers: str):
    def app(environ, start_response):
        stream = ZipStream()
        stream.add(FileSource(str(root / "file1.txt")), "file1.txt")
        stream.add(b"made in memory", "memory.txt")
        start_response("200 OK", [("Content-Type", "text/html"), *response_headers.items()])
        return stream

    return app


def test_a_zipstream_body_gets_the_full_http_treatment(root, monkeypatch):
    app = webtest.TestApp(ZipMiddleware(marker_app(root)))
    whole = app.get("/downloads/bundle")
    expected = ZipStream()
    expected.add(FileSource(str(root / "file1.txt")), "file1.txt")
    expected.add(b"made in memory", "memory.txt")
    assert whole.body == b"".join(expected)
    assert whole.headers["Content-Type"] == "application/zip"
    assert whole.headers["Content-Length"] == str(len(whole.body))
    assert whole.headers["Content-Disposition"] == 'attachment; filename="bundle.zip"'
    assert app.get("/x", headers={"Range": "bytes=7-70"}, status=206).body == whole.body[7:71]
    opened = []
    original = FileSource.open
    monkeypatch.setattr(FileSource, "open", lambda self: opened.append(1) or original(self))
    assert app.head("/x").headers["Content-Length"] == str(len(whole.body))
    app.get("/x", headers={"If-None-Match": whole.headers["ETag"]}, status=304)
    assert opened == []


def test_a_zipstream_keeps_the_apps_headers(root):
    app = webtest.TestApp(ZipMiddleware(marker_app(
        root, **{"Content-Disposition": 'attachment; filename="given.zip"', "ETag": '"v7"',
                 "Cache-Control": "no-cache"})))
    response = app.get("/x")
    assert response.headers["Content-Disposition"] == 'attachment; filename="given.zip"'
    assert response.headers["ETag"] == '"v7"' and response.headers["Cache-Control"] == "no-cache"
    assert response.headers.getall("Content-Type") == ["application/zip"]


def test_a_webob_response_with_a_zipstream_app_iter(root):
    def app(environ, start_response):
        stream = ZipStream()
        stream.add(b"abc", "abc.txt")
        return webob.Response(app_iter=stream)(environ, start_response)

    response = webtest.TestApp(ZipMiddleware(app)).get("/x")
    assert open_zip(response.body).read("abc.txt") == b"abc"


def test_the_zipstream_is_closed_on_every_path(root):
    closed = []

    class Closing(ZipStream):
        def close(self):
            closed.append(1)
            super().close()

    def app(environ, start_response):
        stream = Closing()
        stream.add(b"abc", "abc.txt")
        start_response("200 OK", [])
        return stream

    test = webtest.TestApp(ZipMiddleware(app))
    etag = test.get("/x").headers["ETag"]
    test.head("/x")
    test.get("/x", headers={"Range": "bytes=1-2"}, status=206)
    test.get("/x", headers={"Range": "bytes=9999-"}, status=416)
    test.get("/x", headers={"If-None-Match": etag}, status=304)
    assert len(closed) >= 5


# --- everything else passes through untouched -----------------------------------------


class Closeable:
    """A streaming body that records what happened to it."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.pulled = 0
        self.closed = 0

    def __iter__(self):
        for chunk in self.chunks:
            self.pulled += 1
            yield chunk

    def close(self) -> None:
        self.closed += 1


def test_pass_through_returns_the_apps_own_iterable_unread(root):
    bodies = []

    def app(environ, start_response):
        start_response("203 Custom", [("Content-Type", "text/csv"), ("X-Mine", "1")])
        bodies.append(Closeable([b"a,b\n", b"1,2\n"]))
        return bodies[0]

    seen = []
    middleware = ZipMiddleware(app, roots={"/files/": str(root)})
    result = middleware(webob.Request.blank("/x").environ,
                        lambda status, headers, exc_info=None: seen.append((status, headers)))
    assert result is bodies[0] and bodies[0].pulled == 0
    assert seen == [("203 Custom", [("Content-Type", "text/csv"), ("X-Mine", "1")])]
    assert list(result) == [b"a,b\n", b"1,2\n"]
    result.close()
    assert bodies[0].closed == 1


def static_app(environ, start_response):
    """A plain app with its own validators and ranges (WebOb's conditional responses)."""
    response = webob.Response(body=b"0123456789" * 100, content_type="text/plain",
                              conditional_response=True)
    response.etag = "static-v1"
    response.last_modified = 1_700_000_000
    response.headers["Set-Cookie"] = "s=1"
    return response(environ, start_response)


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        ("GET", {}),
        ("HEAD", {}),
        ("GET", {"Range": "bytes=10-19"}),
        ("HEAD", {"Range": "bytes=10-19"}),
        ("GET", {"Range": "bytes=5000-"}),
        ("GET", {"If-None-Match": '"static-v1"'}),
        ("GET", {"If-Modified-Since": "Wed, 15 Nov 2023 00:00:00 GMT"}),
        ("GET", {"Range": "bytes=0-4", "If-Range": '"static-v0"'}),
        ("POST", {}),
    ],
)
def test_pass_through_is_byte_identical(root, method, headers):
    direct = webtest.TestApp(static_app)
    wrapped = webtest.TestApp(ZipMiddleware(static_app, roots={"/files/": str(root)}))
    want = direct.request("/page", method=method, headers=headers, expect_errors=True)
    got = wrapped.request("/page", method=method, headers=headers, expect_errors=True)
    assert (got.status, got.headerlist, got.body) == (want.status, want.headerlist, want.body)


def test_head_pass_through_closes_the_body_unread():
    bodies = []

    def app(environ, start_response):
        assert environ["REQUEST_METHOD"] == "GET"
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "8")])
        bodies.append(Closeable([b"abcd", b"efgh"]))
        return bodies[-1]

    response = webtest.TestApp(ZipMiddleware(app)).head("/x")
    assert response.headers["Content-Length"] == "8" and response.body == b""
    assert bodies[0].pulled == 0 and bodies[0].closed == 1


def test_write_callable_and_late_start_response_pass_through():
    def writer(environ, start_response):
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")
        return [b"returned"]

    def late(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"late "
        yield b"start"

    def late_manifest(environ, start_response):
        start_response("200 OK", [("X-Archive-Files", "zip")])
        yield b"- 0 @directory d/"

    assert webtest.TestApp(ZipMiddleware(writer)).get("/").body == b"written returned"
    assert webtest.TestApp(ZipMiddleware(late)).get("/").body == b"late start"
    archive = open_zip(webtest.TestApp(ZipMiddleware(late_manifest)).get("/").body)
    assert archive.namelist() == ["d/"]


def test_write_callable_can_send_a_manifest():
    def writer(environ, start_response):
        write = start_response("200 OK", [("X-Archive-Files", "zip")])
        write(b"- 0 @directory a/\n")
        return [b"- 0 @directory b/\n"]

    assert open_zip(webtest.TestApp(ZipMiddleware(writer)).get("/").body).namelist() == ["a/", "b/"]


def test_unknown_archive_formats_and_error_statuses_never_leak_the_manifest(serve, caplog):
    """A body sent with X-Archive-Files is a manifest whatever else the answer says: the
    client gets the status (or a 500 for a format we do not write), never the body."""
    secret = b"- 24 /files/secret/file1.txt x.txt"
    other = Upstream(secret, headers=[("X-Archive-Charset", "native")])
    other.headers[1] = ("X-Archive-Files", "7z")  # zip, tar, tar.gz and tgz are triggers
    response = serve(other).get("/dl", status=500)
    assert b"unsupported archive format" in response.body and b"secret" not in response.body
    assert "'7z'" in caplog.text
    assert not [name for name in response.headers if name.lower().startswith("x-archive")]
    for status in ("403 Forbidden", "404 Not Found", "302 Found"):
        answer = serve(Upstream(secret, status=status)).get("/dl", status=int(status[:3]))
        assert b"secret" not in answer.body and "X-Archive-Files" not in answer.headers
        assert answer.headers["Content-Length"] == str(len(answer.body))


def test_an_app_exception_propagates(serve):
    def broken(environ, start_response):
        raise KeyError("boom")

    with pytest.raises(KeyError):
        serve(broken).get("/")
