"""Finding the archive inside an app's response body.

An app behind the middleware may answer with a :class:`ArchiveStream` as it is, or
wrapped by its framework (werkzeug's ``ClosingIterator``, bottle's close callbacks,
Django's resource closers, a WebOb response): the middleware must recognise it there to
answer with an exact length and ranges, so the wrappers are searched a few levels deep.
"""

from __future__ import annotations

from typing import Any, Optional

from zipwsgi.engine.stream import ArchiveStream

__all__ = ["find_archive"]


def find_archive(body: Any, depth: int = 0) -> Optional[ArchiveStream]:
    """The archive stream ``body`` is, or wraps a few levels down; None if there is none."""
    if isinstance(body, ArchiveStream):
        return body
    # zipwsgi.compat.zipstream.ZipFile (a drop-in for python-zipstream) keeps its stream
    # as ``.stream``; werkzeug's responses have a ``.stream`` too, but never an archive.
    if isinstance(getattr(body, "stream", None), ArchiveStream):
        return body.stream  # type: ignore[no-any-return]
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
        found = find_archive(owner, depth + 1)
        if found is not None:
            return found
    return None
