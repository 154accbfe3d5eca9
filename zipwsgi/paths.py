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

from zipwsgi.errors import ArchiveNameError, OutsideRootError, PathTooLongError

__all__ = [
    "Child",
    "Found",
    "FolderWalk",
    "Root",
    "check_encoded_name",
    "is_within",
    "normalise_name",
    "split_url_path",
    "walk_folder",
]

PathLike = Union[str, "os.PathLike[str]"]

#: The longest URL path (in bytes, as the file system spells it) and the most segments a
#: request may name: Linux's PATH_MAX, and NAME_MAX as a depth nobody shares files at.
MAX_PATH_BYTES = 4096
MAX_PATH_DEPTH = 255

# Drive prefixes at the start of a segment, repeated ("C:C:x"): Windows' path joining
# (ntpath.join, and extractors built on it) restarts at a segment that starts with one.
_DRIVE = re.compile(r"^(?:[A-Za-z]:)+")
# Anything that normalisation would change or refuse: a backslash, NUL, an empty, "." or
# ".." segment (or any segment starting with a dot, to keep the test simple), a leading
# slash, a drive letter starting any segment, a trailing slash. Names without any of
# these are already canonical and skip the split and join (one regex search instead of
# the full rules). A property test checks that this agrees with the full rules.
_NEEDS_WORK = re.compile(r"[\\\x00]|//|/\.|^[/.]|/$|(?:^|/)[A-Za-z]:")
# What no encoded archive name may hold, whatever its charset: a backslash or NUL byte,
# a leading slash, a ".." segment, a segment starting with a drive letter.
_UNSAFE_BYTES = re.compile(rb"[\\\x00]|^/|(?:^|/)\.\.(?:/|$)|(?:^|/)[A-Za-z]:")


def normalise_name(name: str, *, is_dir: bool = False) -> str:
    """Return the safe, canonical form of ``name``; raise ``ArchiveNameError`` if there is none.

    Backslashes become ``/`` (Windows users type them, Windows extractors obey them);
    leading ``/``, drive letters and ``.`` components are dropped because they carry no
    meaning inside an archive; ``..`` and NUL are refused outright because silently
    rewriting them would hide an attack or a bug in the caller.

    Drive letters: a ``C:`` starting *any* segment is dropped, as often as it repeats
    (``/C:/x``, ``\\C:\\x``, ``./C:/x`` and ``C:C:/x`` all give ``x``; ``a/C:/x`` and
    ``a/C:x`` give ``a/x``), because a Windows extractor that joins segments with
    ``ntpath.join`` restarts at such a segment wherever it stands. Dropping rather than
    refusing keeps one rule for every position, and the result is a fixed point
    (normalising it again changes nothing). Other colons (``10:30.txt``) stay.

    The result is text; :func:`check_encoded_name` checks the bytes a format finally
    writes, which a legacy charset may have changed.
    """
    if not isinstance(name, str):
        raise ArchiveNameError(f"archive name must be str, not {type(name).__name__}: {name!r}")
    if name and not _NEEDS_WORK.search(name):
        return name + "/" if is_dir else name
    if "\x00" in name:
        raise ArchiveNameError(f"archive name contains NUL: {name!r}")
    parts = []
    for part in name.replace("\\", "/").split("/"):
        if part[1:2] == ":":
            part = _DRIVE.sub("", part)
        if part in ("", "."):
            continue
        if part == "..":
            raise ArchiveNameError(f"archive name escapes the extraction folder: {name!r}")
        parts.append(part)
    if not parts:
        raise ArchiveNameError(f"archive name is empty after normalisation: {name!r}")
    joined = "/".join(parts)
    return joined + "/" if is_dir else joined


def check_encoded_name(raw: bytes, name: str) -> bytes:
    """``raw`` (the bytes a format writes for the normalised ``name``) if they are as safe
    as the name; else :class:`ArchiveNameError`.

    A legacy charset can turn a harmless character into a dangerous byte: with
    ``raw_unicode_escape`` the name ``..∕x`` (U+2215) is written ``..\\u2215x``, whose
    backslash climbs out on Windows. So the bytes get the name rules again: no backslash
    or NUL, no leading ``/``, no ``..`` segment, no segment starting with a drive letter.
    """
    if _UNSAFE_BYTES.search(raw.rstrip(b"/")):
        raise ArchiveNameError(
            f"archive name is unsafe once encoded: {name[:80]!r} -> {raw[:80]!r}"
        )
    return raw


def is_within(path: str, root: str) -> bool:
    """True if the real path ``path`` is ``root`` or lies below it."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


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
    parts = tuple(url_path.split("/"))
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


def _key(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _hidden(name: str) -> bool:
    return name.startswith(".")


def hidden_below(real: str, root: str) -> bool:
    """True if the real path ``real`` passes through a dot-name below ``root``."""
    if real == root:
        return False
    return any(_hidden(p) for p in os.path.relpath(real, root).split(os.sep))


def surely_readable(st: os.stat_result) -> bool:
    """True when the mode bits alone promise we can read the file (world-readable, or
    ours and owner-readable): the common case then skips an ``access`` call per file.
    Anything else is asked of ``os.access``, which knows groups, ACLs and privileges."""
    if st.st_mode & stat.S_IROTH:
        return True
    return st.st_uid == _EUID and bool(st.st_mode & stat.S_IRUSR)


def readable(path: str, st: os.stat_result, folder: bool = False) -> bool:
    """Whether we may read ``path`` (and, for a folder, enter it)."""
    if folder:
        return os.access(path, os.R_OK | os.X_OK)
    return surely_readable(st) or os.access(path, os.R_OK)


_EUID = os.geteuid() if hasattr(os, "geteuid") else -1

# Folder walks stat names relative to a folder descriptor where the OS allows it: the
# kernel then resolves one name instead of the whole path.
_STAT_AT = os.stat in os.supports_dir_fd


class Found:
    """One entry a folder walk found: where it is, what it is called in the archive.

    ``folder`` is the real path of the folder holding it (ending in a separator; the same
    string object for every entry of one folder, so callers can share per-folder state)
    and ``name`` its name there; ``target`` is its real path when it was reached through
    a symlink (then ``folder + name`` is the link, not the data).
    """

    __slots__ = ("arcname", "folder", "name", "st", "target")

    def __init__(
        self, arcname: str, folder: str, name: str, st: os.stat_result, target: Optional[str]
    ) -> None:
        self.arcname = arcname
        self.folder = folder
        self.name = name
        self.st = st
        self.target = target

    @property
    def path(self) -> str:
        return self.target if self.target is not None else self.folder + self.name

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.st.st_mode)

    @property
    def plain(self) -> bool:
        """True when the archive name ends in the name on disk (no link, no rewriting)."""
        return self.target is None and self.arcname.endswith(self.name)


class FolderWalk:
    """The rules of one folder walk, the same for the engine, the middleware and the app.

    - Entries come sorted by name, folders before what they hold, so archives are
      deterministic and a page lists what the download holds.
    - A dot-name is skipped unless ``include_hidden``; so is a symlink whose target passes
      through a dot-name below ``hidden_root``.
    - A symlink is followed only while its real target stays inside ``root`` (the folder
      being walked); links leading out of it, broken links, unreadable entries and
      anything but regular files and folders are skipped, with a warning when ``warn``.
    - A folder is entered again only when it is not one of its own ancestors, which ends
      symlink loops without dropping a folder two sibling links legitimately reach.
    """

    __slots__ = ("root", "include_hidden", "hidden_root", "recursive", "warn")

    def __init__(
        self,
        root: str,
        *,
        include_hidden: bool = True,
        hidden_root: Optional[str] = None,
        recursive: bool = True,
        warn: bool = True,
    ) -> None:
        self.root = root
        self.include_hidden = include_hidden
        self.hidden_root = root if hidden_root is None else hidden_root
        self.recursive = recursive
        self.warn = warn

    def _skip(self, message: str, *args: object) -> None:
        if self.warn:
            # Imported here: logging costs RSS that walks which skip nothing never need.
            import logging

            logging.getLogger("zipwsgi").warning(message, *args)

    def children(self, folder: str, arcname: str) -> Iterator[Found]:
        """The entries of the real folder ``folder`` that the rules keep, sorted by name;
        ``arcname`` is the folder's own archive name. Raises ``OSError`` if the folder
        itself cannot be read."""
        prefix = folder if folder.endswith(os.sep) else folder + os.sep
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda d: d.name)
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY) if _STAT_AT else None
        try:
            for entry in entries:
                found = self._examine(entry, prefix, dir_fd, arcname)
                if found is not None:
                    yield found
        finally:
            if dir_fd is not None:
                os.close(dir_fd)

    def _examine(
        self, entry: os.DirEntry[str], prefix: str, dir_fd: Optional[int], arcname: str
    ) -> Optional[Found]:
        name = entry.name
        if not self.include_hidden and name.startswith("."):
            return None
        target: Optional[str] = None
        try:
            if entry.is_symlink():
                target = os.path.realpath(prefix + name)
                if not is_within(target, self.root):
                    self._skip("skipping symlink leaving %s: %s%s", self.root, prefix, name)
                    return None
                if not self.include_hidden and hidden_below(target, self.hidden_root):
                    return None
                st = os.stat(target)
            else:
                st = os.stat(name if dir_fd is not None else prefix + name, dir_fd=dir_fd)
        except OSError:
            self._skip("skipping unreadable or broken entry: %s%s", prefix, name)
            return None
        is_dir = stat.S_ISDIR(st.st_mode)
        if not (is_dir or stat.S_ISREG(st.st_mode)):
            return None  # fifos, devices, sockets: nothing to archive
        path = target if target is not None else prefix + name
        if not readable(path, st, folder=is_dir):
            self._skip("skipping unreadable entry: %s", path)
            return None
        child = f"{arcname}/{name}" if arcname else name
        if ("\\" in name or name[1:2] == ":") and arcname:
            child = normalise_name(child)  # a backslash or a drive letter ("C:x") on disk
        return Found(child, prefix, name, st, target)


def walk_folder(
    top: str,
    arcname: str,
    *,
    walk_root: Optional[str] = None,
    include_hidden: bool = True,
    hidden_root: Optional[str] = None,
    recursive: bool = True,
    warn: bool = True,
) -> Iterator[Found]:
    """``top`` (a real path) and, if it is a folder, everything below it that the rules of
    :class:`FolderWalk` keep, depth first by name; ``arcname`` names ``top`` itself.

    ``walk_root`` (default: ``top``) is the folder symlinks must stay inside.
    ``recursive=False`` lists ``top``'s own entries without entering its subfolders.
    """
    walk = FolderWalk(
        top if walk_root is None else walk_root,
        include_hidden=include_hidden,
        hidden_root=hidden_root,
        recursive=recursive,
        warn=warn,
    )
    parent, _, name = top.rstrip(os.sep).rpartition(os.sep)
    st = os.stat(top)
    yield Found(arcname, parent + os.sep, name, st, None)
    if not stat.S_ISDIR(st.st_mode):
        return
    # A stack of (ancestors, pending entries): an explicit stack, not recursion, so a
    # deep tree cannot hit the interpreter's recursion limit.
    stack = [(frozenset([_key(st)]), walk.children(top, arcname))]
    while stack:
        ancestors, pending = stack[-1]
        found = next(pending, None)
        if found is None:
            stack.pop()
            continue
        if not found.is_dir:
            yield found
            continue
        key = _key(found.st)
        if key in ancestors:
            continue
        yield found
        if recursive:
            stack.append((ancestors | {key}, walk.children(found.path, found.arcname)))
