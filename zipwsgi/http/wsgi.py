"""WSGI plumbing shared by the middleware and sub-requests: one way to call an app.

PEP 3333 leaves room for surprises (``start_response`` called only when the body is first
iterated, the legacy ``write()`` callable, bodies that must be closed whatever happens).
Each of those is handled once here, so the middleware and the sub-request source read
as the decisions they make rather than the protocol they live in.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Optional, Sequence

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication, WSGIEnvironment

__all__ = [
    "Captured",
    "LoggedBody",
    "NoStatusError",
    "Prepended",
    "close_all",
    "first_header",
    "request_path",
    "strip_archive_headers",
]

log = logging.getLogger("zipwsgi")

Headers = list[tuple[str, str]]


def first_header(headers: Sequence[tuple[str, str]], name: str) -> Optional[str]:
    """The first value of header ``name`` (any case) in a WSGI header list, or None."""
    name = name.lower()
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def strip_archive_headers(headers: Headers) -> Headers:
    """Headers without ``X-Archive-*`` (the backend's private message to us); the same
    list when there is nothing to remove."""
    if not any(name.lower().startswith("x-archive-") for name, _ in headers):
        return headers
    return [(name, value) for name, value in headers
            if not name.lower().startswith("x-archive-")]


def close_all(objects: Iterable[Any]) -> None:
    """Call ``close()`` on each object that has one (or the object itself if it is a bare
    callable); all run even if one raises, then the first error is raised."""
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


def request_path(environ: Mapping[str, Any]) -> str:
    """SCRIPT_NAME + PATH_INFO as text, for log lines (WSGI hands them over as latin-1)."""
    path = str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))
    try:
        return path.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return path


class NoStatusError(RuntimeError):
    """The app returned (or began its body) without calling ``start_response``."""


class Prepended:
    """Chunks already taken from an iterator, then the rest; ``close`` closes the origin
    (the body the app returned), which is what PEP 3333 requires."""

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
        close_all((self._origin,))


class Captured:
    """One in-process call of a WSGI app: status, headers and body, held for the caller.

    What the app passes to ``write()`` is kept in ``written`` (it comes before the body).
    Subclasses may forward instead (the middleware commits a response it will not touch).
    """

    def __init__(self) -> None:
        self.status = ""
        self.headers: Headers = []
        self.exc_info: Any = None
        self.written: list[bytes] = []
        self.body: Iterable[bytes] = ()

    def start_response(
        self, status: str, headers: Headers, exc_info: Any = None
    ) -> Callable[[bytes], Any]:
        if exc_info is not None and self.status:
            raise exc_info[1].with_traceback(exc_info[2])
        self.status, self.headers, self.exc_info = status, list(headers), exc_info
        return self.write

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def call(self, app: WSGIApplication, environ: WSGIEnvironment) -> None:
        """Run ``app`` up to its status line; the caller owns (and closes) ``body``.

        PEP 3333 lets an app call ``start_response`` when its body is first iterated, so
        a missing status costs one chunk taken early (kept in front of the rest).
        """
        self.body = app(environ, self.start_response)
        if self.status:
            return
        iterator = iter(self.body)
        try:
            first = next(iterator, None)
        except BaseException:
            close_all((self.body,))
            raise
        self.body = Prepended([] if first is None else [first], iterator, self.body)
        if not self.status:
            close_all((self.body,))
            raise NoStatusError("the WSGI app returned without calling start_response")

    def header(self, name: str) -> Optional[str]:
        return first_header(self.headers, name)

    def close(self) -> None:
        body, self.body = self.body, ()
        close_all((body,))


class LoggedBody:
    """A body handed to the server: logs a failure mid-stream, then re-raises so the
    server cuts the connection (the client sees a short download, never a complete-looking
    corrupt one); ``close`` releases everything listed in ``closers``."""

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
        close_all((body, *closers))
