"""HTTP for archive streams: one function turns a stream into a complete WebOb response.

Both the middleware and the standalone app answer through :func:`archive_response`, so
Content-Length, Range/If-Range, ETag/Last-Modified, 304, 416 and HEAD behave the same
everywhere. The HTTP rules themselves are WebOb's ``conditional_response``; this module
only feeds it the facts (exact size, a strong validator, a lazy ``app_iter_range``).
"""

from __future__ import annotations

from typing import Iterable, Iterator, Mapping, Optional, Union

import webob

from zipwsgi.engine.stream import ArchiveStream
from zipwsgi.http.disposition import archive_filename, content_disposition


def archive_response(
    request: webob.Request,
    stream: ArchiveStream,
    *,
    filename: Optional[str] = None,
    content_disposition_header: Optional[str] = None,
    etag: Optional[str] = None,
    last_modified: Union[None, int, float] = None,
    headers: Optional[Mapping[str, str]] = None,
) -> webob.Response:
    """A response that streams ``stream`` with correct HTTP semantics.

    - Content-Length and ``Accept-Ranges: bytes`` when the size is known (stored data);
      compressed archives have no length, so they go out chunked and cannot be ranged.
    - ETag: ``etag`` if the caller has one (the app's own validator wins), else one
      derived from the stream's fingerprint; strong, because If-Range needs a strong one.
    - Last-Modified: ``last_modified`` or the newest entry's mtime.
    - Content-Disposition: the caller's header as given, else ``attachment`` built from
      ``filename`` with an RFC 6266 UTF-8 variant.
    Call the result as a WSGI app (or return it from a framework view) with the client's
    request: HEAD, 304 and 206/416 are decided then, and nothing is opened before the body
    is iterated.
    """
    response = webob.Response(
        app_iter=_OwnedStream(stream),
        content_type=stream.content_type,
        conditional_response=True,
    )
    response.charset = None  # "application/zip; charset=UTF-8" confuses some clients
    size = stream.size
    if size is not None:
        response.content_length = size
        response.accept_ranges = "bytes"
    if etag is None:
        fingerprint = stream.fingerprint()
        if fingerprint is not None:
            etag = fingerprint[:32]
    if etag is not None:
        response.etag = etag.strip('"')
    if last_modified is None:
        last_modified = stream.last_modified
    if last_modified is not None:
        response.last_modified = int(last_modified)
    if content_disposition_header:
        response.headers["Content-Disposition"] = content_disposition_header
    elif filename is not None:
        response.headers["Content-Disposition"] = content_disposition(
            archive_filename(filename, extension=stream.extension)
        )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


class _OwnedStream:
    """Hands the stream to WebOb so that whatever WebOb serves also closes the stream.

    WebOb does not close the original app_iter after serving a range from
    ``app_iter_range``; the range pass returned here closes the stream itself, so file
    objects handed to the stream are released on every path.
    """

    __slots__ = ("stream",)

    def __init__(self, stream: ArchiveStream) -> None:
        self.stream = stream

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.stream)

    def app_iter_range(self, start: int, stop: Optional[int]) -> Iterable[bytes]:
        return _ClosingRange(self.stream, start, stop)

    def close(self) -> None:
        self.stream.close()


class _ClosingRange:
    __slots__ = ("stream", "pass_")

    def __init__(self, stream: ArchiveStream, start: int, stop: Optional[int]) -> None:
        self.stream = stream
        self.pass_ = stream.app_iter_range(start, stop)

    def __iter__(self) -> Iterator[bytes]:
        return self.pass_

    def close(self) -> None:
        self.pass_.close()
        self.stream.close()
