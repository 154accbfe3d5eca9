"""ZipMiddleware: turn responses that *list* files into streamed zip downloads.

Wrap any WSGI app (Flask, Pyramid, Bottle, Django, plain WSGI)::

    from zipwsgi import ZipMiddleware
    app = ZipMiddleware(app, roots={"/files/": "/srv/files"}, compression="stored")

A response becomes a zip in one of two ways:

1. **nginx mod_zip's protocol**: the header ``X-Archive-Files: zip`` and a manifest body,
   one ``<crc32|-> <size> <location> <archive name>`` line per entry (see
   :mod:`zipwsgi.http.manifest`). Locations under a ``roots`` prefix are read from disk;
   any other location is fetched by a sub-request to the wrapped app
   (:mod:`zipwsgi.http.subrequest`). ``X-Archive-Charset`` and ``X-Archive-Pass-Headers``
   work as in mod_zip; no ``X-Archive-*`` header ever reaches the client.
2. **A marker object**: the app's WSGI iterable *is* a
   :class:`~zipwsgi.engine.stream.ZipStream` (possibly inside the wrapper its framework puts
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
import codecs
import logging
import os
import stat
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Optional, Union

import webob
from webob.datetime_utils import parse_date
from webob.descriptors import parse_etag_response

from zipwsgi.engine.sources import FileSource
from zipwsgi.engine.stream import ArchiveStream, ZipStream
from zipwsgi.errors import ArchiveNameError, ManifestError, OutsideRootError, SubrequestError
from zipwsgi.http.manifest import ManifestEntry, parse_manifest
from zipwsgi.http.responses import archive_response
from zipwsgi.http.roots import Roots
from zipwsgi.http.subrequest import (
    CONDITIONAL_KEYS,
    SUBREQUEST_KEY,
    SubrequestSource,
    first_header,
    subrequest_environ,
)
from zipwsgi.paths import split_url_path

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
_STATUS_500 = "500 Internal Server Error"
_STATUS_502 = "502 Bad Gateway"


class _Refusal(Exception):
    """The archive cannot be built: answer ``status`` with ``public`` before any byte."""

    def __init__(self, status: str, public: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.public = public
        self.detail = detail


class ZipMiddleware:
    """WSGI middleware serving mod_zip manifests and :class:`ZipStream` bodies as zips.

    ``roots`` maps URL-path prefixes used in manifests to directories on disk.
    ``compression`` (``"stored"`` or ``"deflate"``) and ``level`` apply to archives built
    from manifests; a ZipStream returned by the app keeps its own. Stored archives have
    an exact Content-Length and can be resumed; deflated ones go out chunked, unsized.
    ``max_manifest_bytes`` and ``max_entries`` bound the work a manifest can cause.
    ``allow_subrequests=False`` refuses locations under no root instead of asking the
    app; ``check_subrequests`` (default) asks the app for every sub-request entry once
    before the first byte, so a failing one gives a 502 instead of a cut download.
    ``precompute_crc=True`` reads each stored file of unknown CRC (``-`` in the manifest)
    once before its header, so no entry needs a data descriptor and Java's
    ``ZipInputStream`` reads the archive too (at the cost of a second read).
    """

    def __init__(
        self,
        app: WSGIApplication,
        roots: Optional[Mapping[str, Union[str, os.PathLike]]] = None,
        *,
        compression: str = "stored",
        level: Optional[int] = None,
        max_manifest_bytes: int = DEFAULT_MAX_MANIFEST_BYTES,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        allow_subrequests: bool = True,
        check_subrequests: bool = True,
        precompute_crc: bool = False,
    ) -> None:
        ZipStream(compression)  # fail now, not on the first request, on a bad value
        self.app = app
        self.roots = Roots(roots)
        self.compression = compression
        self.level = level
        self.max_manifest_bytes = max_manifest_bytes
        self.max_entries = max_entries
        self.allow_subrequests = allow_subrequests
        self.precompute_crc = precompute_crc
        self.check_subrequests = check_subrequests

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

        answer = _Answer(start_response, head, self.max_manifest_bytes)
        answer.call(self.app, app_environ)
        if clean is not None and answer.is_archive() and not answer.status.startswith("200"):
            log.debug("%s %s: the app answered %r to a conditional request for an archive; "
                      "asking again without Range/If-* headers", method, _path(client),
                      answer.status)
            answer.close()
            answer = _Answer(start_response, head, self.max_manifest_bytes)
            answer.call(self.app, clean)

        if answer.committed or not answer.status.startswith("200"):
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
        return _find_stream(body)

    # -- the two triggers -----------------------------------------------------------------

    def _serve_manifest(
        self, answer: _Answer, client: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        try:
            body = answer.read_body()
            stream, subrequests = self._build_stream(body, answer, client)
        except _Refusal as refusal:
            return self._refuse(refusal, client, start_response)
        return self._respond(stream, answer, client, start_response, subrequests, ())

    def _serve_stream(
        self,
        stream: ArchiveStream,
        answer: _Answer,
        client: dict[str, Any],
        start_response: StartResponse,
    ) -> Iterable[bytes]:
        # A framework that peeked into the body (Bottle does) left a pass running, maybe
        # with a file open: end it now, the response below starts its own.
        stream.close_passes()
        closers = () if answer.body is stream else (answer.close,)
        return self._respond(stream, answer, client, start_response, [], closers)

    def _build_stream(
        self, body: bytes, answer: _Answer, environ: Mapping[str, Any]
    ) -> tuple[ZipStream, list[tuple[ManifestEntry, SubrequestSource]]]:
        """A ZipStream for a manifest body; raises ``_Refusal`` naming the bad entry.

        Every file is stat-ed here, before the first byte; sub-request entries are only
        described (the app is asked when the stream reaches them, or by the check).
        """
        charset = (answer.header("X-Archive-Charset") or "").strip() or None
        if charset is not None and charset.lower() != "native":
            try:
                codecs.lookup(charset)
            except LookupError:
                raise _bad_manifest(f"unknown X-Archive-Charset {charset!r}") from None
        elif charset is not None:
            charset = "native"
        entries = self._parse(body, charset)
        pass_headers = (answer.header("X-Archive-Pass-Headers") or "").split(":")
        stream = ZipStream(
            self.compression, self.level, charset=charset, precompute_crc=self.precompute_crc
        )
        subrequests: list[tuple[ManifestEntry, SubrequestSource]] = []
        folders: dict[str, str] = {}  # resolved folders, shared by this manifest's files
        for entry in entries:
            try:
                if entry.is_directory:
                    stream.mkdir(entry.name)
                    continue
                located = self._locate(entry, folders)
                if located is not None:
                    path, st = located
                    stream.add(FileSource(path, self._stat(entry, path, st)), entry.name,
                               crc=entry.crc)
                    continue
                if not self.allow_subrequests:
                    raise _EntryError("under no root, and sub-requests are disabled")
                sub_environ = subrequest_environ(environ, entry.location, entry.query,
                                                 pass_headers)
                source = SubrequestSource(self.app, sub_environ, entry.size, entry.location)
                stream.add(source, entry.name, size=entry.size, crc=entry.crc)
                subrequests.append((entry, source))
            except _EntryError as exc:
                raise _bad_entry(entry, str(exc), exc.public) from None
            except (ArchiveNameError, OutsideRootError) as exc:
                raise _bad_entry(entry, str(exc), _public(exc)) from None
        return stream, subrequests

    # -- building helpers -----------------------------------------------------------------

    def _parse(self, body: bytes, charset: Optional[str]) -> list[ManifestEntry]:
        encoding = "utf-8"
        if charset not in (None, "native"):
            # Apps written for mod_zip send names in the X-Archive-Charset they declare;
            # a body that is valid UTF-8 is read as UTF-8 (our own convention).
            try:
                body.decode("utf-8")
            except UnicodeDecodeError:
                encoding = charset  # type: ignore[assignment]
        try:
            return parse_manifest(body, max_entries=self.max_entries,
                                  max_bytes=self.max_manifest_bytes, name_encoding=encoding)
        except ManifestError as exc:
            raise _bad_manifest(str(exc)) from None

    def _locate(
        self, entry: ManifestEntry, folders: dict[str, str]
    ) -> Optional[tuple[str, Optional[os.stat_result]]]:
        try:
            split_url_path(entry.location.partition("?")[0])
        except OutsideRootError as exc:
            raise _EntryError(f"location {entry.location!r}: {exc}",
                              "location outside the allowed folders") from None
        try:
            return self.roots.locate(entry.location, folders)
        except OutsideRootError as exc:
            raise _EntryError(str(exc), "location outside the allowed folders") from None
        except OSError as exc:  # the root folder itself is missing
            raise _EntryError(f"root folder unavailable: {exc}", "file not found") from None

    def _stat(
        self, entry: ManifestEntry, path: str, st: Optional[os.stat_result]
    ) -> os.stat_result:
        """The file's stat (``st`` if confinement already has it), checked against the
        manifest: a regular file, readable, of the announced size."""
        if st is None:
            try:
                st = os.stat(path)
            except FileNotFoundError:
                raise _EntryError(f"no such file: {path}", "file not found") from None
            except OSError as exc:
                raise _EntryError(
                    f"cannot stat {path}: {exc.strerror}", "file not readable"
                ) from None
        if not stat.S_ISREG(st.st_mode):
            raise _EntryError(f"not a regular file: {path}", "not a regular file")
        if not _surely_readable(st) and not os.access(path, os.R_OK):
            raise _EntryError(f"not readable: {path}", "file not readable")
        if st.st_size != entry.size:
            raise _EntryError(
                f"the manifest says {entry.size} bytes, {path} has {st.st_size}",
                "size in the manifest differs from the file",
            )
        return st

    # -- answering ------------------------------------------------------------------------

    def _respond(
        self,
        stream: ArchiveStream,
        answer: _Answer,
        client: dict[str, Any],
        start_response: StartResponse,
        subrequests: list[tuple[ManifestEntry, SubrequestSource]],
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
            filename=_default_filename(request),
            content_disposition_header=answer.header("Content-Disposition"),
            etag=etag,
            last_modified=calendar.timegm(last_modified.utctimetuple()) if last_modified else None,
        )
        for name, value in answer.headers:
            lowered = name.lower()
            if lowered not in _REPLACED_HEADERS and not lowered.startswith("x-archive-"):
                response.headerlist.append((name, value))

        inner = _Capture()
        body = inner.call(response, client)
        sends_body = inner.status[:3] in ("200", "206") and request.method != "HEAD"
        if sends_body and subrequests and self.check_subrequests:
            for entry, source in subrequests:
                try:
                    source.check()
                except SubrequestError as exc:
                    _close_all((body, stream, *closers))
                    refusal = _bad_entry(entry, str(exc), _public(exc), _STATUS_502)
                    return self._refuse(refusal, client, start_response)
        start_response(inner.status, inner.headers)
        return _ArchiveBody(body, (stream, *closers), f"{request.method} {_path(client)}")

    def _refuse(
        self, refusal: _Refusal, environ: Mapping[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        log.error("%s %s: no archive sent: %s", environ.get("REQUEST_METHOD"), _path(environ),
                  refusal.detail)
        text = (f"{refusal.status}\n\nThe archive could not be built: {refusal.public}.\n"
                "The server log names the entry and the reason.\n")
        body = text.encode("utf-8")
        start_response(refusal.status, [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
        ])
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]


def _surely_readable(st: os.stat_result) -> bool:
    """True when the mode bits alone promise we can read the file (world-readable, or
    ours and owner-readable): the common case then skips an ``access`` call per file.
    Anything else is asked of ``os.access``, which knows groups, ACLs and privileges."""
    if st.st_mode & stat.S_IROTH:
        return True
    return st.st_uid == _EUID and bool(st.st_mode & stat.S_IRUSR)


_EUID = os.geteuid() if hasattr(os, "geteuid") else -1


def _bad_manifest(reason: str) -> _Refusal:
    return _Refusal(_STATUS_500, f"bad manifest ({reason})", f"bad manifest: {reason}")


def _bad_entry(entry: ManifestEntry, detail: str, public: str,
               status: str = _STATUS_500) -> _Refusal:
    """A refusal naming the manifest line: the client gets ``public``, the log ``detail``."""
    where = f"manifest line {entry.line}"
    return _Refusal(status, f"{where}: {public}",
                    f"{where} (location {entry.location!r}, name {entry.name!r}): {detail}")


class _EntryError(Exception):
    """Why one entry is refused: ``str()`` for the log, ``public`` for the client."""

    def __init__(self, detail: str, public: str = "") -> None:
        super().__init__(detail)
        self.public = public or detail


def _public(exc: Exception) -> str:
    if isinstance(exc, OutsideRootError):
        return "location outside the allowed folders"
    if isinstance(exc, ArchiveNameError):
        return f"archive name refused ({exc})"
    if isinstance(exc, SubrequestError):
        return f"sub-request failed ({exc.status or 'no answer'})"
    return type(exc).__name__


# -- calling the app ----------------------------------------------------------------------


class _Answer:
    """One call of the app: its status, headers and body, held back until we decide.

    If the app uses PEP 3333's ``write()`` for a response without the manifest header,
    the answer is committed on the spot (status and headers forwarded, the write passed
    on): such a body cannot be a marker object, and buffering it would break streaming.
    """

    def __init__(self, start_response: StartResponse, head: bool, limit: int) -> None:
        self._start_response = start_response
        self._real_write: Any = None
        self.head = head
        self.limit = limit
        self.status = ""
        self.headers: list[tuple[str, str]] = []
        self.exc_info: Any = None
        self.written: list[bytes] = []
        self.written_size = 0
        self.body: Iterable[bytes] = ()
        self.committed = False

    def call(self, app: WSGIApplication, environ: WSGIEnvironment) -> None:
        self.body = app(environ, self.start_response)
        if not self.status:
            # PEP 3333 lets an app call start_response when its body is first iterated.
            iterator = iter(self.body)
            try:
                first = next(iterator, None)
            except BaseException:
                _close_all((self.body,))
                raise
            self.body = _Prepended([] if first is None else [first], iterator, self.body)
            if not self.status:
                _close_all((self.body,))
                raise RuntimeError("the WSGI app returned without calling start_response")

    def start_response(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None):
        if self.committed:
            self._real_write = self._start_response(status, _strip(headers), exc_info)
            return self.write
        self.status, self.headers, self.exc_info = status, list(headers), exc_info
        return self.write

    def write(self, data: bytes) -> None:
        if not self.committed and self.header("X-Archive-Files") is None:
            self._commit()
        if self.committed:
            if not self.head:
                self._real_write(data)
            return
        self.written_size += len(data)
        if self.written_size <= self.limit:
            self.written.append(data)

    def _commit(self) -> None:
        self.committed = True
        self._real_write = self._start_response(self.status, _strip(self.headers), self.exc_info)
        for data in self.written:
            if not self.head:
                self._real_write(data)
        self.written = []

    def header(self, name: str) -> Optional[str]:
        return first_header(self.headers, name)

    def is_archive(self) -> bool:
        """Whether this answer asks for an archive by header (the marker needs a 200)."""
        files = self.header("X-Archive-Files")
        return files is not None and files.strip().lower().startswith("zip")

    def pass_through(self) -> Iterable[bytes]:
        """Forward the answer as the app gave it (minus ``X-Archive-*`` headers)."""
        if not self.committed:
            self.committed = True
            write = self._start_response(self.status, _strip(self.headers), self.exc_info)
            if self.written and not self.head:
                for data in self.written:
                    write(data)
        if self.head:
            _close_all((self.body,))
            return []
        return self.body

    def read_body(self) -> bytes:
        """The whole body (the manifest), bounded by the limit; the body is closed."""
        chunks, size = list(self.written), self.written_size
        try:
            for chunk in self.body:
                size += len(chunk)
                if size > self.limit:
                    break
                chunks.append(chunk)
        finally:
            self.close()
        if size > self.limit:
            raise _Refusal(
                _STATUS_500,
                "manifest larger than the configured limit",
                f"manifest exceeds max_manifest_bytes={self.limit}",
            )
        return b"".join(chunks)

    def close(self) -> None:
        body, self.body = self.body, ()
        _close_all((body,))


class _Capture:
    """start_response for calling a WSGI app (our own WebOb response) in-process."""

    def __init__(self) -> None:
        self.status = ""
        self.headers: list[tuple[str, str]] = []

    def __call__(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None):
        self.status, self.headers = status, headers
        return self._no_write

    def _no_write(self, data: bytes) -> None:  # pragma: no cover - WebOb never writes
        raise RuntimeError("write() is not supported here")

    def call(self, app: Any, environ: Mapping[str, Any]) -> Iterable[bytes]:
        return app(environ, self)


class _Prepended:
    """Chunks already taken from an iterator, then the rest; ``close`` closes the origin."""

    __slots__ = ("_first", "_iterator", "_origin")

    def __init__(self, first: list[bytes], iterator: Iterator[bytes], origin: Any) -> None:
        self._first = first
        self._iterator = iterator
        self._origin = origin

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self._first:
            return self._first.pop(0)
        return next(self._iterator)

    def close(self) -> None:
        _close_all((self._origin,))


class _ArchiveBody:
    """The archive body we hand to the server: logs a failure mid-stream, then re-raises
    so the server cuts the connection; ``close`` releases the stream and the app's body."""

    __slots__ = ("_body", "_iterator", "_closers", "_what", "_sent")

    def __init__(self, body: Iterable[bytes], closers: tuple[Any, ...], what: str) -> None:
        self._body = body
        self._iterator: Optional[Iterator[bytes]] = None
        self._closers = closers
        self._what = what
        self._sent = 0

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self._iterator is None:
            self._iterator = iter(self._body)
        try:
            chunk = next(self._iterator)
        except StopIteration:
            raise
        except Exception as exc:
            log.error("%s: archive aborted after %d bytes: %s", self._what, self._sent, exc)
            raise
        self._sent += len(chunk)
        return chunk

    def close(self) -> None:
        body, closers = self._body, self._closers
        self._body, self._closers = (), ()
        _close_all((body, *closers))


def _close_all(objects: Iterable[Any]) -> None:
    """Call ``close()`` on each object that has one; all run even if one raises."""
    error: Optional[BaseException] = None
    for obj in objects:
        close = obj if callable(obj) and not hasattr(obj, "close") else getattr(obj, "close", None)
        if close is None:
            continue
        try:
            close()
        except BaseException as exc:  # noqa: B036 - re-raised below, after the others ran
            error = error or exc
    if error is not None:
        raise error


def _strip(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Headers without ``X-Archive-*``; the same list when there is nothing to remove."""
    if not any(name.lower().startswith("x-archive-") for name, _ in headers):
        return headers
    return [(name, value) for name, value in headers
            if not name.lower().startswith("x-archive-")]


def _clean_environ(environ: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the environ as a plain GET without Range/If-* headers, taken before the
    app runs (frameworks cache parsed headers in the environ)."""
    clean = {key: value for key, value in environ.items() if key not in CONDITIONAL_KEYS}
    clean["REQUEST_METHOD"] = "GET"
    return clean


def _find_stream(body: Any, depth: int = 0) -> Optional[ArchiveStream]:
    if isinstance(body, ArchiveStream):
        return body
    if depth > 3 or body is None or isinstance(body, (bytes, str, list, tuple)):
        return None
    owners: list[Any] = []
    # werkzeug ClosingIterator._callbacks, bottle _closeiter.close_callbacks, Django's
    # HttpResponse._resource_closers: bound close() methods of what the body wraps.
    for attribute in ("_callbacks", "close_callbacks", "_resource_closers"):
        for callback in getattr(body, attribute, None) or ():
            owners.append(getattr(callback, "__self__", None))
    # werkzeug Response.response (reached through its close()), WebOb Response.app_iter.
    if depth:
        owners.append(getattr(body, "response", None))
        owners.append(getattr(body, "_app_iter", None))
    for owner in owners:
        found = _find_stream(owner, depth + 1)
        if found is not None:
            return found
    return None


def _path(environ: Mapping[str, Any]) -> str:
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    try:
        return path.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return path


def _default_filename(request: webob.Request) -> str:
    """The last segment of the request path (``/download/photos`` → ``photos``)."""
    try:
        segment = request.path_info.rstrip("/").rsplit("/", 1)[-1]
    except UnicodeDecodeError:
        segment = ""
    return segment or "archive"
