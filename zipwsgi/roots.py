"""Confinement: map manifest locations under URL prefixes to files inside a directory.

A manifest line such as ``- 24 /files/report%20May.txt report.txt`` names a *URL path*;
with ``roots={"/files/": "/srv/files"}`` the middleware reads ``/srv/files/report May.txt``
straight from disk instead of asking the app for it. The location is untrusted input
(it often carries user-chosen names), so it is checked before anything is opened::

    >>> roots = Roots({"/files/": "/srv/files"})
    >>> roots.match("/files/a/b.txt")
    ('/files/', 'a/b.txt')
    >>> roots.match("/other/b.txt") is None
    True

Security note: the location given here has already been percent-decoded once by the
manifest parser, so ``%2e%2e`` and ``%2F`` arrive as ``..`` and ``/`` and are judged as
such. A ``..`` segment, a NUL, a backslash or a path that is absolute after the prefix
is refused outright (refusing is clearer than silently normalising an attack), and the
final path is resolved with :func:`os.path.realpath` and must still be inside the
root's own real path, so a symlink pointing out of the root is refused too. Symlinks
that stay inside the root are followed. There is a window between this check and the
open; :class:`~zipwsgi.sources.FileSource` opens with ``O_NOFOLLOW`` and re-checks size
and mtime, which narrows it to a directory being swapped for a link in that instant.
"""

from __future__ import annotations

import os
from typing import Mapping, Optional, Union

from .errors import OutsideRootError

__all__ = ["Roots", "has_dot_dot"]

PathLike = Union[str, "os.PathLike[str]"]


def has_dot_dot(location: str) -> bool:
    """True if any ``/``-separated segment of a decoded location is ``..``."""
    return ".." in location.replace("\\", "/").split("/")


class Roots:
    """URL-path prefixes mapped to directories; the longest matching prefix wins.

    Prefixes are normalised to start and end with ``/`` (``"files"`` means ``/files/``).
    Directories are resolved when a location is resolved, not here, so a root may be
    created after the middleware is.
    """

    __slots__ = ("_roots",)

    def __init__(self, roots: Optional[Mapping[str, PathLike]] = None) -> None:
        normalised: dict[str, str] = {}
        for prefix, directory in (roots or {}).items():
            prefix = "/" + prefix.strip("/") + "/" if prefix.strip("/") else "/"
            normalised[prefix] = os.fspath(directory)
        # Longest first, so "/files/private/" beats "/files/".
        self._roots = sorted(normalised.items(), key=lambda item: len(item[0]), reverse=True)

    def __bool__(self) -> bool:
        return bool(self._roots)

    def __repr__(self) -> str:
        return f"Roots({dict(self._roots)!r})"

    def match(self, location: str) -> Optional[tuple[str, str]]:
        """``(prefix, rest)`` for the longest prefix ``location`` starts with, else None."""
        for prefix, _directory in self._roots:
            if location.startswith(prefix):
                return prefix, location[len(prefix) :]
        return None

    def resolve(self, location: str) -> Optional[str]:
        """The real path on disk for ``location``, or None if it is under no prefix.

        Raises :class:`~zipwsgi.errors.OutsideRootError` if the location tries to leave
        its root in any way. Does not check that the file exists.
        """
        for prefix, directory in self._roots:
            if location.startswith(prefix):
                return _confine(directory, location[len(prefix) :], location)
        return None


def _confine(directory: str, rest: str, location: str) -> str:
    if "\x00" in rest:
        raise OutsideRootError(f"location contains a NUL byte: {location!r}")
    if "\\" in rest:
        # Harmless on POSIX, a separator on Windows: refused everywhere, so a manifest
        # means the same on every server.
        raise OutsideRootError(f"location contains a backslash: {location!r}")
    if rest.startswith("/") or os.path.splitdrive(rest)[0]:
        raise OutsideRootError(f"location is absolute after its prefix: {location!r}")
    parts = rest.split("/")
    if ".." in parts:
        raise OutsideRootError(f"location contains a '..' segment: {location!r}")
    parts = [part for part in parts if part not in ("", ".")]
    if not parts:
        raise OutsideRootError(f"location names the root folder itself: {location!r}")
    base = os.path.realpath(directory)
    path = os.path.realpath(os.path.join(base, *parts))
    if not _is_within(path, base):
        raise OutsideRootError(f"location resolves outside its root: {location!r}")
    return path


def _is_within(path: str, root: str) -> bool:
    if root == os.sep:
        return True
    return path.startswith(root.rstrip(os.sep) + os.sep)
