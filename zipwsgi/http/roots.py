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
import re
from itertools import repeat
from operator import itemgetter
from typing import Mapping, Optional, Sequence, Union

from zipwsgi.errors import OutsideRootError
from zipwsgi.paths import MAX_PATH_BYTES, MAX_PATH_DEPTH, Root, split_url_path

__all__ = ["PlainLocations", "Roots", "RootsFinder"]

# Last segments that split_url_path drops or refuses: such locations take the long way.
_SPECIAL = frozenset({"", ".", ".."})
# Folder texts remembered by Roots.split; past this many it starts over (memory bound).
_MAX_FOLDERS = 4096
# What makes a location more than "drop the leading slash, split at each slash", in any
# of many locations each between two LFs (see Roots.plain_folders): what split_url_path
# refuses or drops (NUL, backslash, empty segments: "//", a trailing "/"), a '?' (the
# manifest checks what precedes a decoded '?' on its own), an empty location; substrings
# for str's C search, a regex for "." and ".." segments only where a "/." is.
_NOT_PLAIN_MARKS = ("\\", "\x00", "?", "//", "/\n", "\n\n")
_DOT_SEGMENT = re.compile(r"/\.\.?[/\n]")
_HEAD, _LAST = itemgetter(0), itemgetter(2)

PathLike = Union[str, "os.PathLike[str]"]


class PlainLocations:
    """What :meth:`Roots.plain_folders` found out about locations that are all plain:
    each folder text's root and segments."""

    __slots__ = ("locations", "folders")

    def __init__(self, locations: Sequence[str],
                 folders: dict[str, tuple[Root, tuple[str, ...]]]) -> None:
        self.locations = locations
        self.folders = folders


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

    def plain_folders(self, locations: Sequence[str]) -> Optional[PlainLocations]:
        """For locations that are all plain text under a root: each folder text (what
        precedes a location's last slash) with its root and segments below it; None
        otherwise (then :meth:`split` or :meth:`locate` each location, and they say
        what is wrong with which).

        Speed trick (10,000 manifest lines in 20 folders: 2 ms, against 8 ms of
        :meth:`split` per location): a few substring searches over all the locations
        prove that none needs more than splitting at its slashes; each folder's first
        location then gets all of :meth:`split`'s checks, and what they say holds for
        the other locations of that folder, whose last segments the search proved plain
        (its length bound: no location over MAX_PATH_BYTES // 4 characters).
        """
        lines = "\n" + "\n".join(locations) + "\n"
        if locations and (
            lines.count("\n") != len(locations) + 1
            or any(mark in lines for mark in _NOT_PLAIN_MARKS)
            or ("/." in lines and _DOT_SEGMENT.search(lines))
            or max(map(len, locations)) > MAX_PATH_BYTES // 4
        ):
            return None
        # One location per folder text (what precedes its last slash), by C-level maps:
        # the dict keeps the last location of each; no list of 10,000 split tuples.
        heads = dict(zip(map(_HEAD, map(str.rpartition, locations, repeat("/"))), locations))
        folders: dict[str, tuple[Root, tuple[str, ...]]] = {}
        for head, location in heads.items():
            try:
                found = self.split(location)
            except OSError:
                return None
            if found is None or not found[0].show_hidden:
                return None
            folders[head] = (found[0], found[1][:-1])
        return PlainLocations(locations, folders)

    @staticmethod
    def plain_paths(plain: PlainLocations, folders: dict[str, str]) -> Optional[list[str]]:
        """The paths of locations :meth:`plain_folders` passed: each folder's real path
        (resolved as :meth:`locate` does, through ``folders``) joined to the last
        segment; None if some folder is missing or leads out of its root (then
        :meth:`locate` each, which says where).

        The path is :meth:`locate`'s whenever its ``lstat`` shows no symlink: the caller
        must send any other kind of file (a link, a folder, nothing) through
        :meth:`locate`. Built by C-level maps: no Python code runs per location; when
        every folder is where its text says (no link on the way), by slicing alone."""
        bases: dict[str, str] = {}
        roots: set[tuple[str, int]] = set()
        for head, (root, parts) in plain.folders.items():
            try:
                real = root.folder(parts, folders)
            except OSError:  # a link out of the root: locate() refuses it, naming it
                return None
            if real is None:
                return None
            bases[head] = real if real.endswith(os.sep) else real + os.sep
            # The prefix's length: what precedes the folder's segments in its text.
            roots.add((root.path, len(head) + 1 - (len("/".join(parts)) + 1 if parts else 0)))
        if len(roots) == 1 and os.sep == "/":
            path, cut = roots.pop()
            path = path.rstrip("/")  # + each location's text from the prefix's slash
            if all(base == path + head[cut - 1:] + "/" for head, base in bases.items()):
                return list(map(str.__add__, repeat(path),
                                map(itemgetter(slice(cut - 1, None)), plain.locations)))
        split = list(map(str.rpartition, plain.locations, repeat("/")))
        return list(map(str.__add__, map(bases.__getitem__, map(_HEAD, split)),
                        map(_LAST, split)))

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


class RootsFinder:
    """Finds a lazy manifest's files when the stream reaches them (a
    :class:`~zipwsgi.engine.deferred.FileFinder`), with the same confinement as the
    eager build and a folder cache for this one manifest."""

    __slots__ = ("roots", "folders")

    def __init__(self, roots: Roots) -> None:
        self.roots = roots
        self.folders: dict[str, str] = {}

    def find(self, key: str) -> tuple[str, Optional[os.stat_result]]:
        located = self.roots.locate(key, self.folders)
        if located is None:  # checked when added; only a bug of ours gets here
            raise OutsideRootError(f"location under no root: {key!r}")
        return located
