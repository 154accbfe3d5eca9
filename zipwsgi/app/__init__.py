"""The standalone app: browse a folder over HTTP, download folders or a selection as archives.

Mount it anywhere; every link and redirect it makes starts with ``SCRIPT_NAME``::

    from zipwsgi import ZipApp
    application = ZipApp("/srv/share")

Routes (paths relative to where the app is mounted):

==============================================  =========================================
``GET /<folder>/``                              the folder's page (browsers), or its
                                                archive when the client prefers
                                                ``application/zip``, ``application/x-tar``
                                                or ``application/gzip`` (a tar.gz)
``GET /<folder>/?download``                     the folder as ``<folder>.zip``; for the
                                                root, ``/?download`` gives ``<root>.zip``;
                                                ``&format=tar`` or ``tar.gz`` for the others
``GET /<folder>.zip``, ``.tar``, ``.tar.gz``    the same, unless a real file has that name
                                                (then the file wins)
``GET /<folder>/?path=a&path=b/c``, or POST     just the selected entries (relative to the
(form fields ``path``, optional ``format``)     folder) as one zip, tar or tar.gz
``GET /<folder>``                               redirect to ``/<folder>/``
``GET /<file>``                                 the file itself (Range, ETag, 304)
==============================================  =========================================

A folder's archive holds the folder itself (``docs.zip`` holds ``docs/...``, like
``zip -r``); a selection's archive holds the selected entries at its top, under their
paths relative to the folder, and is named after the one entry selected, or else after
the folder. ``format`` is ``zip`` (the default), ``tar`` or ``tar.gz``; every format
holds the same entries. A plain tar has an exact length (resumable, like a stored zip);
a tar.gz goes out unsized.

Every archive goes out through :func:`~zipwsgi.http.responses.archive_response`, so HEAD, Range,
ETag and 304 behave as in the middleware. Errors are small HTML pages (400, 403, 404, 405,
411, 413, 415) that never echo paths; an unexpected failure is logged and answered with a plain 500.

Security note: nothing outside the root is ever read or listed, whatever the path
(:mod:`zipwsgi.paths` has the rules); names starting with a dot are invisible unless
``show_hidden``. Served files carry ``Content-Security-Policy: sandbox``, so an HTML file
in the tree cannot run script as this origin.
"""

from __future__ import annotations

import html
import logging
import os
import stat
from collections.abc import Iterable
from typing import TYPE_CHECKING, Optional, Union
from urllib.parse import quote

import webob

from zipwsgi.app.files import file_response
from zipwsgi.app.listing import LISTING_CSP, ListingEntry, render_listing
from zipwsgi.app.requests import (
    Parts,
    Problem,
    accepted_format,
    archive_suffix,
    chosen_format,
    form_fields,
    path_info,
    printable,
    printable_names,
    script_name,
    url,
)
from zipwsgi.engine.choice import FORMATS, ZIP, new_archive
from zipwsgi.engine.options import check_validator
from zipwsgi.engine.stream import ArchiveStream
from zipwsgi.errors import ArchiveNameError, OutsideRootError, PathTooLongError
from zipwsgi.http.responses import archive_response
from zipwsgi.paths import Root

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["ZipApp"]

log = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]

_ERROR_CSP = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
_PAGE_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}


class ZipApp:
    """A WSGI app serving the folder ``root``: pages to browse it, archives to download it.

    ``compression`` is how zips store entries: ``"stored"`` (exact Content-Length,
    resumable downloads) or ``"deflate"`` (smaller, streamed without a length); tars are
    always plain or gzip, as the request's format says. ``show_hidden`` also lists and
    zips names starting with a dot. ``max_selection`` and ``max_form_bytes`` bound what
    one selection request may ask for. ``validator`` is what ETags are built from, for
    archives and single files: ``"local"`` (default) sees a file rewritten in place
    (inode and ctime), ``"portable"`` only names, sizes and mtimes, the same on replicas
    serving copies (see :meth:`~zipwsgi.engine.stream.ArchiveStream.fingerprint`).
    """

    def __init__(
        self,
        root: PathLike,
        *,
        compression: str = "stored",
        show_hidden: bool = False,
        max_selection: int = 10_000,
        max_form_bytes: int = 1024 * 1024,
        validator: str = "local",
    ) -> None:
        if compression not in ("stored", "deflate"):
            raise ValueError(f"compression must be 'stored' or 'deflate', not {compression!r}")
        self.root = Root(root, show_hidden=show_hidden)
        self.compression = compression
        self.max_selection = max_selection
        self.max_form_bytes = max_form_bytes
        self.validator = check_validator(validator)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = webob.Request(environ)
        try:
            response = self.respond(request)
        except Problem as problem:
            response = self.error_page(request, problem.status, problem.message, problem.headers)
        except Exception:
            log.exception("zipwsgi: failed to answer %s %r", request.method, request.path_qs)
            response = self.error_page(request, 500, "Something went wrong on the server.")
        return response(environ, start_response)

    # -- routing ----------------------------------------------------------------------------

    def respond(self, request: webob.Request) -> webob.Response:
        """Decide what ``request`` asks for; raises :class:`Problem` for error answers."""
        if request.method not in ("GET", "HEAD", "POST"):
            raise Problem(405, "This method is not allowed here.", Allow="GET, HEAD, POST")
        path = path_info(request.environ)
        if path == "":  # the mount point itself, "/files": its page is "/files/"
            return self._redirect(request, ())
        if path.endswith("/"):
            return self.folder(request, self._split(path))
        parts = self._split(path)
        if not parts:  # e.g. "/." or "//": the root, spelt oddly
            return self._redirect(request, parts)
        if request.method == "POST":
            raise Problem(405, "Only folders accept a selection.", Allow="GET, HEAD")
        found = self._find(parts)
        stem, fmt = archive_suffix(parts[-1])
        if found is None and stem not in ("", ".", ".."):
            # "<folder>.zip" (.tar, .tar.gz); a hidden stem cannot get here, its archive
            # name was hidden too
            folder = parts[:-1] + (stem,)
            real, st = self._stat(folder)
            if stat.S_ISDIR(st.st_mode):
                return self.whole_folder(request, folder, real, fmt=fmt)
            raise Problem(404, "There is no such file or folder here.")
        if found is None:
            raise Problem(404, "There is no such file or folder here.")
        real, st = found
        if stat.S_ISDIR(st.st_mode):
            return self._redirect(request, parts)
        return file_response(real, st, self.validator)

    def folder(self, request: webob.Request, parts: Parts) -> webob.Response:
        """A folder URL (``.../``): its page, its archive, or a selection from it."""
        real, st = self._stat(parts)
        if not stat.S_ISDIR(st.st_mode):
            raise Problem(404, "There is no such folder here.")
        query = form_fields(request.environ.get("QUERY_STRING", "").encode("latin-1"))
        if request.method == "POST":
            fields = self._posted_fields(request)
            posted = chosen_format(fields) or chosen_format(query) or ZIP
            return self.selection(request, parts, real,
                                  [v for k, v in fields if k == "path"], fmt=posted)
        fmt = chosen_format(query) or ZIP
        if any(key == "path" for key, _ in query):
            return self.selection(request, parts, real, [v for k, v in query if k == "path"],
                                  fmt=fmt)
        if any(key == "download" for key, _ in query):
            return self.whole_folder(request, parts, real, fmt=fmt, vary=True)
        accepted = accepted_format(request)
        if accepted is not None:
            return self.whole_folder(request, parts, real, fmt=accepted, vary=True)
        return self.listing(request, parts, real)

    # -- answers ----------------------------------------------------------------------------

    def listing(self, request: webob.Request, parts: Parts, real: str) -> webob.Response:
        """The folder's page: folders first, then files, each by name."""
        base = script_name(request.environ)
        try:
            children = self.root.children(real)
        except PermissionError:
            raise Problem(403, "This folder cannot be read.") from None
        entries = []
        for child in sorted(children, key=lambda c: (not c.is_dir, c.name.casefold(), c.name)):
            href = url(base, parts + (child.name,), slash=child.is_dir)
            size = self.root.tree_size(child.real, real) if child.is_dir else child.st.st_size
            entries.append(ListingEntry(child.name, href, child.is_dir, size, child.st.st_mtime))
        crumbs = [(self._name(parts[:i]), url(base, parts[:i], slash=True))
                  for i in range(len(parts) + 1)]
        page = render_listing(
            title=self._name(parts),
            breadcrumbs=crumbs,
            entries=entries,
            form_action=url(base, parts, slash=True),
            zip_href=self._archive_href(base, parts, ZIP),
            formats=[(fmt, self._archive_href(base, parts, fmt)) for fmt in FORMATS[1:]],
        )
        response = webob.Response(page, content_type="text/html", charset="utf-8")
        response.headers.update(list(_PAGE_HEADERS.items()))
        response.headers["Content-Security-Policy"] = LISTING_CSP + "; frame-ancestors 'none'"
        response.headers["Cache-Control"] = "no-cache"
        response.headers["Vary"] = "Accept"
        return response

    def whole_folder(
        self,
        request: webob.Request,
        parts: Parts,
        real: str,
        *,
        fmt: str = ZIP,
        vary: bool = False,
    ) -> webob.Response:
        """The folder as ``<name>.zip`` (``.tar``, ``.tar.gz``: ``fmt``), holding
        ``<name>/`` and everything visible below."""
        name = self._name(parts)
        stream = self._build([(real, name)], real, fmt)
        headers = {"Vary": "Accept"} if vary else {}
        return archive_response(request, stream, filename=printable(name), headers=headers)

    def selection(
        self,
        request: webob.Request,
        parts: Parts,
        real: str,
        paths: list[str],
        *,
        fmt: str = ZIP,
    ) -> webob.Response:
        """The entries named in ``paths`` (relative to the folder) as one archive of
        format ``fmt``."""
        if not paths:
            raise Problem(400, "Nothing was selected: tick at least one entry.")
        if len(paths) > self.max_selection:
            raise Problem(413, "Too many entries were selected at once.")
        chosen: dict[Parts, str] = {}
        for path in paths:
            relative = self._split(path)
            if not relative:
                raise Problem(400, "A selected path is empty.")
            chosen[relative] = self._stat(parts + relative)[0]
        # An entry inside another selected folder is already in that folder's walk.
        kept = [(rel, target) for rel, target in sorted(chosen.items())
                if not any(rel[:i] in chosen for i in range(1, len(rel)))]
        stream = self._build([(target, "/".join(rel)) for rel, target in kept], real, fmt)
        name = kept[0][0][-1] if len(kept) == 1 else self._name(parts)
        return archive_response(request, stream, filename=printable(name))

    def error_page(
        self,
        request: webob.Request,
        status: int,
        message: str,
        headers: Optional[dict[str, str]] = None,
    ) -> webob.Response:
        """A small page for an error; says what happened, never which path or why inside."""
        response = webob.Response(status=status, content_type="text/html", charset="utf-8")
        title = html.escape(response.status)
        home = html.escape(url(script_name(request.environ), (), slash=True))
        response.text = (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{title}</title></head>\n<body><h1>{title}</h1>\n"
            f"<p>{html.escape(message)}</p>\n"
            f'<p><a href="{home}">Back to the top folder</a></p></body></html>\n'
        )
        response.headers.update(list(_PAGE_HEADERS.items()))
        response.headers["Content-Security-Policy"] = _ERROR_CSP
        response.headers["Cache-Control"] = "no-store"
        response.headers.update(list((headers or {}).items()))
        return response

    # -- helpers ----------------------------------------------------------------------------

    def _split(self, path: str) -> Parts:
        try:
            return self.root.split(path)
        except OutsideRootError:
            raise Problem(403, "This path is not allowed.") from None
        except PathTooLongError:  # answered before any file system call
            raise Problem(414, "This path is too long.") from None
        except FileNotFoundError:
            raise Problem(404, "There is no such file or folder here.") from None

    def _stat(self, parts: Parts) -> tuple[str, os.stat_result]:
        """Resolve inside the root and stat: 403 outside it or unreadable, 404 absent."""
        try:
            return self.root.stat(parts)
        except OutsideRootError:
            raise Problem(403, "This path leads outside the shared folder.") from None
        except PermissionError:
            raise Problem(403, "This file or folder cannot be read.") from None
        except OSError:
            raise Problem(404, "There is no such file or folder here.") from None

    def _find(self, parts: Parts) -> Optional[tuple[str, os.stat_result]]:
        """:meth:`_stat`, but ``None`` where it would answer 404."""
        try:
            return self._stat(parts)
        except Problem as problem:
            if problem.status == 404:
                return None
            raise

    def _posted_fields(self, request: webob.Request) -> list[tuple[str, str]]:
        """The selection form's text fields (``path``, ``format``), in order."""
        length = request.content_length
        if length is not None and length > self.max_form_bytes:
            raise Problem(413, "The selection form is too large.")
        if request.content_type == "multipart/form-data":
            if length is None:
                raise Problem(411, "Send the selection form with a Content-Length.")
            return [(k, v) for k, v in request.POST.items() if isinstance(v, str)]
        if request.content_type not in ("application/x-www-form-urlencoded", ""):
            raise Problem(415, "Send the selection as a form.")
        body = request.body_file_raw.read(min(length or 0, self.max_form_bytes))
        return form_fields(body)

    def new_stream(self, fmt: str) -> ArchiveStream:
        """The empty archive of format ``fmt`` (``zip``, ``tar``, ``tar.gz``) a download
        fills; a subclass may choose other options."""
        stream = new_archive(fmt, compression=self.compression)
        stream.validator = self.validator
        return stream

    def _build(self, items: list[tuple[str, str]], folder: str, fmt: str) -> ArchiveStream:
        """A ``fmt`` stream of real paths under their archive names; errors become 403/404.

        Folders are walked by :meth:`Root.found` (not ``add_path``) with the same
        ``folder`` as the page's sizes, so the zip holds exactly what the page lists, and
        every file is stat-ed once.
        """
        stream = self.new_stream(fmt)
        try:
            for real, arcname in items:
                stream.add_found(printable_names(self.root.found(real, arcname, folder)))
        except PermissionError:
            stream.close()
            raise Problem(403, "Part of this folder cannot be read.") from None
        except OSError:  # SourceUnavailableError too: something vanished since the check
            stream.close()
            raise Problem(404, "A file changed or vanished; reload and try again.") from None
        except ArchiveNameError:
            stream.close()
            raise Problem(500, "A name in this folder cannot be stored in an archive.") from None
        except BaseException:
            stream.close()
            raise
        return stream

    def _name(self, parts: Parts) -> str:
        return parts[-1] if parts else (self.root.name or "archive")

    def _archive_href(self, base: str, parts: Parts, fmt: str) -> str:
        """``<folder>.zip`` (``.tar``, ``.tar.gz``) beside the folder, or ``?download``
        (``&format=...``) where that name is taken."""
        if parts:
            sibling = parts[:-1] + (parts[-1] + "." + fmt,)
            try:
                taken = os.path.lexists(self.root.resolve(sibling))
            except (OSError, OutsideRootError):
                taken = True
            if not taken:
                return url(base, sibling, slash=False)
        query = "?download" if fmt == ZIP else "?download&format=" + quote(fmt)
        return url(base, parts, slash=True) + query

    def _redirect(self, request: webob.Request, parts: Parts) -> webob.Response:
        """To the folder URL with its slash; built from checked segments, so a path like
        ``//evil.example`` cannot become a redirect to another host."""
        location = url(script_name(request.environ), parts, slash=True)
        query = request.environ.get("QUERY_STRING", "")
        response = webob.Response(status=308 if request.method == "POST" else 301)
        response.location = location + ("?" + query if query else "")
        return response
