"""HTTP for archive streams and files: one response class answers every byte representation.

Both the middleware and the standalone app answer archives through
:func:`archive_response`, and the app's single files through :class:`RangedResponse`
too, so Content-Length, preconditions (If-Match, If-Unmodified-Since, If-None-Match,
If-Modified-Since), Range/If-Range with multipart answers, 304, 412, 416 and HEAD behave
the same everywhere. The rules are :func:`zipwsgi.http.decision.decide` (pure, RFC 9110);
this module is the WSGI adapter: it reads the request's headers from the environ, the
representation's facts from the response's own headers, and produces the body lazily
from ``app_iter_range``, closing every part and the source whichever way the answer ends.

Not WebOb's ``conditional_response``: it compares If-Range dates with ``>=`` instead of
exactly (RFC 9110 13.1.5), ignores If-Match and If-Unmodified-Since (13.1.1, 13.1.4) and
serves only the first of several ranges (14.6).
"""

from __future__ import annotations

from collections import deque
from typing import (
    TYPE_CHECKING,
    Any,
    Iterable,
    Iterator,
    Mapping,
    Optional,
    Protocol,
    Union,
)

import webob

from zipwsgi.engine.stream import ArchiveStream
from zipwsgi.http.decision import (
    Decision,
    Representation,
    decide,
    parse_entity_tag,
    parse_http_date,
)
from zipwsgi.http.disposition import archive_filename, content_disposition
from zipwsgi.http.filelike import reads_locally, server_file

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["archive_response", "RangedResponse", "RangedBody", "request_headers"]

# The request header fields the decision reads, by their WSGI environ keys.
_REQUEST_HEADERS = {
    "HTTP_IF_MATCH": "if-match",
    "HTTP_IF_NONE_MATCH": "if-none-match",
    "HTTP_IF_MODIFIED_SINCE": "if-modified-since",
    "HTTP_IF_UNMODIFIED_SINCE": "if-unmodified-since",
    "HTTP_IF_RANGE": "if-range",
    "HTTP_RANGE": "range",
}


class RangedBody(Protocol):
    """What a :class:`RangedResponse` serves: byte ranges on demand, and a ``close`` that
    releases everything (iterable as a whole too: it is WebOb's ``app_iter``).
    ``app_iter_range(start, stop)`` (``stop`` exclusive, None for the end) must not open
    anything before its result is iterated: HEAD calls nothing, but a client may
    disconnect between parts. Each result may have a ``close`` too."""

    def __iter__(self) -> Iterator[bytes]: ...

    def app_iter_range(self, start: int, stop: Optional[int]) -> Iterable[bytes]: ...

    def close(self) -> None: ...


def request_headers(environ: Mapping[str, Any]) -> dict[str, str]:
    """The conditional and Range header fields of a WSGI request, by lower-case name."""
    return {name: environ[key] for key, name in _REQUEST_HEADERS.items() if key in environ}


class RangedResponse(webob.Response):
    """A WebOb response for a byte representation, answered by the RFC 9110 decision.

    Still a ``webob.Response``: callers (and framework views) may add headers, read
    ``.headers`` or return it from Pyramid as before. The representation's facts are read
    from its own headers when it is called, so setting ``response.etag`` or
    ``last_modified`` afterwards is honoured. If the caller replaces the body or the
    status, WebOb answers as a plain response instead.
    """

    def __init__(
        self,
        body: RangedBody,
        *,
        content_type: str,
        size: Optional[int],
        etag: Optional[str] = None,
        last_modified: Union[None, int, float] = None,
        server_reads: bool = False,
    ) -> None:
        super().__init__(app_iter=body, content_type=content_type, conditional_response=False)
        self.ranged_body = body
        # The body may be handed to waitress as a file its I/O thread reads
        # (zipwsgi.http.filelike): only for bodies that read local files or memory.
        self.server_reads = server_reads
        if size is not None:
            self.content_length = size
            self.accept_ranges = "bytes"
        if etag is not None:
            self.etag = etag
        if last_modified is not None:
            self.last_modified = int(last_modified)

    def representation(self) -> Representation:
        """The facts the decision needs, as this response's headers state them now."""
        headers = self.headers
        tag = parse_entity_tag(headers.get("ETag", ""))
        modified = headers.get("Last-Modified")
        return Representation(
            size=self.content_length,
            content_type=headers.get("Content-Type", "application/octet-stream"),
            etag=tag[1] if tag else None,
            etag_weak=bool(tag and tag[0]),
            last_modified=parse_http_date(modified) if modified else None,
            ranges=headers.get("Accept-Ranges", "").strip().lower() == "bytes",
        )

    def decide(self, environ: Mapping[str, Any]) -> Decision:
        method = str(environ.get("REQUEST_METHOD", "GET"))
        return decide(method, request_headers(environ), self.representation())

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if self.status_code != 200 or self.app_iter is not self.ranged_body:
            return super().__call__(environ, start_response)
        decision = self.decide(environ)
        replaced = decision.remove | {name.lower() for name, _ in decision.headers}
        headerlist = [(n, v) for n, v in self.headerlist if n.lower() not in replaced]
        span = _one_span(decision, self.content_length) if self.server_reads else None
        body = None if span is None else server_file(environ, self.ranged_body, *span)
        if body is None:
            body = _DecidedBody(self.ranged_body, decision)
        start_response(decision.status_line, headerlist + list(decision.headers))
        return body


def _one_span(decision: Decision, size: Optional[int]) -> Optional[tuple[int, int]]:
    """``(start, stop)`` when the body the decision asks for is one range of the
    representation and nothing else (a 200 of known size, a 206 of a single range)."""
    if not decision.send_body or decision.content is not None or size is None:
        return None
    if decision.parts is None:
        return (0, size)
    if len(decision.parts) == 1 and not decision.parts[0].head and not decision.tail:
        return (decision.parts[0].start, decision.parts[0].stop)
    return None


class _DecidedBody:
    """The body a decision asks for, produced lazily: our own short text, or each part's
    head and then its byte range from ``app_iter_range``, one range open at a time.

    ``close`` closes the open range and then the source, on every path (finished,
    disconnected, HEAD, 304, 412, 416): WSGI servers call it, tests run with
    ResourceWarning as an error.
    """

    __slots__ = ("_source", "_todo", "_open", "_iterator")

    def __init__(self, source: RangedBody, decision: Decision) -> None:
        self._source = source
        self._open: Optional[Iterable[bytes]] = None
        self._iterator: Optional[Iterator[bytes]] = None
        todo: deque[Union[bytes, tuple[int, Optional[int]]]] = deque()
        if not decision.send_body:
            pass
        elif decision.content is not None:
            todo.append(decision.content)
        elif decision.parts is None:
            todo.append((0, None))
        else:
            for part in decision.parts:
                if part.head:
                    todo.append(part.head)
                todo.append((part.start, part.stop))
            if decision.tail:
                todo.append(decision.tail)
        self._todo = todo

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        while True:
            if self._iterator is not None:
                try:
                    return next(self._iterator)
                except StopIteration:
                    self._close_open()
            if not self._todo:
                raise StopIteration
            item = self._todo.popleft()
            if isinstance(item, bytes):
                return item
            self._open = self._source.app_iter_range(*item)
            self._iterator = iter(self._open)

    def _close_open(self) -> None:
        opened, self._open, self._iterator = self._open, None, None
        close = getattr(opened, "close", None)
        if close is not None:
            close()

    def close(self) -> None:
        self._todo.clear()
        try:
            self._close_open()
        finally:
            self._source.close()


def archive_response(
    request: webob.Request,
    stream: ArchiveStream,
    *,
    filename: Optional[str] = None,
    content_disposition_header: Optional[str] = None,
    etag: Optional[str] = None,
    last_modified: Union[None, int, float] = None,
    headers: Optional[Mapping[str, str]] = None,
) -> RangedResponse:
    """A response that streams ``stream`` with correct HTTP semantics.

    - Content-Length and ``Accept-Ranges: bytes`` when the size is known (stored data);
      compressed archives have no length, so they go out chunked and cannot be ranged.
    - ETag: ``etag`` if the caller has one (the app's own validator wins), else one
      derived from the stream's fingerprint; strong, because If-Match and If-Range need
      a strong one (RFC 9110 8.8.3.2).
    - Last-Modified: ``last_modified`` or the newest entry's mtime.
    - Content-Disposition: the caller's header as given, else ``attachment`` built from
      ``filename`` with an RFC 6266 UTF-8 variant.
    Call the result as a WSGI app (or return it from a framework view) with the client's
    request: preconditions, HEAD, 304/412 and 206/416 are decided then
    (:mod:`zipwsgi.http.decision`), and nothing is opened before the body is iterated.
    ``request`` is not read: the decision is made for the environ the response is
    called with.
    """
    if etag is None:
        fingerprint = stream.fingerprint()
        if fingerprint is not None:
            etag = fingerprint[:32]
    if last_modified is None:
        last_modified = stream.last_modified
    response = RangedResponse(
        stream,
        content_type=stream.content_type,
        size=stream.size,
        etag=None if etag is None else etag.strip('"'),
        last_modified=last_modified,
        server_reads=reads_locally(stream),
    )
    response.charset = None  # "application/zip; charset=UTF-8" confuses some clients
    if content_disposition_header:
        response.headers["Content-Disposition"] = content_disposition_header
    elif filename is not None:
        response.headers["Content-Disposition"] = content_disposition(
            archive_filename(filename, extension=stream.extension)
        )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response
