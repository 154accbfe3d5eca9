"""The WSGI plumbing every caller of an app shares: one capture of a response, one
first-chunk wrapper, one close helper, one logged body."""

from __future__ import annotations

import logging
import sys
from typing import Any, Callable

import pytest
from conftest import ClosingBody

from zipwsgi.http.wsgi import (
    Captured,
    LoggedBody,
    NoStatusError,
    Prepended,
    close_all,
    first_header,
    request_path,
    strip_archive_headers,
)

HEADERS = [("Content-Type", "text/plain"), ("X-Archive-Files", "zip"), ("Set-Cookie", "a=1"),
           ("Set-Cookie", "b=2")]


def immediate(body: ClosingBody, status: str = "200 OK", headers: Any = HEADERS) -> Callable:
    def app(environ: dict, start_response: Callable) -> ClosingBody:
        start_response(status, headers)
        return body

    return app


def late(body: ClosingBody, status: str = "200 OK") -> Callable:
    def app(environ: dict, start_response: Callable) -> ClosingBody:
        body.on_first = lambda: start_response(status, HEADERS)
        return body

    return app


def exc_info_of(exc: BaseException) -> Any:
    try:
        raise exc
    except BaseException:
        return sys.exc_info()


# --- Captured --------------------------------------------------------------------------------


def test_call_with_immediate_start_response_reads_nothing() -> None:
    body = ClosingBody([b"a", b"b"])
    response = Captured()
    response.call(immediate(body), {})
    assert response.status == "200 OK"
    assert response.headers == HEADERS and response.headers is not HEADERS
    assert response.body is body
    assert body.taken == 0
    assert response.header("content-type") == "text/plain"
    assert response.header("SET-COOKIE") == "a=1"  # the first one
    assert response.header("Content-Length") is None


def test_call_with_late_start_response_keeps_the_first_chunk() -> None:
    body = ClosingBody([b"first", b"second", b"third"])
    response = Captured()
    response.call(late(body, "404 Not Found"), {})
    assert response.status == "404 Not Found"
    assert body.taken == 1
    assert list(response.body) == [b"first", b"second", b"third"]
    response.close()
    assert body.closed == 1


def test_late_start_response_with_an_empty_body() -> None:
    def app(environ: dict, start_response: Callable):
        start_response("204 No Content", [])
        yield from ()

    response = Captured()
    response.call(app, {})
    assert response.status == "204 No Content"
    assert list(response.body) == []


@pytest.mark.parametrize("chunks", [[b"x", b"y"], []])
def test_no_status_closes_the_body(chunks: list[bytes]) -> None:
    body = ClosingBody(chunks)
    with pytest.raises(NoStatusError):
        Captured().call(lambda environ, start_response: body, {})
    assert body.closed == 1


def test_a_body_raising_before_the_status_is_closed_and_the_error_kept() -> None:
    body = ClosingBody([b"x"], fail_at=0)
    with pytest.raises(RuntimeError, match="the body failed"):
        Captured().call(lambda environ, start_response: body, {})
    assert body.closed == 1


def test_write_keeps_data_in_order() -> None:
    def app(environ: dict, start_response: Callable) -> list[bytes]:
        write = start_response("200 OK", [])
        write(b"one")
        write(b"two")
        return [b"three"]

    response = Captured()
    response.call(app, {})
    assert response.written == [b"one", b"two"]
    assert list(response.body) == [b"three"]


def test_exc_info_after_a_status_re_raises_that_error() -> None:
    """PEP 3333: with exc_info, start_response re-raises once headers are set."""
    response = Captured()
    response.start_response("200 OK", [("A", "1")])
    info = exc_info_of(ValueError("late failure"))
    with pytest.raises(ValueError) as caught:
        response.start_response("500 Internal Server Error", [], info)
    assert caught.value is info[1]
    assert caught.value.__traceback__ is not None
    assert response.status == "200 OK" and response.headers == [("A", "1")]


def test_exc_info_before_a_status_replaces_it() -> None:
    response = Captured()
    info = exc_info_of(ValueError("early failure"))
    write = response.start_response("500 Internal Server Error", [("B", "2")], info)
    assert response.status == "500 Internal Server Error"
    assert response.headers == [("B", "2")]
    assert response.exc_info is info
    write(b"x")
    assert response.written == [b"x"]


def test_close_closes_the_body_once() -> None:
    body = ClosingBody([b"x"])
    response = Captured()
    response.call(immediate(body), {})
    response.close()
    response.close()
    assert body.closed == 1


# --- Prepended -------------------------------------------------------------------------------


def test_prepended_gives_the_first_chunks_then_the_rest_and_closes_the_origin() -> None:
    origin = ClosingBody([])
    rest = ClosingBody([b"c", b"d"])
    wrapped = Prepended([b"a", b"b"], iter(rest), origin)
    assert iter(wrapped) is wrapped
    assert list(wrapped) == [b"a", b"b", b"c", b"d"]
    wrapped.close()
    assert origin.closed == 1
    assert rest.closed == 0  # the origin owns what it returned


def test_prepended_of_a_plain_list_closes_quietly() -> None:
    wrapped = Prepended([b"a"], iter([b"b"]), [b"a", b"b"])
    assert list(wrapped) == [b"a", b"b"]
    wrapped.close()


# --- close_all -------------------------------------------------------------------------------


class Closer:
    def __init__(self, log: list[str], name: str, error: BaseException | None = None) -> None:
        self.log, self.name, self.error = log, name, error

    def close(self) -> None:
        self.log.append(self.name)
        if self.error is not None:
            raise self.error


def test_close_all_runs_every_closer_and_raises_the_first_error() -> None:
    log: list[str] = []
    first, second = OSError("first"), ValueError("second")

    def bare() -> None:
        log.append("bare")

    objects = [Closer(log, "a"), Closer(log, "b", first), bare, [b"no close"], None,
               Closer(log, "c", second), Closer(log, "d")]
    with pytest.raises(OSError) as caught:
        close_all(objects)
    assert caught.value is first
    assert log == ["a", "b", "bare", "c", "d"]


def test_close_all_without_errors() -> None:
    log: list[str] = []
    close_all([Closer(log, "a"), Closer(log, "b")])
    close_all([])
    assert log == ["a", "b"]


def test_close_all_prefers_a_close_method_over_calling_the_object() -> None:
    calls: list[str] = []

    class Both:
        def __call__(self) -> None:
            calls.append("call")

        def close(self) -> None:
            calls.append("close")

    close_all([Both()])
    assert calls == ["close"]


# --- headers and paths -----------------------------------------------------------------------


def test_strip_archive_headers() -> None:
    headers = [("Content-Type", "text/plain"), ("X-Archive-Files", "zip"),
               ("x-archive-charset", "cp1251"), ("X-ARCHIVE-NAME", "a.zip"),
               ("X-Archived", "kept"), ("Content-Length", "5")]
    assert strip_archive_headers(headers) == [
        ("Content-Type", "text/plain"), ("X-Archived", "kept"), ("Content-Length", "5")
    ]
    plain = [("Content-Type", "text/plain")]
    assert strip_archive_headers(plain) is plain  # nothing to remove: no copy


def test_first_header() -> None:
    assert first_header(HEADERS, "set-cookie") == "a=1"
    assert first_header(HEADERS, "x-archive-files") == "zip"
    assert first_header([], "Content-Type") is None


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"SCRIPT_NAME": "/app", "PATH_INFO": "/café/Отчёт.txt".encode().decode("latin-1")},
         "/app/café/Отчёт.txt"),
        ({"PATH_INFO": "/dl"}, "/dl"),
        ({"PATH_INFO": "/caf\xe9"}, "/caf\xe9"),  # not UTF-8: left as the server gave it
        ({}, ""),
    ],
)
def test_request_path(environ: dict, expected: str) -> None:
    assert request_path(environ) == expected


# --- LoggedBody ------------------------------------------------------------------------------


def test_logged_body_logs_a_mid_stream_error_and_re_raises(
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = ClosingBody([b"ab", b"cde", b"never"], fail_at=2)
    logged = LoggedBody(body, (), "GET /dl")
    with caplog.at_level(logging.ERROR, logger="zipwsgi"):
        assert next(logged) == b"ab"
        assert next(logged) == b"cde"
        with pytest.raises(RuntimeError, match="the body failed"):
            next(logged)
    [record] = [r for r in caplog.records if r.name == "zipwsgi"]
    assert record.levelno == logging.ERROR
    assert record.getMessage() == "GET /dl: archive aborted after 5 bytes: the body failed"


def test_logged_body_says_nothing_at_a_normal_end(caplog: pytest.LogCaptureFixture) -> None:
    body = ClosingBody([b"a", b"b"])
    with caplog.at_level(logging.DEBUG, logger="zipwsgi"):
        assert list(LoggedBody(body, (), "GET /dl")) == [b"a", b"b"]
    assert caplog.records == []


def test_logged_body_closes_body_and_closers_once() -> None:
    body = ClosingBody([b"a"])
    log: list[str] = []
    logged = LoggedBody(body, (Closer(log, "source"), lambda: log.append("bare")), "GET /dl")
    logged.close()
    logged.close()
    assert body.closed == 1
    assert log == ["source", "bare"]


def test_logged_body_closes_everything_even_when_a_closer_fails() -> None:
    body = ClosingBody([b"a"])
    log: list[str] = []
    failure = OSError("close failed")
    logged = LoggedBody(body, (Closer(log, "a", failure), Closer(log, "b")), "GET /dl")
    with pytest.raises(OSError) as caught:
        logged.close()
    assert caught.value is failure
    assert body.closed == 1 and log == ["a", "b"]
