"""Sub-requests: the environ derived from the client's, and SubrequestSource against tiny
WSGI apps (every way an app can answer, and the body closed in each)."""

from __future__ import annotations

import io
from typing import Any, Callable

import pytest
from conftest import ClosingBody

from zipwsgi.errors import SourceChangedError, SubrequestError
from zipwsgi.http.subrequest import SUBREQUEST_KEY, SubrequestSource, subrequest_environ

CONDITIONALS = {
    "HTTP_RANGE": "bytes=0-9",
    "HTTP_IF_RANGE": '"etag"',
    "HTTP_IF_MATCH": '"etag"',
    "HTTP_IF_NONE_MATCH": '"etag"',
    "HTTP_IF_MODIFIED_SINCE": "Wed, 01 May 2024 12:00:00 GMT",
    "HTTP_IF_UNMODIFIED_SINCE": "Wed, 01 May 2024 12:00:00 GMT",
}
FRAMEWORK_KEYS = ("webob._parsed_query_vars", "werkzeug.request", "bottle.request",
                  "paste.parsed_querystring")


def client_environ(**extra: Any) -> dict[str, Any]:
    """A client's POST to /dl with a body, credentials, conditionals and framework caches."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/dl",
        "QUERY_STRING": "archive=1",
        "SERVER_NAME": "example.org",
        "SERVER_PORT": "443",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "192.0.2.7",
        "wsgi.url_scheme": "https",
        "wsgi.errors": io.StringIO(),
        "wsgi.input": io.BytesIO(b"client body"),
        "CONTENT_LENGTH": "11",
        "CONTENT_TYPE": "application/x-www-form-urlencoded",
        "HTTP_HOST": "example.org",
        "HTTP_COOKIE": "session=1",
        "HTTP_AUTHORIZATION": "Bearer secret",
        "HTTP_ACCEPT_LANGUAGE": "fr",
        "HTTP_CONTENT_LENGTH": "11",
        "HTTP_CONTENT_TYPE": "text/plain",
        "HTTP_TRANSFER_ENCODING": "chunked",
        "HTTP_EXPECT": "100-continue",
        "REQUEST_URI": "/dl?archive=1",
        "RAW_URI": "/dl?archive=1",
        **CONDITIONALS,
        **{key: object() for key in FRAMEWORK_KEYS},
    }
    environ.update(extra)
    return environ


# --- the environ -----------------------------------------------------------------------------


def test_a_get_for_the_location_and_query() -> None:
    client = client_environ()
    sub = subrequest_environ(client, "/reports/2024.csv", "format=long")
    assert sub["REQUEST_METHOD"] == "GET"
    assert sub["PATH_INFO"] == "/reports/2024.csv"
    assert sub["QUERY_STRING"] == "format=long"
    assert sub["CONTENT_LENGTH"] == "0"
    assert "CONTENT_TYPE" not in sub
    assert sub["wsgi.input"].read() == b""
    assert sub[SUBREQUEST_KEY] is True
    # Server and connection keys are the client's.
    for key in ("SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "REMOTE_ADDR",
                "wsgi.url_scheme", "wsgi.errors", "SCRIPT_NAME"):
        assert sub[key] is client[key]
    # The client's environ is left as it was.
    assert client["REQUEST_METHOD"] == "POST" and client["wsgi.input"].read() == b"client body"
    assert SUBREQUEST_KEY not in client


def test_only_host_by_default() -> None:
    sub = subrequest_environ(client_environ(), "/x")
    assert [key for key in sub if key.startswith("HTTP_")] == ["HTTP_HOST"]


def test_pass_headers_in_any_case_and_spacing() -> None:
    sub = subrequest_environ(client_environ(), "/x", pass_headers=[" cookie", "AUTHORIZATION ",
                                                                   "Accept-Language", ""])
    assert sub["HTTP_COOKIE"] == "session=1"
    assert sub["HTTP_AUTHORIZATION"] == "Bearer secret"
    assert sub["HTTP_ACCEPT_LANGUAGE"] == "fr"
    assert "HTTP_" not in sub


def test_range_conditionals_and_body_headers_are_never_passed() -> None:
    asked = ["Range", "If-Range", "If-Match", "If-None-Match", "If-Modified-Since",
             "If-Unmodified-Since", "Content-Length", "Content-Type", "Transfer-Encoding",
             "Expect"]
    sub = subrequest_environ(client_environ(), "/x", pass_headers=asked)
    for key in (*CONDITIONALS, "HTTP_CONTENT_LENGTH", "HTTP_CONTENT_TYPE",
                "HTTP_TRANSFER_ENCODING", "HTTP_EXPECT", "CONTENT_TYPE"):
        assert key not in sub, key
    assert sub["CONTENT_LENGTH"] == "0"


def test_raw_request_lines_and_framework_caches_are_dropped() -> None:
    sub = subrequest_environ(client_environ(), "/x")
    for key in ("REQUEST_URI", "RAW_URI", *FRAMEWORK_KEYS):
        assert key not in sub, key


def test_a_non_ascii_location_is_latin1_as_pep_3333_says() -> None:
    sub = subrequest_environ(client_environ(), "/files/café/Отчёт.txt")
    assert sub["PATH_INFO"] == "/files/café/Отчёт.txt".encode().decode("latin-1")


@pytest.mark.parametrize(
    ("script_name", "location", "path_info"),
    [
        ("/app", "/app/reports/x.csv", "/reports/x.csv"),
        ("/app", "/app", ""),
        ("/app", "/application/x", "/application/x"),  # not a segment of the mount
        ("/app", "/reports/x.csv", "/reports/x.csv"),  # a path inside the app
        ("/zürich".encode().decode("latin-1"), "/zürich/a", "/a"),
    ],
)
def test_a_location_under_script_name_is_made_relative(script_name, location, path_info) -> None:
    sub = subrequest_environ(client_environ(SCRIPT_NAME=script_name), location)
    assert sub["SCRIPT_NAME"] == script_name
    assert sub["PATH_INFO"] == path_info


# --- SubrequestSource ------------------------------------------------------------------------


class App:
    """A WSGI app answering ``status``/``headers`` with ``body``; records its environs."""

    def __init__(self, body: ClosingBody, status: str = "200 OK",
                 headers: Any = (), late: bool = False, written: bytes = b"") -> None:
        self.body, self.status, self.headers = body, status, list(headers)
        self.late, self.written = late, written
        self.environs: list[dict[str, Any]] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> ClosingBody:
        self.environs.append(environ)
        if self.late:  # PEP 3333: start_response when the body is first iterated
            self.body.on_first = lambda: start_response(self.status, self.headers)
            return self.body
        write = start_response(self.status, self.headers)
        if self.written:
            write(self.written)
        return self.body


def source(app: Any, size: int, location: str = "/data/x.bin") -> SubrequestSource:
    return SubrequestSource(app, subrequest_environ(client_environ(), location), size, location)


def read_in(reader: Any, n: int) -> list[bytes]:
    pieces = []
    while piece := reader.read(n):
        pieces.append(piece)
    return pieces


def test_a_200_is_streamed_and_rechunked() -> None:
    body = ClosingBody([b"hello", b"", b" world", b"!"])
    app = App(body, headers=[("Content-Length", "12")])
    reader = source(app, 12).open()
    assert body.taken == 0  # nothing is read before the first read
    pieces = read_in(reader, 3)
    assert b"".join(pieces) == b"hello world!"
    assert all(0 < len(piece) <= 3 for piece in pieces)
    assert body.closed == 0
    reader.close()
    assert body.closed == 1
    env = app.environs[0]
    assert (env["REQUEST_METHOD"], env["PATH_INFO"], env[SUBREQUEST_KEY]) == (
        "GET", "/data/x.bin", True)


def test_every_open_is_a_fresh_request() -> None:
    app = App(ClosingBody([b"abc"]))
    src = source(app, 3)
    assert src.reopenable
    for _ in range(2):
        app.body = ClosingBody([b"abc"])
        assert src.read_all(3) == b"abc"
        assert app.body.closed == 1
    assert len(app.environs) == 2
    assert app.environs[0]["wsgi.input"] is not app.environs[1]["wsgi.input"]
    assert src.describe() == "sub-request GET /data/x.bin"


@pytest.mark.parametrize("status", ["404 Not Found", "500 Internal Server Error",
                                    "206 Partial Content", "304 Not Modified"])
@pytest.mark.parametrize("late", [False, True])
def test_anything_but_200_is_refused_with_its_status(status: str, late: bool) -> None:
    body = ClosingBody([b"nope"])
    with pytest.raises(SubrequestError, match="not 200") as caught:
        source(App(body, status=status, late=late), 4).open()
    assert caught.value.status == status
    assert body.closed == 1


def test_a_content_length_other_than_the_promise_is_refused() -> None:
    body = ClosingBody([b"12345"])
    with pytest.raises(SubrequestError, match="Content-Length is 5, the manifest promised 4"):
        source(App(body, headers=[("content-length", "5")]), 4).open()
    assert body.closed == 1
    assert body.taken == 0


def test_an_unparseable_content_length_is_left_to_the_byte_count() -> None:
    src = source(App(ClosingBody([b"12345"]), headers=[("Content-Length", "five")]), 5)
    assert src.read_all(5) == b"12345"


def test_a_short_body_is_caught_by_the_byte_count() -> None:
    body = ClosingBody([b"123"])
    with pytest.raises(SourceChangedError, match="shrank"):
        source(App(body), 5).read_all(5)
    assert body.closed == 1


def test_a_nested_manifest_is_refused() -> None:
    body = ClosingBody([b"- 1 /a a\n"])
    app = App(body, headers=[("X-Archive-Files", "zip")])
    with pytest.raises(SubrequestError, match="nested") as caught:
        source(app, 9).open()
    assert caught.value.status == "200 OK"
    assert body.closed == 1


def test_an_app_that_raises() -> None:
    def app(environ: dict[str, Any], start_response: Callable) -> list[bytes]:
        raise KeyError("boom")

    with pytest.raises(SubrequestError, match="raised KeyError") as caught:
        source(app, 1).open()
    assert caught.value.status is None
    assert isinstance(caught.value.__cause__, KeyError)


def test_an_app_whose_body_raises_before_the_status() -> None:
    body = ClosingBody([b"x"], fail_at=0)
    with pytest.raises(SubrequestError, match="the body failed"):
        source(lambda environ, start_response: body, 1).open()
    assert body.closed == 1


def test_start_response_called_late() -> None:
    body = ClosingBody([b"first", b"-second"])
    reader = source(App(body, late=True), 12).open()
    assert body.taken == 1  # one chunk had to be taken to see the status
    assert b"".join(read_in(reader, 4)) == b"first-second"
    reader.close()
    assert body.closed == 1


@pytest.mark.parametrize("chunks", [[b"data"], []])
def test_an_app_that_never_calls_start_response(chunks: list[bytes]) -> None:
    body = ClosingBody(chunks)
    with pytest.raises(SubrequestError, match="no status") as caught:
        source(lambda environ, start_response: body, 4).open()
    assert caught.value.status is None
    assert body.closed == 1


def test_write_callable_data_comes_first() -> None:
    body = ClosingBody([b"-body"])
    reader = source(App(body, written=b"written"), 12).open()
    assert b"".join(read_in(reader, 5)) == b"written-body"
    reader.close()
    assert body.closed == 1


def test_a_body_failing_mid_stream_is_a_subrequest_error_and_still_closed() -> None:
    body = ClosingBody([b"abc", b"def"], fail_at=1)
    reader = source(App(body), 6).open()
    assert reader.read(3) == b"abc"
    with pytest.raises(SubrequestError, match="body raised"):
        reader.read(3)
    reader.close()
    assert body.closed == 1


def test_a_body_yielding_text_is_refused() -> None:
    body = ClosingBody(["text"])
    reader = source(App(body), 4).open()
    with pytest.raises(SubrequestError, match="yielded str"):
        reader.read(4)
    reader.close()
    assert body.closed == 1


def test_close_twice_closes_once() -> None:
    body = ClosingBody([b"abc"])
    reader = source(App(body), 3).open()
    reader.close()
    reader.close()
    assert body.closed == 1


def test_check_closes_without_reading() -> None:
    body = ClosingBody([b"abc"])
    app = App(body, headers=[("Content-Length", "3")])
    source(app, 3).check()
    assert body.taken == 0
    assert body.closed == 1
    assert len(app.environs) == 1


def test_check_refuses_what_open_would() -> None:
    body = ClosingBody([b"abc"])
    with pytest.raises(SubrequestError):
        source(App(body, status="403 Forbidden"), 3).check()
    assert body.closed == 1
