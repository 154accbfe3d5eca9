"""Tar through ZipMiddleware, in-process (webtest): every trigger, every HTTP rule.

The three triggers (``X-Archive-Files: tar``, ``tar.gz`` or ``tgz`` with a mod_zip
manifest, and a :class:`TarStream` returned as the body) must behave as the zip ones do:
Content-Type, an exact Content-Length for plain tar and none for tar.gz, default download
names, Range/If-Range/ETag/304/HEAD/416, sub-requests, pass-headers, charset and the
refusals before the first byte. The same requests over a real server are in
``test_tar_server.py``.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Optional

import pytest
import webob
import webtest

from zipwsgi import TarStream, ZipMiddleware

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

HELLO = b"hello from a sub-request\n"
MENU = b"espresso\n" * 1000
TEXT = ("report line\n" * 20_000).encode()  # compressible: gzip levels differ on it


def make_files(root: Path, random_size: int, mtime: Optional[int] = None) -> Path:
    """The tree the tar HTTP tests serve: a non-ASCII folder, random and compressible
    data, an empty file; ``mtime`` fixes every mtime (two processes must agree)."""
    (root / "café").mkdir(parents=True)
    (root / "café" / "menu.txt").write_bytes(MENU)
    (root / "random.bin").write_bytes(os.urandom(random_size))
    (root / "report.txt").write_bytes(TEXT)
    (root / "empty.txt").write_bytes(b"")
    if mtime is not None:
        for path in root.rglob("*"):
            os.utime(path, (mtime, mtime))
    return root


@pytest.fixture()
def files(tmp_path: Path) -> Path:
    return make_files(tmp_path / "files", 100_000)


def manifest(files: Path, crc: str = "-", hello: bool = True) -> bytes:
    """Every file under ``/files/``, ``/hello.txt`` by sub-request (unless not ``hello``),
    and an empty folder; ``crc`` fills the CRC column (tar ignores it, even when wrong)."""
    lines = [f"{crc} {(files / name).stat().st_size} /files/{quoted} {name}"
             for name, quoted in [("café/menu.txt", "caf%C3%A9/menu.txt"),
                                  ("random.bin", "random.bin"),
                                  ("report.txt", "report.txt"),
                                  ("empty.txt", "empty.txt")]]
    if hello:
        lines.append(f"{crc} {len(HELLO)} /hello.txt hello.txt")
    lines.append("- 0 @directory nothing/")
    return "\n".join(lines).encode()


def expected_members(files: Path) -> dict[str, Optional[bytes]]:
    return {
        "café/menu.txt": MENU,
        "random.bin": (files / "random.bin").read_bytes(),
        "report.txt": TEXT,
        "empty.txt": b"",
        "hello.txt": HELLO,
        "nothing": None,
    }


def make_app(files: Path, **options: Any) -> WSGIApplication:
    """``/m/<trigger>/<name>`` answers a manifest with ``X-Archive-Files: <trigger>``;
    ``/f/<trigger>/<name>`` the same without the sub-request entry (an archive with a
    sub-request has no ETag: its bytes are not known to be the same next time);
    ``/s/<tar|tar.gz>/<name>`` returns a TarStream; ``/hello.txt`` is what sub-requests
    fetch (it wants the cookie the manifest passes on)."""
    crc = options.pop("crc", "-")
    data = {"m": manifest(files, crc), "f": manifest(files, crc, hello=False)}
    extra: list[tuple[str, str]] = options.pop("headers", [])

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        parts = environ["PATH_INFO"].split("/")
        if parts[1] in data:
            start_response("200 OK", [("Content-Type", "text/plain"),
                                      ("X-Archive-Files", parts[2]),
                                      ("X-Archive-Pass-Headers", "Cookie"), *extra])
            return [data[parts[1]]]
        if parts[1] == "s":
            stream = TarStream("gzip" if parts[2] == "tar.gz" else None)
            stream.add_path(str(files / "café"), "café")
            stream.add(HELLO, "hello.txt")
            start_response("200 OK", [])
            return stream
        if environ["PATH_INFO"] == "/hello.txt":
            if "flavour=tar" not in environ.get("HTTP_COOKIE", ""):
                start_response("403 Forbidden", [("Content-Type", "text/plain")])
                return [b"no cookie"]
            start_response("200 OK", [("Content-Type", "text/plain"),
                                      ("Content-Length", str(len(HELLO)))])
            return [HELLO]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not here"]

    return ZipMiddleware(app, roots={"/files/": str(files)}, **options)


@pytest.fixture()
def client(files: Path) -> webtest.TestApp:
    return webtest.TestApp(make_app(files), extra_environ={"HTTP_COOKIE": "flavour=tar"})


def raw(app: WSGIApplication, path: str, **headers: str) -> webob.Response:
    """The response exactly as the middleware sends it (webtest adds a Content-Length)."""
    request = webob.Request.blank(path, headers={"Cookie": "flavour=tar", **headers})
    return request.get_response(app)


def members(body: bytes, mode: str = "r:*") -> dict[str, Optional[bytes]]:
    """Name -> bytes (None for a folder), read by tarfile from ``body``."""
    got: dict[str, Optional[bytes]] = {}
    with tarfile.open(fileobj=io.BytesIO(body), mode=mode) as archive:
        for info in archive:
            member = archive.extractfile(info) if info.isreg() else None
            got[info.name] = member.read() if member is not None else None
    return got


TRIGGERS = [
    ("/m/tar/photos", "application/x-tar", "photos.tar"),
    ("/m/TAR/photos", "application/x-tar", "photos.tar"),
    ("/m/tar.gz/photos", "application/gzip", "photos.tar.gz"),
    ("/m/tgz/photos", "application/gzip", "photos.tar.gz"),
    ("/s/tar/photos", "application/x-tar", "photos.tar"),
    ("/s/tar.gz/photos", "application/gzip", "photos.tar.gz"),
]


# --- each trigger: type, length, name, members ------------------------------------------


@pytest.mark.parametrize(("path", "content_type", "filename"), TRIGGERS)
def test_each_trigger_gives_its_type_name_and_members(
    files: Path, client: webtest.TestApp, path: str, content_type: str, filename: str
) -> None:
    response = client.get(path)
    assert response.headers["Content-Type"] == content_type
    assert response.headers["Content-Disposition"] == f'attachment; filename="{filename}"'
    assert not [name for name in response.headers if name.lower().startswith("x-archive")]
    got = members(response.body)
    if path.startswith("/m/"):
        assert got == expected_members(files)
    else:
        assert got == {"café": None, "café/menu.txt": MENU, "hello.txt": HELLO}
    assert members(response.body, "r|*") == got  # a streaming reader agrees


@pytest.mark.parametrize("path", ["/f/tar/photos", "/s/tar/photos"])
def test_plain_tar_has_an_exact_length_and_ranges(files: Path, path: str) -> None:
    app = make_app(files)
    response = raw(app, path)
    body = response.body
    assert response.content_length == len(body)
    assert len(body) % 10240 == 0  # padded to whole records, like GNU tar
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["ETag"].startswith('"') and response.last_modified is not None


@pytest.mark.parametrize("path", ["/m/tar.gz/photos", "/m/tgz/photos", "/s/tar.gz/photos"])
def test_tar_gz_goes_out_unsized_and_unranged(files: Path, path: str) -> None:
    app = make_app(files)
    response = raw(app, path)
    assert response.content_length is None
    assert "Accept-Ranges" not in response.headers
    assert gzip.decompress(response.body)[:100] == gzip.decompress(raw(app, path).body)[:100]
    ranged = raw(app, path, Range="bytes=0-9")
    assert ranged.status_int == 200 and ranged.body == response.body  # the whole archive


def test_tar_gz_holds_the_same_tar_as_plain_tar(files: Path) -> None:
    app = make_app(files)
    assert gzip.decompress(raw(app, "/m/tar.gz/x").body) == raw(app, "/m/tar/x").body
    assert gzip.decompress(raw(app, "/s/tar.gz/x").body) == raw(app, "/s/tar/x").body


def test_formats_never_share_an_etag(files: Path) -> None:
    app = make_app(files)
    tags = {path: raw(app, path).etag for path in
            ["/f/zip/x", "/f/tar/x", "/f/tar.gz/x", "/s/tar/x", "/s/tar.gz/x"]}
    assert None not in tags.values() and len(set(tags.values())) == len(tags), tags
    assert raw(app, "/f/tgz/x").etag == tags["/f/tar.gz/x"]  # one format, two spellings


@pytest.mark.parametrize(
    ("path", "filename"),
    [
        ("/m/tar/photos.tar", "photos.tar"),
        ("/m/tar.gz/photos.tar", "photos.tar.gz"),  # not photos.tar.tar.gz
        ("/m/tgz/photos.tgz", "photos.tar.gz"),
        ("/m/tar/photos.zip", "photos.tar"),
        ("/m/zip/photos.tar", "photos.zip"),
        ("/m/tar/", "tar.tar"),
        ("/m/tar/.tar", "archive.tar"),  # nothing but the suffix
    ],
)
def test_default_names_take_the_formats_extension(
    client: webtest.TestApp, path: str, filename: str
) -> None:
    disposition = client.get(path).headers["Content-Disposition"]
    assert disposition == f'attachment; filename="{filename}"'


def test_the_apps_content_disposition_passes_unchanged(files: Path) -> None:
    header = ("Content-Disposition", "attachment; filename=\"mine.tar\"")
    app = make_app(files, headers=[header])
    assert raw(app, "/m/tar/x").headers["Content-Disposition"] == header[1]


# --- HTTP rules: Range, If-Range, ETag, 304, HEAD, 416 ----------------------------------


@pytest.mark.parametrize("path", ["/f/tar/photos", "/s/tar/photos"])
def test_range_if_range_etag_head_and_416_as_for_zip(files: Path, path: str) -> None:
    app = make_app(files)
    whole = raw(app, path)
    body, size, etag = whole.body, len(whole.body), whole.headers["ETag"]

    for spec, start, stop in [("100-1099", 100, 1100), ("-700", size - 700, size),
                              (f"{size - 5}-", size - 5, size), ("0-0", 0, 1),
                              ("511-513", 511, 514)]:
        part = raw(app, path, Range=f"bytes={spec}")
        assert part.status_int == 206, spec
        assert part.headers["Content-Range"] == f"bytes {start}-{stop - 1}/{size}"
        assert part.body == body[start:stop], spec
        assert part.content_length == stop - start

    same = raw(app, path, Range="bytes=10-19", **{"If-Range": etag})
    assert same.status_int == 206 and same.body == body[10:20]
    other = raw(app, path, Range="bytes=10-19", **{"If-Range": '"another"'})
    assert other.status_int == 200 and other.body == body

    unsatisfiable = raw(app, path, Range=f"bytes={size}-")
    assert unsatisfiable.status_int == 416
    assert unsatisfiable.headers["Content-Range"] == f"bytes */{size}"

    assert raw(app, path, **{"If-None-Match": etag}).status_int == 304
    assert raw(app, path, **{"If-Match": '"another"'}).status_int == 412
    modified = whole.headers["Last-Modified"]
    assert raw(app, path, **{"If-Modified-Since": modified}).status_int == 304

    head = _head(app, path)
    assert head.status_int == 200 and head.body == b""
    assert head.content_length == size and head.headers["ETag"] == etag


def _head(app: WSGIApplication, path: str) -> webob.Response:
    request = webob.Request.blank(path, method="HEAD", headers={"Cookie": "flavour=tar"})
    return request.get_response(app)


@pytest.mark.parametrize("path", ["/f/tar.gz/photos", "/s/tar.gz/photos"])
def test_tar_gz_validators_304_and_head(files: Path, path: str) -> None:
    app = make_app(files)
    whole = raw(app, path)
    etag = whole.headers["ETag"]
    assert raw(app, path, **{"If-None-Match": etag}).status_int == 304
    head = _head(app, path)
    assert head.status_int == 200 and head.body == b"" and head.headers["ETag"] == etag
    assert head.content_length is None


def test_ranges_anywhere_match_the_whole_body(files: Path) -> None:
    """Ranges starting and ending inside headers, pax records, data and padding."""
    app = make_app(files)
    body = raw(app, "/f/tar/x").body
    size = len(body)
    cuts = sorted({0, 1, 511, 512, 513, 1023, 1024, 4096, size // 3, size // 2,
                   size - 10241, size - 1024, size - 1})
    for start in cuts:
        for stop in cuts:
            if stop < start:
                continue
            part = raw(app, "/f/tar/x", Range=f"bytes={start}-{stop}")
            assert part.body == body[start : stop + 1], (start, stop)


def test_head_of_a_tar_opens_nothing(files: Path) -> None:
    """HEAD answers from the plan: no entry's data is asked for."""
    calls: list[str] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        def later() -> bytes:
            calls.append("read")
            return b"x" * 10

        stream = TarStream()
        stream.add(later, "later.txt", size=10)
        start_response("200 OK", [])
        return stream

    head = _head(ZipMiddleware(app), "/x")
    assert head.content_length == 10240 and calls == []


# --- manifest features: CRC column, sub-requests, pass-headers, charset, refusals ---------


def test_a_wrong_crc_column_is_ignored_for_tar(files: Path) -> None:
    app = make_app(files, crc="DEADBEEF")
    assert members(raw(app, "/m/tar/x").body) == expected_members(files)
    assert members(raw(app, "/m/tar.gz/x").body) == expected_members(files)


def test_sub_requests_get_the_passed_cookie_or_the_tar_is_refused(files: Path) -> None:
    app = make_app(files)
    assert members(raw(app, "/m/tar/x").body)["hello.txt"] == HELLO
    request = webob.Request.blank("/m/tar/x")  # no cookie: the sub-request gets a 403
    refused = request.get_response(app)
    assert refused.status_int == 502
    assert refused.content_type == "text/plain"
    assert b"sub-request failed (403)" in refused.body


@pytest.mark.parametrize("charset", ["cp866", "native", None])
def test_tar_names_are_utf8_whatever_the_charset(tmp_path: Path, charset: Optional[str]) -> None:
    """X-Archive-Charset says how the manifest is encoded; a tar always stores UTF-8."""
    (tmp_path / "f.txt").write_bytes(b"data")
    name = "Отчёт/файл.txt"
    body = f"- 4 /files/f.txt {name}".encode(charset if charset == "cp866" else "utf-8")
    headers = [("X-Archive-Files", "tar")]
    if charset is not None:
        headers.append(("X-Archive-Charset", charset))

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", headers)
        return [body]

    response = raw(ZipMiddleware(app, roots={"/files/": str(tmp_path)}), "/x")
    assert members(response.body) == {name: b"data"}
    assert "path=" + name in response.body.decode("utf-8", "replace")  # a pax record


def test_bad_charset_and_outside_root_are_refused_before_any_byte(files: Path) -> None:
    def app_with(body: bytes, *headers: tuple[str, str]) -> WSGIApplication:
        def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
            start_response("200 OK", [("X-Archive-Files", "tar"), *headers])
            return [body]

        return ZipMiddleware(app, roots={"/files/": str(files)})

    outside = app_with(b"- 4 /files/../secret.txt s.txt")
    assert raw(outside, "/x").status_int == 500
    charset = app_with(b"- 6 /files/empty.txt e.txt", ("X-Archive-Charset", "rot13"))
    assert raw(charset, "/x").status_int == 500
    wrong_size = app_with(b"- 6 /files/empty.txt e.txt")
    response = raw(wrong_size, "/x")
    assert response.status_int == 500
    assert b"size in the manifest differs from the file" in response.body


def test_level_sets_the_gzip_level_of_tar_gz(files: Path) -> None:
    fast = raw(make_app(files, level=1), "/f/tar.gz/x")
    small = raw(make_app(files, level=9), "/f/tar.gz/x")
    assert gzip.decompress(fast.body) == gzip.decompress(small.body)
    assert fast.etag != small.etag
    assert len(small.body) < len(fast.body)


def test_zip_options_do_not_change_a_tar(files: Path) -> None:
    """``compression``, ``precompute_crc`` (and ``level``) are zip's or gzip's: a plain
    tar is the same bytes whatever they say."""
    plain = raw(make_app(files), "/m/tar/x").body
    other = make_app(files, compression="deflate", level=9, precompute_crc=True)
    assert raw(other, "/m/tar/x").body == plain


def test_a_tar_stream_inside_a_flask_response_is_the_marker(files: Path) -> None:
    flask = pytest.importorskip("flask")
    web = flask.Flask(__name__)

    @web.route("/photos")
    def photos() -> Any:
        stream = TarStream()
        stream.add_path(str(files / "café"), "café")
        return flask.Response(stream, direct_passthrough=True)

    web.wsgi_app = ZipMiddleware(web.wsgi_app)  # type: ignore[method-assign]
    response = webtest.TestApp(web).get("/photos")
    assert response.headers["Content-Type"] == "application/x-tar"
    assert response.headers["Content-Disposition"] == 'attachment; filename="photos.tar"'
    part = webtest.TestApp(web).get("/photos", headers={"Range": "bytes=512-1023"})
    assert part.status_int == 206 and part.body == response.body[512:1024]
    assert members(response.body) == {"café": None, "café/menu.txt": MENU}
