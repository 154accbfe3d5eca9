"""The one path policy: what a name inside an archive may be, and which paths on disk a
request may reach.

Every rule about paths lives here, once, and the engine, the middleware and the app
import it rather than restating it:

- :func:`normalise_name`: the safe, canonical form of an archive name, so no archive we
  write can make an extractor create a file outside its target folder.
- :func:`split_url_path` and :class:`Root`: a decoded URL path is split on ``/`` only;
  ``..``, NUL and backslashes are refused outright; every step is resolved and must stay
  inside the root's real path, so a symlink that leaves the root is never followed.
  Percent-decoding is the server's job (PEP 3333) and nothing here decodes a second
  time, so ``%252e%252e`` stays a literal, harmless name.
- :func:`is_within`: the containment test every symlink check uses.
- Names starting with a dot are invisible in a :class:`Root` unless ``show_hidden``; the
  check runs on the resolved path too, so a visible link to a hidden folder is hidden.
- Folder contents: a symlink is followed only while its target stays inside the folder
  being walked; a folder is entered again only when it is not one of its own ancestors.

Security note: checks and use are separate system calls, so someone who can write into
the served tree could swap a component for a symlink in between. Serve trees that
untrusted local users cannot write to; remote clients can only name paths.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Optional, Union

from zipwsgi.errors import ArchiveNameError, OutsideRootError

__all__ = ["Child", "Root", "normalise_name", "is_within", "split_url_path"]

PathLike = Union[str, "os.PathLike[str]"]

_DRIVE = re.compile(r"^[A-Za-z]:")
# Anything that normalisation would change or refuse: a backslash, NUL, an empty, "." or
# ".." segment (or any segment starting with a dot, to keep the test simple), a leading
# slash or drive letter, a trailing slash. Names without any of these are already
# canonical and skip the split and join (one regex search instead of ~2 µs per name).
_NEEDS_WORK = re.compile(r"[\\\x00]|//|/\.|^[/.]|/$|^[A-Za-z]:")


def normalise_name(name: str, *, is_dir: bool = False) -> str:
    """Return the safe, canonical form of ``name``; raise ``ArchiveNameError`` if there is none.

    Backslashes become ``/`` (Windows users type them, Windows extractors obey them);
    leading ``/``, drive letters and ``.`` components are dropped because they carry no
    meaning inside an archive; ``..`` and NUL are refused outright because silently
    rewriting them would hide an attack or a bug in the caller.
    """
    if not isinstance(name, str):
        raise ArchiveNameError(f"archive name must be str, not {type(name).__name__}: {name!r}")
    if name and not _NEEDS_WORK.search(name):
        return name + "/" if is_dir else name
    if "\x00" in name:
        raise ArchiveNameError(f"archive name contains NUL: {name!r}")
    path = _DRIVE.sub("", name.replace("\\", "/"))
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ArchiveNameError(f"archive name escapes the extraction folder: {name!r}")
    if not parts:
        raise ArchiveNameError(f"archive name is empty after normalisation: {name!r}")
    joined = "/".join(parts)
    return joined + "/" if is_dir else joined


def is_within(path: str, root: str) -> bool:
    """True if the real path ``path`` is ``root`` or lies below it."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def split_url_path(url_path: str) -> tuple[str, ...]:
    """The segments of a decoded, ``/``-separated path; empty and ``.`` segments dropped.

    Raises :class:`OutsideRootError` for ``..``, NUL or a backslash anywhere: a request
    that tries to climb is refused, never quietly rewritten.
    """
    if "\x00" in url_path or "\\" in url_path:
        raise OutsideRootError("NUL or backslash in path")
    parts = tuple(url_path.split("/"))
    if "" in parts or "." in parts:
        parts = tuple(part for part in parts if part not in ("", "."))
    if ".." in parts:
        raise OutsideRootError("'..' in path")
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

    def split(self, url_path: str) -> tuple[str, ...]:
        """The segments of a decoded, ``/``-separated path, checked for traversal tricks.

        Raises :class:`OutsideRootError` for ``..``, NUL or a backslash anywhere, and
        :class:`FileNotFoundError` for a hidden segment (unless ``show_hidden``).
        """
        parts = split_url_path(url_path)
        if not self.show_hidden and any(_hidden(part) for part in parts):
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

        ``folders`` caches the resolved steps before the last one, for callers that
        resolve many paths at once (a manifest): files in one folder then cost one
        ``lstat`` each instead of one per path segment. Keep it for one batch only, so a
        folder swapped for a symlink later is seen.
        """
        current = self.path
        st: Optional[os.stat_result] = None
        last = len(parts) - 1
        for index, part in enumerate(parts):
            candidate = current + part if current.endswith(os.sep) else current + os.sep + part
            if folders is not None and index < last:
                known = folders.get(candidate)
                if known is not None:
                    current = known
                    continue
            try:
                st = os.lstat(candidate)
                is_link = stat.S_ISLNK(st.st_mode)
            except OSError:
                st, is_link = None, True  # missing or unreadable: let realpath decide
            # ``current`` is already real, so a step that is not a symlink stays real:
            # one lstat per step instead of realpath's lstat of every ancestor again.
            # A plain step below a real path inside the root stays inside (``split`` let
            # no "..", "/" or NUL through); only a symlink's target must be checked.
            if is_link:
                current, st = os.path.realpath(candidate), None
                if not is_within(current, self.path):
                    raise OutsideRootError("path leaves the root")
            else:
                current = candidate
            if folders is not None and index < last:
                folders[candidate] = current
        if not self._visible(current):
            raise FileNotFoundError("hidden path")
        return current, st

    def stat(self, parts: tuple[str, ...]) -> tuple[str, os.stat_result]:
        """:meth:`resolve`, then ``os.stat``: raises ``FileNotFoundError`` if absent, and
        for anything but a regular file or a folder (fifos, devices: nothing to serve)."""
        real = self.resolve(parts)
        st = os.stat(real)
        if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
            raise FileNotFoundError("not a file or folder")
        return real, st

    def children(self, folder: str, walk_root: Optional[str] = None) -> list[Child]:
        """Visible entries of the real folder ``folder``, sorted by name.

        Skipped: hidden names, and symlinks to hidden targets (unless ``show_hidden``);
        symlinks whose target leaves ``walk_root`` (default: ``folder``), the folder
        being zipped or listed; broken or unreadable entries; anything neither a regular
        file nor a folder. Raises ``OSError`` if ``folder`` itself cannot be read.
        """
        walk_root = folder if walk_root is None else walk_root
        with os.scandir(folder) as it:
            found = sorted(it, key=lambda d: d.name)
        result = []
        for entry in found:
            if not self.show_hidden and _hidden(entry.name):
                continue
            target = entry.path
            if entry.is_symlink():
                target = os.path.realpath(entry.path)
                if not is_within(target, walk_root) or not self._visible(target):
                    continue
            try:
                st = os.stat(target)
            except OSError:
                continue
            # Unreadable entries are left out rather than failing a zip halfway through.
            if stat.S_ISDIR(st.st_mode) and os.access(target, os.R_OK | os.X_OK):
                result.append(Child(entry.name, target, st))
            elif stat.S_ISREG(st.st_mode) and os.access(target, os.R_OK):
                result.append(Child(entry.name, target, st))
        return result

    def walk(
        self, folder: str, arcname: str, walk_root: Optional[str] = None
    ) -> Iterator[tuple[str, Child]]:
        """``folder`` and everything visible below it, depth first by name, as
        ``(archive name, child)`` pairs; ``arcname`` names ``folder`` itself (which may
        also be a file: then it is all there is).

        This one walk decides what a folder's zip holds and what its listed size is, so
        the page and the download always agree. A folder is entered again only when it
        is not one of its own ancestors (a symlink loop ends there).
        """
        walk_root = folder if walk_root is None else walk_root
        top = Child(os.path.basename(folder), folder, os.stat(folder))
        yield arcname, top
        if not top.is_dir:
            return
        stack = [(arcname, frozenset([_key(top.st)]), iter(self.children(folder, walk_root)))]
        while stack:
            name, ancestors, pending = stack[-1]
            child = next(pending, None)
            if child is None:
                stack.pop()
                continue
            child_name = f"{name}/{child.name}"
            if not child.is_dir:
                yield child_name, child
            elif _key(child.st) not in ancestors:
                yield child_name, child
                below = iter(self.children(child.real, walk_root))
                stack.append((child_name, ancestors | {_key(child.st)}, below))

    def tree_size(self, folder: str, walk_root: Optional[str] = None) -> Optional[int]:
        """Total bytes of the files :meth:`walk` finds below ``folder``; ``None`` if a
        folder below cannot be read (its zip would fail too)."""
        try:
            return sum(c.st.st_size for _, c in self.walk(folder, "", walk_root) if not c.is_dir)
        except OSError:
            return None

    def _visible(self, real: str) -> bool:
        """False if a resolved path passes through a hidden name below the root."""
        if self.show_hidden or real == self.path:
            return True
        return not any(_hidden(p) for p in os.path.relpath(real, self.path).split(os.sep))


def _key(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _hidden(name: str) -> bool:
    return name.startswith(".")


