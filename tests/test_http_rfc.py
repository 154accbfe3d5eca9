"""RFC 9110 conditional requests and ranges on every kind of answer zipwsgi gives.

The same checks run against four targets: a mod_zip manifest archive and a marker
(ZipStream) archive through ZipMiddleware, and the standalone app's folder zip and one of
its single files. Then a real waitress server and curl fetch a multi-range and resume.
"""

from __future__ import annotations

import os
import re
import subprocess
import zipfile
from io import BytesIO
from pathlib import Path
from typing import Callable, Iterator

import pytest
import webob
import webtest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from servers import thread_server

from zipwsgi import ZipApp, ZipMiddleware, ZipStream
from zipwsgi.app.files import _FileBody
from zipwsgi.engine.files import FileSource
from zipwsgi.http.decision import MAX_RANGES, format_http_date
from zipwsgi.http.responses import archive_response

MTIME = 1_700_000_000
LM = format_http_date(MTIME)
BEFORE = format_http_date(MTIME - 1)
AFTER = format_http_date(MTIME + 1)
TARGETS = ("manifest", "marker", "folder", "file")


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    root = tmp_path / "share"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "a.txt").write_bytes(bytes(range(256)) * 8)  # 2048 bytes
    (root / "docs" / "b.bin").write_bytes(os.urandom(5000))
    for path in (root / "docs" / "a.txt", root / "docs" / "b.bin", root / "docs"):
        os.utime(path, (MTIME, MTIME))
    return root


def middleware_app(root: Path) -> ZipMiddleware:
    def app(environ, start_response):
        if environ["PATH_INFO"] == "/manifest.zip":
            lines = [f"- {(root / 'docs' / n).stat().st_size} /files/docs/{n} docs/{n}"
                     for n in ("a.txt", "b.bin")]
            start_response("200 OK", [("Content-Type", "text/plain"),
                                      ("X-Archive-Files", "zip")])
            return ["\n".join(lines).encode()]
        stream = ZipStream()
        stream.add_path(str(root / "docs"), "docs")
        start_response("200 OK", [("Content-Type", "application/zip")])
        return stream

    return ZipMiddleware(app, roots={"/files/": str(root)})


@pytest.fixture()
def opened(monkeypatch) -> list[str]:
    """Every file the answer opens: archive sources and the app's single files."""
    seen: list[str] = []
    source_open, file_range = FileSource.open, _FileBody.app_iter_range

    def open_source(self):
        seen.append(self.path)
        return source_open(self)

    def file_body_range(self, start, stop):
        seen.append(self.path)
        return file_range(self, start, stop)

    monkeypatch.setattr(FileSource, "open", open_source)
    monkeypatch.setattr(_FileBody, "app_iter_range", file_body_range)
    return seen


class Target:
    def __init__(self, app: webtest.TestApp, url: str) -> None:
        self.app, self.url = app, url
        whole = app.get(url)
        self.body = whole.body
        self.headers = whole.headers
        self.etag = whole.headers["ETag"]

    def get(self, status: int | str = "*", method: str = "GET", **headers: str):
        headers = {k.replace("_", "-"): v for k, v in headers.items()}
        return self.app.request(self.url, method=method, headers=headers, status=status,
                                expect_errors=True)


@pytest.fixture(params=TARGETS)
def target(request, root: Path) -> Target:
    if request.param in ("manifest", "marker"):
        app = webtest.TestApp(middleware_app(root))
        return Target(app, f"/{request.param}.zip")
    app = webtest.TestApp(ZipApp(root))
    return Target(app, "/docs.zip" if request.param == "folder" else "/docs/a.txt")


def parse_multipart(response, size: int) -> list[tuple[int, int, bytes]]:
    """Parse a multipart/byteranges body strictly: (start, stop, data) for each part."""
    match = re.fullmatch(r"multipart/byteranges; boundary=(\S{1,70})",
                         response.headers["Content-Type"])
    assert match
    body, delimiter, pos, parts = response.body, b"--" + match[1].encode(), 0, []
    while True:
        assert body[pos:pos + len(delimiter)] == delimiter
        pos += len(delimiter)
        if body[pos:] == b"--\r\n":
            return parts
        end = body.index(b"\r\n\r\n", pos)
        fields = dict(line.split(": ", 1) for line in body[pos + 2:end].decode().split("\r\n"))
        first, last, total = map(int, re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)",
                                                   fields["Content-Range"]).groups())
        assert total == size
        pos = end + 4
        parts.append((first, last + 1, body[pos:pos + last + 1 - first]))
        pos += last + 1 - first
        assert body[pos:pos + 2] == b"\r\n"
        pos += 2


# --- validators are what the tests below assume --------------------------------------------


def test_every_target_has_a_strong_etag_and_the_files_date(target):
    assert target.etag.startswith('"') and target.headers["Last-Modified"] == LM
    assert target.headers["Accept-Ranges"] == "bytes"


# --- If-Range ------------------------------------------------------------------------------


@pytest.mark.parametrize(("if_range", "status"), [
    (LM, 206),
    (AFTER, 200),  # WebOb answered 206: a newer date is another representation (13.1.5)
    (BEFORE, 200),
    ("Tue, 14 Nov 2023 22:13:20 GMT garbage", 200),
])
def test_if_range_by_date_must_match_exactly(target, if_range, status):
    response = target.get(status, Range="bytes=7-", If_Range=if_range)
    assert response.body == (target.body[7:] if status == 206 else target.body)


def test_if_range_by_etag_strong_only(target):
    assert target.get(206, Range="bytes=7-", If_Range=target.etag).body == target.body[7:]
    assert target.get(200, Range="bytes=7-", If_Range="W/" + target.etag).body == target.body
    assert target.get(200, Range="bytes=7-", If_Range='"other"').body == target.body


# --- If-Match, If-Unmodified-Since -----------------------------------------------------------


@pytest.mark.parametrize(("if_match", "ok"), [
    ("ETAG", True), ('"nope"', False), ("*", True), ('"x", ETAG', True), ('"x", "y"', False),
    ("W/ETAG", False),
])
def test_if_match(target, opened, if_match, ok):
    value = if_match.replace("ETAG", target.etag)
    opened.clear()
    response = target.get(200 if ok else 412, If_Match=value)
    if ok:
        assert response.body == target.body
    else:
        assert opened == [] and b"PK" not in response.body
        assert "ETag" not in response.headers and "Content-Disposition" not in response.headers
        assert response.headers["Content-Type"].startswith("text/plain")


@pytest.mark.parametrize(("since", "status"), [
    (BEFORE, 412), (LM, 200), (AFTER, 200), ("not a date", 200), ("", 200),
])
def test_if_unmodified_since(target, opened, since, status):
    opened.clear()
    response = target.get(status, If_Unmodified_Since=since)
    if status == 412:
        assert opened == [] and response.body.startswith(b"Precondition Failed")


@pytest.mark.parametrize(("headers", "status"), [
    ({"If_Match": '"nope"', "If_None_Match": "ETAG"}, 412),  # If-Match first (13.2.2)
    ({"If_Match": "ETAG", "If_Unmodified_Since": BEFORE}, 200),  # ignored beside If-Match
    ({"If_Unmodified_Since": BEFORE, "If_None_Match": "ETAG"}, 412),
    ({"If_Match": "ETAG", "If_None_Match": "ETAG"}, 304),
    ({"If_None_Match": '"x"', "If_Modified_Since": LM}, 200),  # If-None-Match wins
    ({"If_None_Match": "ETAG", "Range": "bytes=0-1"}, 304),
    ({"If_Match": '"nope"', "Range": "bytes=99999999-"}, 412),  # before any 416
    ({"If_Match": "*", "Range": "bytes=99999999-"}, 416),
])
def test_precondition_order(target, headers, status):
    values = {k: v.replace("ETAG", target.etag) for k, v in headers.items()}
    target.get(status, **values)


def test_412_for_unsafe_methods_on_if_none_match(root):
    """A POST selection is not GET: a matching If-None-Match fails with 412 (13.1.2)."""
    app = webtest.TestApp(ZipApp(root))
    etag = app.post("/docs/", {"path": "a.txt"}).headers["ETag"]
    app.post("/docs/", {"path": "a.txt"}, headers={"If-None-Match": etag}, status=412)
    app.post("/docs/", {"path": "a.txt"}, headers={"If-Match": '"old"'}, status=412)


# --- multiple ranges ---------------------------------------------------------------------


def test_multipart_ranges(target, opened):
    size = len(target.body)
    opened.clear()
    response = target.get(206, Range="bytes=0-3,100-199,-22")
    assert int(response.headers["Content-Length"]) == len(response.body)
    parts = parse_multipart(response, size)
    assert [(a, b) for a, b, _ in parts] == [(0, 4), (100, 200), (size - 22, size)]
    for a, b, data in parts:
        assert data == target.body[a:b]
    assert response.headers["ETag"] == target.etag
    assert opened  # the bytes came from the files


def test_multipart_boundary_is_the_same_on_every_request(target):
    first = target.get(206, Range="bytes=0-0,9-9")
    assert target.get(206, Range="bytes=0-0,9-9").body == first.body


@pytest.mark.parametrize(("value", "spans"), [
    ("bytes=0-9,10-19", [(0, 20)]),  # touching
    ("bytes=5-30,0-9,25-40", [(0, 41)]),  # overlapping
    ("bytes=200-209,0-9,5-14", [(200, 210), (0, 15)]),
])
def test_coalesced_ranges(target, value, spans):
    response = target.get(206, Range=value)
    if len(spans) == 1:
        (a, b), = spans
        assert response.headers["Content-Range"] == f"bytes {a}-{b - 1}/{len(target.body)}"
        assert response.body == target.body[a:b]
    else:
        parts = parse_multipart(response, len(target.body))
        assert [(a, b) for a, b, _ in parts] == spans
        assert all(data == target.body[a:b] for a, b, data in parts)


def test_abusive_ranges_get_the_whole_body(target):
    many = "bytes=" + ",".join(f"{2 * i}-{2 * i}" for i in range(MAX_RANGES + 1))
    assert target.get(200, Range=many).body == target.body
    assert len(parse_multipart(target.get(206, Range=many.rsplit(",", 1)[0]), len(target.body))) \
        == MAX_RANGES
    assert target.get(200, Range="bytes=0-,0-").body == target.body  # twice the size
    assert target.get(200, Range="bytes=10-5").body == target.body  # inverted: invalid


def test_unsatisfiable_ranges(target, opened):
    size = len(target.body)
    opened.clear()
    response = target.get(416, Range=f"bytes={size}-,{size + 10}-{size + 20}")
    assert response.headers["Content-Range"] == f"bytes */{size}" and opened == []
    # One satisfiable range among unsatisfiable ones is served alone.
    response = target.get(206, Range=f"bytes={size}-,0-4")
    assert response.headers["Content-Range"] == f"bytes 0-4/{size}"


# --- HEAD --------------------------------------------------------------------------------


@pytest.mark.parametrize(("headers", "status"), [
    ({}, 200), ({"Range": "bytes=0-3,100-199,-22"}, 206), ({"Range": "bytes=5-9"}, 206),
    ({"If_Match": '"nope"'}, 412), ({"If_None_Match": "*"}, 304),
    ({"Range": "bytes=99999999-"}, 416),
])
def test_head_has_the_get_headers_and_opens_nothing(target, opened, headers, status):
    get = target.get(status, **headers)
    opened.clear()
    head = target.get(status, "HEAD", **headers)
    assert head.body == b"" and opened == []
    assert sorted(head.headerlist) == sorted(get.headerlist)


# --- a real server and curl ----------------------------------------------------------------


def curl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", *args], capture_output=True, timeout=60)


@pytest.fixture()
def servers(root: Path) -> Iterator[Callable[[str], str]]:
    with thread_server(middleware_app(root)) as middleware_url, \
            thread_server(ZipApp(root)) as app_url:
        urls = {"manifest": middleware_url + "manifest.zip",
                "marker": middleware_url + "marker.zip",
                "folder": app_url + "docs.zip", "file": app_url + "docs/a.txt"}
        yield urls.__getitem__


@pytest.mark.parametrize("name", TARGETS)
def test_curl_multirange_and_resume_over_waitress(servers, tmp_path, name):
    url = servers(name)
    whole = tmp_path / "whole"
    assert curl("-o", str(whole), url).returncode == 0
    full = whole.read_bytes()
    if name != "file":
        zipfile.ZipFile(BytesIO(full)).testzip()

    # Several ranges: the multipart body as curl received it.
    headers_file, body_file = tmp_path / "headers", tmp_path / "body"
    result = curl("-r", "0-3,100-199,-22", "-D", str(headers_file), "-o", str(body_file), url)
    assert result.returncode == 0, result.stderr
    lines = headers_file.read_bytes().decode("latin-1").split("\r\n")
    assert lines[0] == "HTTP/1.1 206 Partial Content"
    fields = {k.lower(): v for k, _, v in (line.partition(": ") for line in lines[1:] if line)}
    received = body_file.read_bytes()
    assert int(fields["content-length"]) == len(received)

    class Received:
        headers = {"Content-Type": fields["content-type"]}
        body = received

    parts = parse_multipart(Received, len(full))
    assert [(a, b) for a, b, _ in parts] == [(0, 4), (100, 200), (len(full) - 22, len(full))]
    assert all(data == full[a:b] for a, b, data in parts)

    # A cut download resumed with curl -C - (and If-Range with the ETag) is identical.
    etag = fields["etag"]
    part = tmp_path / "part"
    part.write_bytes(full[:len(full) // 3])
    result = curl("-C", "-", "-H", f"If-Range: {etag}", "-o", str(part), url)
    assert result.returncode == 0, result.stderr
    assert part.read_bytes() == full

    # If-Range with a date newer than Last-Modified gets the whole body (200): curl sees
    # that the server did not resume and refuses to append (exit 33), no corrupt file.
    part.write_bytes(full[:100])
    result = curl("-C", "-", "-H", f"If-Range: {AFTER}", "-o", str(part), url)
    assert result.returncode == 33 and part.read_bytes() == full[:100]


# --- property: multipart over a real archive stream ----------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=st.lists(st.tuples(st.integers(0, 3000), st.integers(0, 400)), min_size=2,
                      max_size=8))
def test_property_multipart_archive_parts_equal_the_slices(specs):
    stream = ZipStream()
    stream.add(bytes(range(256)) * 6, "a.bin", mtime=MTIME)
    stream.add(b"tail\n" * 100, "b.txt", mtime=MTIME)
    app = webtest.TestApp(lambda environ, start_response: archive_response(
        webob.Request(environ), stream)(environ, start_response))
    full = app.get("/x.zip").body
    value = "bytes=" + ",".join(f"{a}-{a + n}" for a, n in specs)
    response = app.get("/x.zip", headers={"Range": value}, expect_errors=True)
    assert response.status_int in (200, 206, 416)
    if response.status_int == 200:
        assert response.body == full
    elif response.headers["Content-Type"].startswith("multipart/"):
        assert int(response.headers["Content-Length"]) == len(response.body)
        for a, b, data in parse_multipart(response, len(full)):
            assert data == full[a:b]
    elif response.status_int == 206:
        first = int(response.headers["Content-Range"].split()[1].split("-")[0])
        assert response.body == full[first:first + len(response.body)]


def test_deflate_archives_have_preconditions_but_no_ranges(root):
    def app(environ, start_response):
        stream = ZipStream("deflate")
        stream.add_path(str(root / "docs"), "docs")
        start_response("200 OK", [])
        return stream

    wrapped = ZipMiddleware(app)
    sent: list[tuple[str, str]] = []
    body = wrapped({"REQUEST_METHOD": "GET", "PATH_INFO": "/d.zip", "HTTP_RANGE": "bytes=0-3"},
                   lambda status, headers, exc_info=None: sent.extend(headers))
    body.close()  # webtest adds a Content-Length of its own: look at what was sent
    names = {name.lower() for name, _ in sent}
    assert "content-length" not in names and "accept-ranges" not in names and "etag" in names
    test = webtest.TestApp(wrapped)
    whole = test.get("/d.zip")
    assert test.get("/d.zip", headers={"Range": "bytes=0-3,9-9"}).body == whole.body
    test.get("/d.zip", headers={"If-Match": '"nope"'}, status=412)
    test.get("/d.zip", headers={"If-Match": whole.headers["ETag"]}, status=200)
