"""The one folder walk, and the rules it shares with URL resolution: containment,
hidden names, readability."""

from __future__ import annotations

import operator
import os
import stat
from collections.abc import Iterator
from itertools import repeat
from typing import Optional

from zipwsgi.paths.names import normalise_name

__all__ = [
    "FileRun", "Found", "FolderWalk", "hidden_below", "is_within", "readable", "walk_folder",
    "walk_runs",
]


def is_within(path: str, root: str) -> bool:
    """True if the real path ``path`` is ``root`` or lies below it."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


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
_BY_NAME = operator.attrgetter("name")  # a C call per entry where a lambda is a Python one


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


class FileRun:
    """Plain files a folder walk found one after another in one folder, by columns: what
    :class:`Found` says of each, without an object per file. Plain: regular files,
    reached without a symlink, whose archive name is ``head`` and their name on disk.

    A walk that builds an archive takes these whole (``walk_runs``): no ``Found`` made
    per file, nor handed through two generators (10,000 files, CPU: the walk 2.56 ->
    2.30 µs a file), and the archive makes their entries by columns. ``found()`` gives
    them back for callers that want one ``Found`` each.
    """

    __slots__ = ("folder", "head", "names", "sts")

    def __init__(self, folder: str, head: str, names: list[str], sts: list[os.stat_result]) -> None:
        self.folder = folder  # the real path of their folder, ending in a separator
        self.head = head  # what their archive names start with: the folder's name and "/"
        self.names = names
        self.sts = sts

    def arcnames(self) -> list[str]:
        return list(map(self.head.__add__, self.names))

    def found(self) -> Iterator[Found]:
        """The same files, one :class:`Found` each."""
        return map(Found, self.arcnames(), repeat(self.folder), self.names, self.sts,
                   repeat(None))


#: Files a run holds at most: its stats stay alive until the run is added, so a folder
#: of a million files is handed over in bounded pieces.
RUN_LIMIT = 1024


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
        for item in self.children_runs(folder, arcname):
            if type(item) is FileRun:
                yield from item.found()
            else:
                yield item  # type: ignore[misc]

    def children_runs(self, folder: str, arcname: str) -> Iterator[Found | FileRun]:
        """:meth:`children`, with plain files handed over in :class:`FileRun` pieces."""
        prefix = folder if folder.endswith(os.sep) else folder + os.sep
        with os.scandir(folder) as it:
            entries = sorted(it, key=_BY_NAME)
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY) if _STAT_AT else None
        # The fast path: most entries are regular files, not links, not hidden, readable
        # by their mode bits, with a name that needs no rewriting. They are checked here,
        # inline, by the same rules _examine applies (which has the rest), and gathered
        # into runs: what it buys is a call of _examine, its Optional checks and a Found
        # less per file.
        head = arcname + "/" if arcname else ""
        skip_hidden = not self.include_hidden
        stat_at, is_file = os.stat, stat.S_ISREG  # locals: one lookup per file, not two
        names: list[str] = []
        sts: list[os.stat_result] = []
        try:
            for entry in entries:
                name = entry.name
                if dir_fd is not None and not entry.is_symlink():
                    try:
                        st = stat_at(name, dir_fd=dir_fd)
                    except OSError:
                        st = None
                    if (
                        st is not None
                        and is_file(st.st_mode)
                        and surely_readable(st)
                        and not (skip_hidden and name.startswith("."))
                        and "\\" not in name
                        and name[1:2] != ":"
                    ):
                        names.append(name)
                        sts.append(st)
                        if len(names) >= RUN_LIMIT:
                            yield FileRun(prefix, head, names, sts)
                            names, sts = [], []
                        continue
                found = self._examine(entry, prefix, dir_fd, arcname)
                if found is not None:
                    if names:
                        yield FileRun(prefix, head, names, sts)
                        names, sts = [], []
                    yield found
            if names:
                yield FileRun(prefix, head, names, sts)
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
    for item in walk_runs(top, arcname, walk_root=walk_root, include_hidden=include_hidden,
                          hidden_root=hidden_root, recursive=recursive, warn=warn):
        if type(item) is FileRun:
            yield from item.found()
        else:
            yield item  # type: ignore[misc]


def walk_runs(
    top: str,
    arcname: str,
    *,
    walk_root: Optional[str] = None,
    include_hidden: bool = True,
    hidden_root: Optional[str] = None,
    recursive: bool = True,
    warn: bool = True,
) -> Iterator[Found | FileRun]:
    """:func:`walk_folder`, plain files in :class:`FileRun` pieces (the same entries, in
    the same order): what archives are built from."""
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
    stack = [(frozenset([_key(st)]), walk.children_runs(top, arcname))]
    is_dir = stat.S_ISDIR
    while stack:
        ancestors, pending = stack[-1]
        for found in pending:  # a for loop, not next() per entry: files go straight out
            if type(found) is FileRun or not is_dir(found.st.st_mode):  # type: ignore[union-attr]
                yield found
                continue
            key = _key(found.st)  # type: ignore[union-attr]
            if key in ancestors:
                continue
            yield found
            if recursive:
                stack.append((ancestors | {key}, walk.children_runs(found.path, found.arcname)))  # type: ignore[union-attr]
                break  # its entries first; this folder's generator resumes after them
        else:
            stack.pop()
