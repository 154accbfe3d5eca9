"""Served folders: which paths on disk a request may reach, resolved step by step."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Optional, Union

from zipwsgi.errors import OutsideRootError, PathTooLongError
from zipwsgi.paths.walk import FolderWalk, Found, hidden_below, is_within, walk_folder

__all__ = ["Child", "MAX_PATH_BYTES", "MAX_PATH_DEPTH", "Root", "split_url_path"]

PathLike = Union[str, "os.PathLike[str]"]

#: The longest URL path (in bytes, as the file system spells it) and the most segments a
#: request may name: Linux's PATH_MAX, and NAME_MAX as a depth nobody shares files at.
MAX_PATH_BYTES = 4096
MAX_PATH_DEPTH = 255
_S_IFMT, _S_IFLNK = 0o170000, stat.S_IFLNK


def split_url_path(url_path: str) -> tuple[str, ...]:
    """The segments of a decoded, ``/``-separated path; empty and ``.`` segments dropped.

    Raises :class:`OutsideRootError` for ``..``, NUL or a backslash anywhere: a request
    that tries to climb is refused, never quietly rewritten. Raises
    :class:`PathTooLongError` past :data:`MAX_PATH_BYTES` or :data:`MAX_PATH_DEPTH`:
    no file system serves such a path, and refusing it at once bounds the work one
    request can cause.
    """
    if "\x00" in url_path or "\\" in url_path:
        raise OutsideRootError("NUL or backslash in path")
    if len(url_path) > MAX_PATH_BYTES // 4 and len(os.fsencode(url_path)) > MAX_PATH_BYTES:
        raise PathTooLongError(f"path longer than {MAX_PATH_BYTES} bytes")
    # Without the leading slashes most paths have no empty segment, and skip the filter.
    parts = tuple(url_path.lstrip("/").split("/"))
    if "" in parts or "." in parts:
        parts = tuple(part for part in parts if part not in ("", "."))
    if ".." in parts:
        raise OutsideRootError("'..' in path")
    if len(parts) > MAX_PATH_DEPTH:
        raise PathTooLongError(f"path deeper than {MAX_PATH_DEPTH} segments")
    return parts


@dataclass(frozen=True)
class Child:
    """One visible entry of a folder: its name there, real path and stat (of the target)."""

    name: str
    real: str
    st: os.stat_result

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.st.st_mode)


class Root:
    """A served folder. Turns URL paths into real paths that are guaranteed inside it."""

    def __init__(self, path: PathLike, *, show_hidden: bool = False) -> None:
        self.path = os.path.realpath(os.fspath(path))
        if not os.path.isdir(self.path):
            raise NotADirectoryError(f"not a directory: {os.fspath(path)}")
        self.show_hidden = show_hidden
        #: The root's own name (what its archive is called); empty for the file system root.
        self.name = os.path.basename(self.path)
        # What the folders cache of :meth:`locate` keys this root's folders by: its path
        # and a NUL (in no path), then the folder's segments as given.
        self._cache_key = self.path + "\0"

    def split(self, url_path: str) -> tuple[str, ...]:
        """The segments of a decoded, ``/``-separated path, checked for traversal tricks.

        Raises :class:`OutsideRootError` for ``..``, NUL or a backslash anywhere, and
        :class:`FileNotFoundError` for a hidden segment (unless ``show_hidden``).
        """
        parts = split_url_path(url_path)
        if not self.show_hidden and any(part.startswith(".") for part in parts):
            raise FileNotFoundError("hidden path")
        return parts

    def resolve(self, parts: tuple[str, ...]) -> str:
        """The real path of ``parts`` (as :meth:`split` returns them), inside the root.

        Each step is resolved on its own, so no symlink is followed out of the root. The
        result need not exist; :meth:`stat` is the version that requires it to.
        """
        return self.locate(parts)[0]

    def locate(
        self, parts: tuple[str, ...], folders: Optional[dict[str, str]] = None
    ) -> tuple[str, Optional[os.stat_result]]:
        """:meth:`resolve`, plus the last step's ``lstat`` when it is not a symlink (so
        it is the path's own stat; None otherwise).

        ``folders`` caches the resolved folder of each path's parent, for callers that
        resolve many paths at once (a manifest): files in one folder then cost one dict
        lookup and one ``lstat`` each instead of one ``lstat`` per path segment. Keys
        name this root too, so one cache may serve several roots: a folder that a link
        makes reachable under an outer root is not taken as inside an inner one. Keep
        it for one batch only, so a folder swapped for a symlink later is seen.
        """
        last = len(parts) - 1
        if folders is not None and last > 0:
            key = self._cache_key + "/".join(parts[:last])
            folder = folders.get(key)
            if folder is None:
                folder = self._walk(parts[:last])
                if folder is None:  # a step is missing: nothing to cache
                    return self._walk_all(parts)
                folders[key] = folder
            return self._last_step(folder, parts[last])
        return self._walk_all(parts)

    def folder(self, parts: tuple[str, ...], folders: dict[str, str]) -> Optional[str]:
        """The real path of the folder ``parts`` names (checked inside the root), from
        the ``folders`` cache :meth:`locate` keeps, walked and cached on a miss; None
        when a step does not exist or cannot be read. For callers that join many file
        names to one folder themselves (a manifest's fast path, :mod:`zipwsgi.http.roots`)."""
        if not parts:
            return self.path
        key = self._cache_key + "/".join(parts)
        folder = folders.get(key)
        if folder is None:
            folder = self._walk(parts)
            if folder is not None:
                folders[key] = folder
        return folder

    def _walk(self, parts: tuple[str, ...]) -> Optional[str]:
        """The real path of the folder ``parts`` names (checked inside the root), or None
        when a step does not exist or cannot be read."""
        current = self.path
        for part in parts:
            candidate = current + part if current.endswith(os.sep) else current + os.sep + part
            try:
                is_link = stat.S_ISLNK(os.lstat(candidate).st_mode)
            except OSError:
                return None
            current = self._followed(candidate) if is_link else candidate
        return current

    def _walk_all(self, parts: tuple[str, ...]) -> tuple[str, Optional[os.stat_result]]:
        current = self.path
        st: Optional[os.stat_result] = None
        for index, part in enumerate(parts):
            candidate = current + part if current.endswith(os.sep) else current + os.sep + part
            try:
                st = os.lstat(candidate)
                is_link = stat.S_ISLNK(st.st_mode)
            except OSError:
                # Missing or unreadable: nothing below it exists for us, so no symlink
                # below can lead anywhere, and the rest is plain text. Ending the walk
                # here keeps resolution linear: calling realpath on every longer prefix
                # of a missing folder made ``a/`` * 3000 cost 25 s (issue #16).
                rest = parts[index + 1 :]
                current = os.sep.join((candidate, *rest)) if rest else candidate
                st = None
                break
            # ``current`` is already real, so a step that is not a symlink stays real:
            # one lstat per step instead of realpath's lstat of every ancestor again.
            # A plain step below a real path inside the root stays inside (``split`` let
            # no "..", "/" or NUL through); only a symlink's target must be checked.
            if is_link:
                current, st = self._followed(candidate), None
            else:
                current = candidate
        if not self._visible(current):
            raise FileNotFoundError("hidden path")
        return current, st

    def _last_step(self, folder: str, part: str) -> tuple[str, Optional[os.stat_result]]:
        """:meth:`locate`'s last step below the real ``folder`` (the common case of a
        manifest: its folder is cached, so this is all a file costs)."""
        candidate = folder + part if folder[-1:] == os.sep else folder + os.sep + part
        try:
            st: Optional[os.stat_result] = os.lstat(candidate)
        except OSError:
            st = None
        if st is not None and st.st_mode & _S_IFMT == _S_IFLNK:  # S_ISLNK, without a call
            candidate, st = self._followed(candidate), None
        # _visible, inline: this runs once per manifest line off the fast path.
        if not self.show_hidden and hidden_below(candidate, self.path):
            raise FileNotFoundError("hidden path")
        return candidate, st

    def _followed(self, link: str) -> str:
        """The real path a symlink inside the root leads to; it must stay inside."""
        real = os.path.realpath(link)
        if not is_within(real, self.path):
            raise OutsideRootError("path leaves the root")
        return real

    def stat(self, parts: tuple[str, ...]) -> tuple[str, os.stat_result]:
        """:meth:`resolve`, then ``os.stat``: raises ``FileNotFoundError`` if absent, and
        for anything but a regular file or a folder (fifos, devices: nothing to serve)."""
        real = self.resolve(parts)
        st = os.stat(real)
        if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
            raise FileNotFoundError("not a file or folder")
        return real, st

    def children(self, folder: str, walk_root: Optional[str] = None) -> list[Child]:
        """Visible entries of the real folder ``folder``, sorted by name, by the rules of
        :func:`walk_folder` (one level). Raises ``OSError`` if ``folder`` cannot be read."""
        walk = FolderWalk(
            folder if walk_root is None else walk_root,
            include_hidden=self.show_hidden,
            hidden_root=self.path,
            warn=False,
        )
        return [
            Child(found.name, found.path, found.st)
            for found in walk.children(folder, "")
        ]

    def walk(
        self, folder: str, arcname: str, walk_root: Optional[str] = None
    ) -> Iterator[tuple[str, Child]]:
        """``folder`` and everything visible below it, depth first by name, as
        ``(archive name, child)`` pairs; ``arcname`` names ``folder`` itself (which may
        also be a file: then it is all there is).

        This one walk (:func:`walk_folder`) decides what a folder's archive holds and
        what its listed size is, so the page and the download always agree.
        """
        for found in self.found(folder, arcname, walk_root):
            yield found.arcname, Child(found.name, found.path, found.st)

    def found(self, folder: str, arcname: str, walk_root: Optional[str] = None) -> Iterator[Found]:
        """:meth:`walk` as :func:`walk_folder` gives it, for adding to an archive."""
        return walk_folder(
            folder,
            arcname,
            walk_root=walk_root,
            include_hidden=self.show_hidden,
            hidden_root=self.path,
            warn=False,
        )

    def tree_size(self, folder: str, walk_root: Optional[str] = None) -> Optional[int]:
        """Total bytes of the files :meth:`walk` finds below ``folder``; ``None`` if a
        folder below cannot be read (its archive would fail too)."""
        try:
            return sum(c.st.st_size for _, c in self.walk(folder, "", walk_root) if not c.is_dir)
        except OSError:
            return None

    def _visible(self, real: str) -> bool:
        """False if a resolved path passes through a hidden name below the root."""
        return self.show_hidden or not hidden_below(real, self.path)
