"""Manifest roots: URL prefixes mapped to folders, each a :class:`~zipwsgi.paths.Root`.

A manifest line such as ``- 24 /files/report%20May.txt report.txt`` names a *URL path*;
with ``roots={"/files/": "/srv/files"}`` the middleware reads ``/srv/files/report May.txt``
straight from disk instead of asking the app for it::

    >>> roots = Roots({"/files/": "/srv/files"})
    >>> roots.match("/files/a/b.txt")
    ('/files/', 'a/b.txt')
    >>> roots.match("/other/b.txt") is None
    True

Security note: the location is untrusted input (it often carries user-chosen names) and
arrives here percent-decoded once by the manifest parser, so ``%2e%2e`` and ``%2F`` are
judged as the ``..`` and ``/`` they are. The rest of the path after its prefix is
confined by the same policy as the standalone app (:mod:`zipwsgi.paths`): ``..``, NUL
and backslashes refused, every step resolved with ``realpath`` and kept inside the
root's real path, so no symlink leads out. Hidden names are *not* refused here: the app
wrote the manifest and may list them on purpose. :class:`~zipwsgi.sources.FileSource`
opens with ``O_NOFOLLOW`` and re-checks size and mtime, which narrows the window between
check and open to a folder being swapped for a link in that instant.
"""

from __future__ import annotations

import os
from typing import Mapping, Optional, Union

from zipwsgi.errors import OutsideRootError
from zipwsgi.paths import MAX_PATH_BYTES, MAX_PATH_DEPTH, Root, split_url_path

__all__ = ["Roots"]

# Last segments that split_url_path drops or refuses: such locations take the long way.
_SPECIAL = frozenset({"", ".", ".."})
# Folder texts remembered by Roots.split; past this many it starts over (memory bound).
_MAX_FOLDERS = 4096

PathLike = Union[str, "os.PathLike[str]"]


class Roots:
    """URL-path prefixes mapped to directories; the longest matching prefix wins.

    Prefixes are normalised to start and end with ``/`` (``"files"`` means ``/files/``).
    Folders are looked up when the first location under them is resolved, not here, so
    a root may be created after the middleware is.
    """

    __slots__ = ("_roots", "_made", "_folders")

    def __init__(self, roots: Optional[Mapping[str, PathLike]] = None) -> None:
        normalised: dict[str, str] = {}
        for prefix, directory in (roots or {}).items():
            prefix = "/" + prefix.strip("/") + "/" if prefix.strip("/") else "/"
            normalised[prefix] = os.fspath(directory)
        # Longest first, so "/files/private/" beats "/files/".
        self._roots = sorted(normalised.items(), key=lambda item: len(item[0]), reverse=True)
        self._made: dict[str, tuple[Root, int]] = {}
        # The text of folder locations already split: (root, segments, count of all).
        self._folders: dict[str, tuple[Root, tuple[str, ...], int]] = {}

    def __bool__(self) -> bool:
        return bool(self._roots)

    def __repr__(self) -> str:
        return f"Roots({dict(self._roots)!r})"

    def match(self, location: str) -> Optional[tuple[str, str]]:
        """``(prefix, rest)`` for the longest prefix ``location`` starts with, else None."""
        for prefix, _ in self._roots:
            if location.startswith(prefix):
                return prefix, location[len(prefix) :]
        return None

    def locate(
        self, location: str, folders: Optional[dict[str, str]] = None
    ) -> Optional[tuple[str, Optional[os.stat_result]]]:
        """The real path on disk for ``location`` and, when one step found it for free,
        its stat (see :meth:`Root.locate`, which also explains ``folders``); None if the
        location is under no prefix.

        Raises :class:`~zipwsgi.errors.OutsideRootError` if the location tries to leave
        its root in any way, :class:`NotADirectoryError` if the root folder is missing.
        Does not check that the file exists.
        """
        split = self.split(location)
        if split is None:
            return None
        root, parts = split
        try:
            return root.locate(parts, folders)
        except OutsideRootError as exc:
            raise OutsideRootError(f"{exc}: {location!r}") from None

    def split(self, location: str) -> Optional[tuple[Root, tuple[str, ...]]]:
        """The root ``location`` is under and its segments below that root, checked as
        :meth:`locate` checks them but without looking at the disk (beyond making the
        root on first use); None if the location is under no prefix. Raises as
        :meth:`locate` does for a location that tries to leave its root by its text."""
        # Per folder, not per file: a manifest names many files of few folders, and what
        # the text of a folder's location gives (its root, its segments) never changes.
        # A file's own segment then gets the checks split_url_path would give it.
        folder, slash, last = location.rpartition("/")
        folder += slash  # with its slash: "a" (no folder) and "/a" differ
        known = self._folders.get(folder)
        if (
            known is not None
            and last not in _SPECIAL
            and "\\" not in last
            and "\x00" not in last
            and len(location) <= MAX_PATH_BYTES // 4  # so it cannot be too long in bytes
            and known[2] < MAX_PATH_DEPTH
        ):
            return known[0], (*known[1], last)
        split = self._split(location)
        if split is not None and last not in _SPECIAL:
            if len(self._folders) >= _MAX_FOLDERS:
                self._folders.clear()
            root, parts, depth = split
            self._folders[folder] = (root, parts[:-1], depth - 1)
        return None if split is None else split[:2]

    def _split(self, location: str) -> Optional[tuple[Root, tuple[str, ...], int]]:
        """:meth:`split`, and how many segments the whole location has."""
        for prefix, _ in self._roots:  # match(), without making the rest of the path
            if location.startswith(prefix):
                break
        else:
            return None
        try:
            # The whole location is split once (its limits count the prefix too); the
            # prefix's own segments come first and are dropped below.
            parts = split_url_path(location)
        except OutsideRootError as exc:
            raise OutsideRootError(f"{exc}: {location!r}") from None
        root, depth = self._root(prefix)
        total = len(parts)
        parts = parts[depth:]
        if not parts:
            raise OutsideRootError(f"location names the root folder itself: {location!r}")
        return root, parts, total

    def _root(self, prefix: str) -> tuple[Root, int]:
        """The :class:`Root` for ``prefix``, made on first use (the folder must exist),
        and how many segments the prefix itself splits into."""
        made = self._made.get(prefix)
        if made is None:
            directory = dict(self._roots)[prefix]
            # Hidden names are the app's choice in a manifest (see the module docstring),
            # so the root does not refuse them: its split is not needed here.
            made = self._made[prefix] = (Root(directory, show_hidden=True),
                                         len(split_url_path(prefix)))
        return made
