"""ZipMiddleware: turn responses that *list* files into streamed zip (or tar) downloads.

Wrap any WSGI app (Flask, Pyramid, Bottle, Django, plain WSGI)::

    from zipwsgi import ZipMiddleware
    app = ZipMiddleware(app, roots={"/files/": "/srv/files"}, compression="stored")

A response becomes an archive in one of two ways:

1. **nginx mod_zip's protocol**: the header ``X-Archive-Files: zip`` (``tar``,
   ``tar.gz`` or ``tgz`` for a tar, where the CRC column is ignored) and a manifest body,
   one ``<crc32|-> <size> <location> <archive name>`` line per entry (see
   :mod:`zipwsgi.http.manifest`). Locations under a ``roots`` prefix are read from disk;
   any other location is fetched by a sub-request to the wrapped app
   (:mod:`zipwsgi.http.subrequest`). ``X-Archive-Charset`` and ``X-Archive-Pass-Headers``
   work as in mod_zip; no ``X-Archive-*`` header ever reaches the client.
2. **A marker object**: the app's WSGI iterable *is* a
   :class:`~zipwsgi.engine.zipstream.ZipStream` or a
   :class:`~zipwsgi.engine.tarstream.TarStream` (possibly inside the wrapper its framework puts
   around a body: werkzeug's ``ClosingIterator``, Bottle's ``_closeiter``, Django's
   ``StreamingHttpResponse``).

Either way the archive is answered by :func:`~zipwsgi.http.responses.archive_response` for
the *client's* request, so Content-Length, Range/If-Range, ETag/Last-Modified, 304, 416
and HEAD are the same as everywhere else in zipwsgi. Everything else passes through.

How the app is asked. Nothing tells the middleware in advance which response will be an
archive, and the app must run once per request, so:

- **HEAD** is always passed to the app as ``GET``: frameworks drop the body of a HEAD
  response, which would lose the manifest or the marker. For a response that is not an
  archive the middleware forwards the status and headers and closes the body unread.
  The cost: the app does its GET work (not the body iteration) for a plain HEAD.
- **Range and If-\\* headers** reach the app unchanged, so the app's own 206/304 answers
  for ordinary responses pass through byte for byte. If an *archive* response comes back
  with a status other than 200 (the app or its framework ranged or 304-ed the manifest
  itself, mod_zip issue #84), it is closed and the app is asked once more with a clean
  ``GET`` without those headers. A 200 is a complete body by definition and is used
  as is. So the app runs twice only for archive requests it answered conditionally.

Failures before the first byte (malformed manifest, a location outside its root, a
missing or unreadable file, a size that disagrees with the disk, a sub-request that does
not answer 200, a limit exceeded) give a short ``text/plain`` 500 (502 for a failing
sub-request) and a log line on the ``zipwsgi`` logger naming the entry and why; the
client never receives a broken archive. After the first byte an error is logged and
re-raised, so the server cuts the connection and the client sees a short download.

Security note: a manifest location is confined to its root after percent-decoding and
resolving symlinks (:mod:`zipwsgi.http.roots`); a ``..`` segment is refused in every location,
also those sent as sub-requests. Sub-requests run the app with the client's ``Host``
and only the request headers the app names in ``X-Archive-Pass-Headers``.
"""

from __future__ import annotations

import calendar
import logging
import os
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Optional, Union

import webob
from webob.datetime_utils import parse_date
from webob.descriptors import parse_etag_response

from zipwsgi.allocator import tune_allocator
from zipwsgi.engine.choice import new_archive
from zipwsgi.engine.compression import Level, check_level
from zipwsgi.engine.options import check_compression, check_validator
from zipwsgi.engine.stream import ArchiveStream
from zipwsgi.errors import Refusal, SubrequestError
from zipwsgi.http.bodies import find_archive
from zipwsgi.http.disposition import default_filename
from zipwsgi.http.filelike import attach_closers
from zipwsgi.http.manifest_archive import (
    ManifestArchive,
    Subrequests,
    public_reason,
    refuse_entry,
)
from zipwsgi.http.responses import archive_response
from zipwsgi.http.roots import Roots
from zipwsgi.http.subrequest import CONDITIONAL_KEYS, SUBREQUEST_KEY
from zipwsgi.http.upstream import UpstreamAnswer
from zipwsgi.http.wsgi import (
    Captured,
    LoggedBody,
    close_all,
    request_path,
    strip_archive_headers,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["ZipMiddleware", "DEFAULT_MAX_MANIFEST_BYTES", "DEFAULT_MAX_ENTRIES"]

log = logging.getLogger("zipwsgi")

DEFAULT_MAX_MANIFEST_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_ENTRIES = 100_000

# App headers that describe the manifest body rather than the archive: the archive
# response sets its own (or takes the validators and disposition over explicitly).
_REPLACED_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "content-range",
        "content-encoding",
        "content-md5",
        "accept-ranges",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "etag",
        "last-modified",
        "content-disposition",
    }
)
_REASONS = {500: "Internal Server Error", 502: "Bad Gateway"}


class ZipMiddleware:
    """WSGI middleware serving mod_zip manifests and archive stream bodies as downloads.

    ``roots`` maps URL-path prefixes used in manifests to directories on disk.
    ``compression`` (``"stored"`` or ``"deflate"``) and ``level`` apply to zips built
    from manifests, and ``level`` to tar.gz ones (its gzip level); a stream returned by
    the app keeps its own. Stored zips and plain tars have an exact Content-Length and
    can be resumed; deflated zips and tar.gz go out chunked, unsized.
    ``max_manifest_bytes`` and ``max_entries`` bound the work a manifest can cause.
    ``allow_subrequests=False`` refuses locations under no root instead of asking the
    app; ``check_subrequests`` (default) asks the app for every sub-request entry once
    before the first byte, so a failing one gives a 502 instead of a cut download.
    ``precompute_crc=True`` reads each stored file of unknown CRC (``-`` in the manifest)
    once before its header, so no entry needs a data descriptor and Java's
    ``ZipInputStream`` reads the archive too (at the cost of a second read).
    ``validator`` is what the archive's ETag is built from: ``"local"`` (default) sees a
    file rewritten in place on this host, ``"portable"`` gives the same ETag on replicas
    serving copies (see :meth:`~zipwsgi.engine.stream.ArchiveStream.fingerprint` for the
    risk). An ETag the app sets itself wins over both.
    ``verify_sizes`` says when a manifest's files are checked: ``"eager"`` (default)
    stats each before the first byte, so a missing file or a wrong size is a clean 500;
    ``"lazy"`` trusts the manifest's sizes, as nginx mod_zip does, so no file is
    stat-ed before the first byte: each location is still checked by its text before
    it, and the file is confined, stat-ed and compared when the stream reaches it,
    cutting the connection if it is missing, outside its root or of another size
    (:mod:`zipwsgi.engine.deferred`). The archive has no ETag or Last-Modified of its own (the
    app's, if it sends them), so If-Range cannot resume it: a resume starts over.
    """

    def __init__(
        self,
        app: WSGIApplication,
        roots: Optional[Mapping[str, Union[str, os.PathLike[str]]]] = None,
        *,
        compression: str = "stored",
        level: Level = None,
        max_manifest_bytes: int = DEFAULT_MAX_MANIFEST_BYTES,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        allow_subrequests: bool = True,
        check_subrequests: bool = True,
        precompute_crc: bool = False,
        validator: str = "local",
        verify_sizes: str = "eager",
    ) -> None:
        # Flat memory over many downloads in a long-lived server (zipwsgi/allocator.py).
        tune_allocator()
        self.app = app
        self.roots = Roots(roots)
        self.validator = check_validator(validator)
        # Checked now, not on the first request: a typo fails at start-up.
        self.compression = check_compression(compression)
        self.level = check_level(level)
        self.max_manifest_bytes = max_manifest_bytes
        self.max_entries = max_entries
        self.allow_subrequests = allow_subrequests
        self.precompute_crc = precompute_crc
        self.check_subrequests = check_subrequests
        self.manifests = ManifestArchive(
            app,
            self.roots,
            self.new_stream,
            max_entries=max_entries,
            max_bytes=max_manifest_bytes,
            allow_subrequests=allow_subrequests,
            verify_sizes=verify_sizes,
        )

    def new_stream(self, fmt: str, charset: Optional[str]) -> ArchiveStream:
        """The empty archive a manifest fills; a subclass may choose other options.

        ``fmt`` is what ``X-Archive-Files`` asked for (``"zip"``, ``"tar"``,
        ``"tar.gz"``), ``charset`` what ``X-Archive-Charset`` said. A tar stores every
        name as UTF-8 (pax), so the charset only tells how the manifest is encoded; zip's
        ``compression`` and ``precompute_crc`` do not apply to tar, and ``level`` is the
        gzip level of a tar.gz.
        """
        stream = new_archive(fmt, compression=self.compression, level=self.level,
                             charset=charset, precompute_crc=self.precompute_crc)
        stream.validator = self.validator
        return stream

    # -- deciding -----------------------------------------------------------------------

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get(SUBREQUEST_KEY):
            return self.app(environ, start_response)
        client = dict(environ)  # the client's request, as it came, whatever the app does
        method = environ.get("REQUEST_METHOD", "GET")
        head = method == "HEAD"
        retry = method in ("GET", "HEAD") and any(key in environ for key in CONDITIONAL_KEYS)
        clean = _clean_environ(environ) if retry else None
        app_environ = {**environ, "REQUEST_METHOD": "GET"} if head else environ

        answer = UpstreamAnswer(start_response, head, self.max_manifest_bytes)
        answer.call(self.app, app_environ)
        if clean is not None and answer.is_archive() and not answer.status.startswith("200"):
            log.debug("%s %s: the app answered %r to a conditional request for an archive; "
                      "asking again without Range/If-* headers", method, request_path(client),
                      answer.status)
            answer.close()
            answer = UpstreamAnswer(start_response, head, self.max_manifest_bytes)
            answer.call(self.app, clean)

        if answer.committed:
            return answer.pass_through()
        if answer.is_archive() and not answer.status.startswith("200"):
            return self._withhold(answer, client, start_response)
        if not answer.status.startswith("200"):
            return answer.pass_through()
        if answer.is_archive():
            return self._serve_manifest(answer, client, start_response)
        stream = self.find_stream(answer.body)
        if stream is not None:
            return self._serve_stream(stream, answer, client, start_response)
        return answer.pass_through()

    def find_stream(self, body: Any) -> Optional[ArchiveStream]:
        """The archive stream ``body`` is, or wraps; None for any other body.

        Knows the wrappers frameworks put around a body they did not produce themselves;
        a subclass may extend it for others.
        """
        return find_archive(body)

    # -- the two triggers -----------------------------------------------------------------

    def _withhold(
        self, answer: UpstreamAnswer, client: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        """A manifest answer that is not a 200: its status and headers go to the client,
        its body (the manifest, the backend's private message) never does."""
        answer.close()
        log.warning("%s %s: the app answered %r with an archive manifest; status passed on, "
                    "manifest withheld", client.get("REQUEST_METHOD"), request_path(client),
                    answer.status)
        body = b"The archive is not available.\n"
        headers = [(name, value) for name, value in strip_archive_headers(answer.headers)
                   if name.lower() not in _REPLACED_HEADERS]
        headers += [("Content-Type", "text/plain; charset=utf-8"),
                    ("Content-Length", str(len(body)))]
        start_response(answer.status, headers)
        return [] if client.get("REQUEST_METHOD") == "HEAD" else [body]

    def _serve_manifest(
        self, answer: UpstreamAnswer, client: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        fmt = answer.archive_format()
        if fmt is None:
            answer.close()
            refusal = Refusal(
                f"X-Archive-Files: {answer.header('X-Archive-Files')!r} names no format "
                "this middleware writes (zip, tar, tar.gz)",
                "unsupported archive format",
            )
            return self._refuse(refusal, client, start_response)
        try:
            body = answer.read_body()
            stream, subrequests = self.manifests.build(
                body,
                answer.header("X-Archive-Charset"),
                answer.header("X-Archive-Pass-Headers"),
                client,
                fmt=fmt,
            )
        except Refusal as refusal:
            return self._refuse(refusal, client, start_response)
        except Exception as exc:  # noqa: BLE001 -- a bug of ours still gets a clean 500
            return self._refuse(_unexpected(exc), client, start_response)
        try:
            return self._respond(stream, answer, client, start_response, subrequests, ())
        except Exception as exc:  # noqa: BLE001 -- _respond starts the response last
            close_all((stream,))
            return self._refuse(_unexpected(exc), client, start_response)

    def _serve_stream(
        self,
        stream: ArchiveStream,
        answer: UpstreamAnswer,
        client: dict[str, Any],
        start_response: StartResponse,
    ) -> Iterable[bytes]:
        # A framework that peeked into the body (Bottle does) left a pass running, maybe
        # with a file open: end it now, the response below starts its own.
        stream.close_passes()
        closers = () if answer.body is stream else (answer.close,)
        return self._respond(stream, answer, client, start_response, [], closers)

    # -- answering ------------------------------------------------------------------------

    def _respond(
        self,
        stream: ArchiveStream,
        answer: UpstreamAnswer,
        client: dict[str, Any],
        start_response: StartResponse,
        subrequests: Subrequests,
        closers: tuple[Any, ...],
    ) -> Iterable[bytes]:
        request = webob.Request(client)
        etag = answer.header("ETag")
        if etag is not None:
            etag = parse_etag_response(etag, strong=True)  # a weak one cannot serve If-Range
        last_modified = parse_date(answer.header("Last-Modified"))
        response = archive_response(
            request,
            stream,
            filename=_request_filename(request),
            content_disposition_header=answer.header("Content-Disposition"),
            etag=etag,
            last_modified=calendar.timegm(last_modified.utctimetuple()) if last_modified else None,
        )
        for name, value in answer.headers:
            lowered = name.lower()
            if lowered not in _REPLACED_HEADERS and not lowered.startswith("x-archive-"):
                response.headerlist.append((name, value))

        inner = Captured()
        inner.call(response, client)
        body = inner.body
        sends_body = inner.status[:3] in ("200", "206") and request.method != "HEAD"
        if sends_body and subrequests and self.check_subrequests:
            for entry, source in subrequests:
                try:
                    source.check()
                except SubrequestError as exc:
                    close_all((body, stream, *closers))
                    refusal = refuse_entry(entry, str(exc), public_reason(exc), 502)
                    return self._refuse(refusal, client, start_response)
        start_response(inner.status, inner.headers)
        what = f"{request.method} {request_path(client)}"
        if attach_closers(body, (stream, *closers), what):
            return body  # the server's own file wrapper: anything around it would hide it
        return LoggedBody(body, (stream, *closers), what)

    def _refuse(
        self, refusal: Refusal, environ: Mapping[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        log.error("%s %s: no archive sent: %s", environ.get("REQUEST_METHOD"),
                  request_path(environ), refusal.detail)
        status = f"{refusal.status} {_REASONS.get(refusal.status, 'Error')}"
        text = (f"{status}\n\nThe archive could not be built: {refusal.public}.\n"
                "The server log names the entry and the reason.\n")
        body = text.encode("utf-8")
        start_response(status, [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
        ])
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]


def _unexpected(exc: Exception) -> Refusal:
    """A refusal for an error no rule foresaw: the traceback goes to the log (it is a bug
    to report), the client gets the generic 500 before any byte, never a traceback."""
    log.error("unexpected error while building an archive", exc_info=exc)
    return Refusal(f"unexpected {type(exc).__name__}: {exc}")


def _clean_environ(environ: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the environ as a plain GET without Range/If-* headers, taken before the
    app runs (frameworks cache parsed headers in the environ)."""
    clean = {key: value for key, value in environ.items() if key not in CONDITIONAL_KEYS}
    clean["REQUEST_METHOD"] = "GET"
    return clean


def _request_filename(request: webob.Request) -> str:
    """:func:`default_filename` of the request's path (``"archive"`` if it is not UTF-8)."""
    try:
        return default_filename(request.path_info)
    except UnicodeDecodeError:
        return default_filename("")
