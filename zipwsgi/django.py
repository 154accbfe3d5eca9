"""Django views that answer with an archive, exactly sized and resumable, without middleware.

    from zipwsgi import ZipStream
    from zipwsgi.django import archive_response

    def download(request):
        zs = ZipStream()
        zs.add_path("/srv/photos", "photos")
        return archive_response(request, zs, "photos.zip")

The answer is decided by the same code as :class:`zipwsgi.ZipMiddleware`'s
(:func:`zipwsgi.http.responses.archive_response`): Content-Length for stored archives,
``Accept-Ranges``, 206 for one or several ranges, 416, 304 and 412 from ETag and
Last-Modified, HEAD without opening a file, and ``Content-Disposition`` with an RFC 6266
UTF-8 name. A plain ``StreamingHttpResponse(zs)`` has none of that: no length (so no
progress bar), no Range, no resume.

WSGI only for now. Under Django's ASGI handler a ``StreamingHttpResponse`` of a
synchronous iterator is read whole into memory before the first byte leaves, so
:func:`archive_response` refuses ASGI requests (``NotImplementedError``) until zipwsgi
has an asynchronous stream. Keep ``GZipMiddleware`` away from these views: it would
compress the zip again and drop the length.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Optional, Union

try:
    from django.http import StreamingHttpResponse  # type: ignore[import-untyped]
except ImportError as exc:  # pragma: no cover - exercised without Django installed
    raise ImportError(
        "zipwsgi.django needs Django: pip install django (or pip install 'zipwsgi[examples]')"
    ) from exc

from zipwsgi.http.answer import answer

if TYPE_CHECKING:
    from zipwsgi.compat.zipstream import ZipFile
    from zipwsgi.engine.stream import ArchiveStream

__all__ = ["archive_response"]


def archive_response(
    request: Any,
    archive: Union[ArchiveStream, ZipFile],
    filename: Optional[str] = None,
    *,
    etag: Optional[str] = None,
    last_modified: Union[None, int, float] = None,
    headers: Optional[Mapping[str, str]] = None,
) -> Any:
    """A ``StreamingHttpResponse`` answering ``request`` (a Django ``HttpRequest``) with
    ``archive`` (a ZipStream, TarStream, or python-zipstream compatible ``ZipFile``).

    ``filename`` names the download (the archive's extension is added if missing);
    ``etag``/``last_modified`` replace the archive's own validators; ``headers`` are
    added. Nothing is opened before Django iterates the body, and the archive is closed
    when Django closes the response (after the download, a disconnect, HEAD, 304, 412
    or 416).
    """
    try:
        _refuse_asgi(request)
    except NotImplementedError:
        archive.close()  # what was handed over to it (open files) is not left open
        raise
    decided = answer(
        request.META,
        archive,
        filename,
        etag=etag,
        last_modified=last_modified,
        headers=headers,
    )
    # Django registers the body's close() with the response's own: the WSGI server
    # closes the response, and with it the archive.
    response = StreamingHttpResponse(
        decided.body, status=decided.status, reason=decided.reason or None
    )
    if not any(name.lower() == "content-type" for name, _ in decided.headers):
        del response["Content-Type"]  # Django's text/html default: a 304 carries none
    for name, value in decided.headers:
        response[name] = value
    return response


def _refuse_asgi(request: Any) -> None:
    from django.core.handlers.asgi import ASGIRequest  # type: ignore[import-untyped]

    if isinstance(request, ASGIRequest):
        raise NotImplementedError(
            "zipwsgi.django.archive_response runs under Django's WSGI handler only: under "
            "ASGI, Django reads a synchronous StreamingHttpResponse whole into memory "
            "before sending it. Serve archive downloads through WSGI (or ZipMiddleware) "
            "until zipwsgi has an asynchronous stream."
        )
