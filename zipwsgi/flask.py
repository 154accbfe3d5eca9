"""Flask views that answer with an archive, exactly sized and resumable, without middleware.

    from zipwsgi import ZipStream
    from zipwsgi.flask import send_archive

    @app.route("/photos.zip")
    def photos():
        return send_archive(ZipStream.from_path("/srv/photos"), "photos.zip")

Like ``flask.send_file`` for a file, :func:`send_archive` answers the current request
(``flask.request``) by the same code as :class:`zipwsgi.ZipMiddleware`
(:func:`zipwsgi.http.responses.archive_response`): Content-Length for stored archives,
``Accept-Ranges``, 206 for one or several ranges, 416, 304 and 412 from ETag and
Last-Modified, HEAD without opening a file, and ``Content-Disposition`` with an RFC 6266
UTF-8 name. ``Response(zs)`` alone has no length, no Range and no resume.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Optional, Union

try:
    import flask
except ImportError as exc:  # pragma: no cover - exercised without Flask installed
    raise ImportError(
        "zipwsgi.flask needs Flask: pip install flask (or pip install 'zipwsgi[examples]')"
    ) from exc

from zipwsgi.http.answer import answer

if TYPE_CHECKING:
    from zipwsgi.compat.zipstream import ZipFile
    from zipwsgi.engine.stream import ArchiveStream

__all__ = ["send_archive"]


def send_archive(
    archive: Union[ArchiveStream, ZipFile],
    filename: Optional[str] = None,
    *,
    etag: Optional[str] = None,
    last_modified: Union[None, int, float] = None,
    headers: Optional[Mapping[str, str]] = None,
) -> flask.Response:
    """A Flask ``Response`` answering the current request with ``archive`` (a ZipStream,
    TarStream, or python-zipstream compatible ``ZipFile``); call it inside a view.

    ``filename`` names the download (the archive's extension is added if missing);
    ``etag``/``last_modified`` replace the archive's own validators; ``headers`` are
    added. The body goes out as it is (``direct_passthrough``): nothing is opened before
    the server iterates it, and the server's ``close()`` closes the archive.
    """
    decided = answer(
        flask.request.environ,
        archive,
        filename,
        etag=etag,
        last_modified=last_modified,
        headers=headers,
    )
    return flask.Response(
        decided.body,
        status=f"{decided.status} {decided.reason}".rstrip(),
        headers=decided.headers,
        direct_passthrough=True,
    )
