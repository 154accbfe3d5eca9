"""An archive's HTTP answer as plain values, for frameworks that want their own response.

:func:`zipwsgi.http.responses.archive_response` makes every decision (200, 206 with one
or several ranges, 304, 412, 416, HEAD, ETag, Last-Modified, Content-Disposition), but it
is a WSGI application. :func:`answer` runs it on a request's WSGI environ and hands back
what it said: status, headers and the lazy body. :mod:`zipwsgi.django` and
:mod:`zipwsgi.flask` pour those into their framework's response object, so a view gets
exact length and Range without the middleware, by the very code the middleware uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional, Union

import webob  # type: ignore[import-untyped,unused-ignore]

from zipwsgi.engine.stream import ArchiveStream
from zipwsgi.http.responses import archive_response

__all__ = ["Answer", "answer", "archive_of"]


@dataclass(frozen=True)
class Answer:
    """What the decision said. ``body`` is lazy: nothing is opened before it is iterated,
    and its ``close()`` closes the archive, whether it was read to the end or not."""

    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: Iterable[bytes]


def archive_of(archive: Any) -> ArchiveStream:
    """The :class:`ArchiveStream` behind ``archive``: a ZipStream or TarStream itself, or
    the ``stream`` of a python-zipstream compatible ``ZipFile``."""
    if isinstance(archive, ArchiveStream):
        return archive
    stream = getattr(archive, "stream", None)
    if isinstance(stream, ArchiveStream):
        return stream
    raise TypeError(
        f"expected a ZipStream, TarStream or zipwsgi.compat.zipstream.ZipFile, "
        f"not {type(archive).__name__}"
    )


def answer(
    environ: Mapping[str, Any],
    archive: Any,
    filename: Optional[str] = None,
    *,
    etag: Optional[str] = None,
    last_modified: Union[None, int, float] = None,
    headers: Optional[Mapping[str, str]] = None,
) -> Answer:
    """Decide the answer to the request ``environ`` for ``archive``.

    ``filename`` names the download (``Content-Disposition: attachment`` with an RFC 6266
    UTF-8 variant for any Unicode name; the archive's extension is added when missing);
    ``etag`` and ``last_modified`` override the archive's own validators; ``headers`` are
    added as they are.
    """
    stream = archive_of(archive)
    environ = dict(environ)  # webob may write into it; the framework's copy stays as it was
    # The framework wraps the body in its own response, so waitress could never send a
    # file wrapper from there (zipwsgi.http.filelike): keep the plain iterable.
    environ.pop("wsgi.file_wrapper", None)
    try:
        response = archive_response(
            webob.Request(environ),
            stream,
            filename=filename,
            etag=etag,
            last_modified=last_modified,
            headers=headers,
        )
    except BaseException:  # no response will close it (an archive too large, say)
        stream.close()
        raise
    said: dict[str, Any] = {}

    def start_response(status: str, headerlist: list[tuple[str, str]], exc_info: Any = None) -> Any:
        said["status"], said["headers"] = status, headerlist
        return _no_write

    body = response(environ, start_response)
    code, _, reason = said["status"].partition(" ")
    return Answer(int(code), reason, list(said["headers"]), body)


def _no_write(data: bytes) -> None:  # pragma: no cover - the archive answer never writes
    raise RuntimeError("the archive answer does not use write()")
