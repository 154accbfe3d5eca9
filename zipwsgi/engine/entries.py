"""Adding entries to an archive: files, bytes, folders walked, manifest lines.

Everything here happens before the first byte and opens nothing: names are normalised
and checked for clashes, sources are described (size, mtime, mode), and the format's
layout prepares each entry. What the entries become on the wire is the stream's job
(:mod:`zipwsgi.engine.stream`).
"""

from __future__ import annotations

import itertools
import os
import stat
import weakref
from itertools import repeat
from operator import add
from typing import Any, Iterable, Iterator, Optional, Sequence, Union

from zipwsgi.engine.columns import file_entries, prepare_all, walked_entries
from zipwsgi.engine.compression import Level, check_level, crc32
from zipwsgi.engine.deferred import DeferredFile
from zipwsgi.engine.files import FileSource, FolderFile, FolderFiles
from zipwsgi.engine.names import (
    AddedPaths,
    CheckedNames,
    check_unique,
    is_root_name,
    record_folders,
    renamed_found,
)
from zipwsgi.engine.options import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_MTIME,
    Compression,
    check_compression,
    check_validator,
)
from zipwsgi.engine.plan import Plan
from zipwsgi.engine.sources import Source, source_for
from zipwsgi.errors import ArchiveTooLargeError, SourceUnavailableError
from zipwsgi.formats.entry import MAX_ENTRY_SIZE, STORED, ArchiveLayout, Entry
from zipwsgi.formats.zip.layout import DEFAULT_DIR_MODE, DEFAULT_FILE_MODE
from zipwsgi.paths import Found, normalise_name
from zipwsgi.paths.walk import FileRun, walk_runs

__all__ = ["ArchiveEntries"]

PathLike = Union[str, "os.PathLike[str]"]


class ArchiveEntries:
    """The entries of an archive and the ways to add them: every name checked, every
    source described, nothing opened. :class:`~zipwsgi.engine.stream.ArchiveStream`
    builds the plan and the passes on top."""

    def __init__(
        self,
        layout: ArchiveLayout,
        *,
        compression: Compression = STORED,
        level: Level = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        mtime: Optional[float] = None,
        allow_duplicates: bool = False,
        workers: Optional[int] = None,
        precompute_crc: bool = False,
        validator: str = "local",
    ) -> None:
        self._layout = layout
        self.precompute_crc = precompute_crc
        self.validator = check_validator(validator)
        self.compression = check_compression(compression)
        self.level = check_level(level)
        self.workers = workers
        self.chunk_size = chunk_size
        self.default_mtime = DEFAULT_MTIME if mtime is None else int(mtime)
        self.allow_duplicates = allow_duplicates
        self._entries: list[Entry] = []
        # A dict, not a set: about a third of the memory per name for the same lookups.
        self._names: dict[str, None] = {}
        # The folders the names imply: one per folder, not per name.
        self._folders: dict[str, None] = {}
        # Modes and layout bits repeat: one int object per value, not per entry (28 bytes).
        self._shared_ints: dict[Any, Any] = {}
        self._plan: Optional[Plan] = None
        # The passes running over these entries (the stream's), closed with them.
        self._passes: weakref.WeakSet[Any] = weakref.WeakSet()
        self._added = AddedPaths()
        # True once a DeferredFile is added: its mtime is known only when streamed.
        self._deferred = False
        # add_file's last folder whose names are known not to be files, and the count of names then.
        self._parents_ok: tuple[str, int] = ("", -1)

    # -- building ---------------------------------------------------------------------------

    def add(
        self,
        data: Any,
        arcname: str,
        *,
        size: Optional[int] = None,
        mtime: Optional[float] = None,
        mode: Optional[int] = None,
        crc: Optional[int] = None,
        compression: Optional[Compression] = None,
        level: Optional[int] = None,
    ) -> None:
        """Add one file entry.

        ``data`` may be bytes, str (UTF-8), a binary file object, an iterable of bytes, a
        zero-argument callable returning any of those (called only when streamed), or a
        :class:`~zipwsgi.sources.Source`. ``size`` makes the archive length exact for data
        whose length cannot be seen (iterables, callables); ``crc`` (a known CRC-32) lets
        a stored entry go without a data descriptor.
        """
        source = source_for(data, size)
        if crc is None and isinstance(data, (bytes, bytearray, memoryview, str)):
            crc = crc32(data.encode("utf-8") if isinstance(data, str) else data)
        self._append(
            normalise_name(arcname),
            source=source,
            size=source.size,
            mtime=mtime if mtime is not None else source.mtime,
            mode=mode if mode is not None else source.mode,
            crc=crc,
            compression=compression,
            level=level,
        )

    def add_file(self, source: FileSource, arcname: str, *, crc: Optional[int] = None) -> None:
        """:meth:`add` for a file already described by a :class:`FileSource`, with its
        size and mtime and the default mode: what a manifest line gives. The same
        checks as :meth:`add` (name, uniqueness, CRC and size ranges), without sorting
        out what kind of data it is: a manifest adds one per line before the first byte."""
        if type(source) is DeferredFile:
            self._deferred = True
        name = normalise_name(arcname)
        # Files of one folder usually come one after another: their folder's names were
        # checked for the first one (none is a file), and if nothing but these files was
        # added since (the count of names says so), they still are.
        parent = name.rpartition("/")[0]
        names = self._names
        checked = self._parents_ok == (parent, len(names))
        self._append(name, source, source.size, source.mtime, None, crc, None, None,
                     parents_checked=checked)
        self._parents_ok = (parent, len(names))

    def check_files(self, arcnames: Sequence[str]) -> Optional[CheckedNames]:
        """The names :meth:`add_files` takes, checked at once (nothing added); None if
        some needs normalising or would be refused: :meth:`add_file` says which, why."""
        return CheckedNames.check(self, arcnames, self._names, self._folders,
                                  self.allow_duplicates)

    def add_files(self, checked: CheckedNames, sources: Sequence[FileSource],
                  crcs: Sequence[Optional[int]]) -> None:
        """:meth:`add_file` for each name :meth:`check_files` gave, in order: the same
        entries. Speed trick (10,000 manifest lines: 9 ms against 48 through add_file):
        the names were checked at once, and each column of the entries (size, mtime,
        CRC, ...), making them and preparing them are C-level ``map`` calls. Anything
        odd (a CRC or size out of range, a layout that refuses) goes through add_file."""
        if checked.entries is not self or checked.count != len(self._names):
            raise ValueError("names checked for another archive state; check again")
        names = checked.names
        if DeferredFile in set(map(type, sources)):
            self._deferred = True
        shared = self._shared_ints
        entries = file_entries(names, sources, crcs, self.compression, self.level,
                               self.precompute_crc, self.default_mtime,
                               shared.setdefault(DEFAULT_FILE_MODE, DEFAULT_FILE_MODE), shared)
        if entries is None or not prepare_all(self._layout, entries, shared):
            for name, source, crc in zip(names, sources, crcs):
                self.add_file(source, name, crc=crc)
            return
        self._entries.extend(entries)
        self._names.update(dict.fromkeys(names))
        self._folders.update(dict.fromkeys(checked.folders))
        self._plan = None

    def mkdir(
        self, arcname: str, *, mtime: Optional[float] = None, mode: Optional[int] = None
    ) -> None:
        """Add a directory entry (it keeps empty folders and their permissions)."""
        self._append(
            normalise_name(arcname, is_dir=True),
            source=None,
            size=0,
            mtime=mtime,
            mode=mode,
            crc=0,
            compression=STORED,
            level=None,
            is_dir=True,
        )

    def add_path(
        self,
        path: PathLike,
        arcname: Optional[str] = None,
        *,
        recursive: bool = True,
        include_hidden: bool = True,
        mtime: Optional[float] = None,
        mode: Optional[int] = None,
        crc: Optional[int] = None,
        compression: Optional[Compression] = None,
        level: Optional[int] = None,
    ) -> None:
        """Add a file, or a directory with everything below it (sorted, so deterministic).

        ``arcname`` defaults to the path's last component; ``""`` (or ``"/"``) puts a
        folder's contents at the root of the archive. ``recursive=False`` adds a folder's
        own directory entry alone (zipstream-ng's ``recurse=False``), for callers that
        walk the tree themselves and add each entry.

        ``path`` itself may be a symlink: it is followed, as ``zipfile.write()`` does,
        resolved once when added (the archive name stays the link's). Symlinks inside a
        walked directory are followed only while their target stays inside that
        directory; links pointing out of it (and broken links) are skipped.
        A path inside a folder walked already, or a folder around a path added already,
        raises :class:`~zipwsgi.errors.NestedPathError` naming both: its files would
        otherwise be in the archive twice under two names.
        """
        path = os.fspath(path)
        if arcname is None:
            arcname = os.path.basename(os.path.normpath(os.path.abspath(path)))
        try:
            st = os.stat(path)
        except OSError as exc:
            raise SourceUnavailableError(f"cannot stat {path}: {exc.strerror}") from exc
        is_dir = stat.S_ISDIR(st.st_mode)
        real = os.path.realpath(path)
        walks = is_dir and recursive
        self._added.check(path, real, walks)
        if walks:
            if is_root_name(arcname):
                # The folder's own entry would have an empty name: skip it, and normalise
                # its children's names here (the walk only does so below a named folder).
                found: Iterable[Found | FileRun] = renamed_found(
                    itertools.islice(walk_runs(real, "", include_hidden=include_hidden), 1, None)
                )
            else:
                found = walk_runs(real, normalise_name(arcname), include_hidden=include_hidden)
            self.add_found(found, compression=compression, level=level)
        elif is_dir:
            self.mkdir(
                arcname,
                mtime=st.st_mtime if mtime is None else mtime,
                mode=st.st_mode if mode is None else mode,
            )
        else:
            # The real path, not the link: FileSource opens with O_NOFOLLOW (so a link
            # swapped in after planning is refused), which would fail a link the caller
            # named on purpose only once the response had started (issue #16).
            self.add(
                FileSource(real, st),
                arcname,
                mtime=mtime,
                mode=mode if mode is not None else st.st_mode,
                crc=crc,
                compression=compression,
                level=level,
            )
        self._added.remember(path, real, walks)

    def add_found(
        self,
        found: Iterable[Found | FileRun],
        *,
        compression: Optional[Compression] = None,
        level: Level = None,
    ) -> None:
        """Add what a folder walk (:func:`zipwsgi.paths.walk_folder`, or ``walk_runs``)
        found, folders as directory entries, files with the stat the walk made (no
        second stat)."""
        # The fast path: runs of plain files of one folder (FileRun, from walk_runs) made
        # by columns (engine/columns.py: what it buys, measured), with what every file
        # of the walk shares settled once. Walked names are normal already and their
        # parents are folders this walk has added, so only the names themselves can
        # clash: checked per run; a clash, a size out of range or a layout that refuses
        # sends the run one by one through the loop body below, which raises.
        method = self.compression if compression is None else check_compression(compression)
        deflate_level = self.level if level is None else check_level(level)
        ahead = self.precompute_crc and method == STORED  # files are reopenable
        names, implied, shared = self._names, self._folders, self._shared_ints
        unique = not self.allow_duplicates
        append, prepare = self._entries.append, self._layout.prepare
        folders: Optional[FolderFiles] = None
        folder_of: Optional[str] = None
        # A stack of iterators, as walk_folder has: a run refused by the columns is
        # replayed one Found at a time by the loop body below (the one copy of it), in
        # place, then the walk resumes.
        pending: list[Iterator[Found | FileRun]] = [iter(found)]
        while pending:
            for item in pending[-1]:
                if isinstance(item, FileRun):
                    if item.names:
                        arcnames, sizes, entries = walked_entries(item, method, deflate_level,
                                                                  ahead, shared)
                        if (
                            max(sizes) <= MAX_ENTRY_SIZE
                            and not (unique and (
                                not names.keys().isdisjoint(arcnames)
                                or not implied.keys().isdisjoint(arcnames)
                                or not names.keys().isdisjoint(map(add, arcnames, repeat("/")))
                            ))
                            and prepare_all(self._layout, entries, shared)
                        ):
                            self._entries.extend(entries)
                            names.update(dict.fromkeys(arcnames))
                            continue
                        pending.append(item.found())
                        break
                    continue
                # One Found (what the app hands over, and a replayed run): what _append
                # does for a file, inline, with the walk's shared values. Only the name
                # itself can clash; a clash or an impossible size goes through _append,
                # which raises. (Measured, the app's 10,000 Found items: 1.75 µs a file,
                # against 2.1 through a method call and a FolderFiles per file.)
                st = item.st
                mode = st.st_mode
                if stat.S_ISDIR(mode):
                    self.mkdir(item.arcname, mtime=st.st_mtime, mode=mode)
                    continue
                name = item.arcname
                if item.target is None and name.endswith(item.name):  # Found.plain
                    # Walked files keep no path of their own: the folder's prefix, shared
                    # by all its files, plus the end of the archive name rebuild it.
                    if item.folder is not folder_of:
                        folder_of = item.folder
                        folders = FolderFiles(item.folder, len(name) - len(item.name))
                    source: Source = FolderFile(folders, name, st)  # type: ignore[arg-type]
                else:
                    source = FileSource(item.path, st)
                size = st.st_size
                clash = name in names or name + "/" in names or name in implied
                # A name the walk renamed (a backslash or a drive letter on disk: "a\\b"
                # became folders, "a/b") has parents this walk never added: they are
                # checked and recorded like any added name's.
                renamed = not name.endswith(item.name)
                if (unique and clash) or size > MAX_ENTRY_SIZE or renamed:
                    self._append(name, source, size, st.st_mtime, mode, None, compression,
                                 level, parents_checked=not renamed)
                    continue
                entry = Entry(name, False, source, size, int(st.st_mtime),
                              shared.setdefault(mode, mode), method, deflate_level,
                              None if size else 0,  # the CRC of nothing is known up front
                              ahead and size != 0)
                prepare(entry)
                bits = entry.layout
                if type(bits) is int:
                    entry.layout = shared.setdefault(bits, bits)
                append(entry)
                names[name] = None
            else:
                pending.pop()
        self._plan = None

    def _append(
        self,
        name: str,
        source: Optional[Source],
        size: Optional[int],
        mtime: Optional[float],
        mode: Optional[int],
        crc: Optional[int],
        compression: Optional[Compression],
        level: Level,
        is_dir: bool = False,
        parents_checked: bool = False,
    ) -> None:
        if not self.allow_duplicates:
            check_unique(self._names, name, is_dir, parents_checked, self._folders)
        if crc is not None and not 0 <= crc <= 0xFFFFFFFF:
            raise ValueError(f"crc out of range for {name!r}: {crc!r}")
        if size is not None and not 0 <= size <= MAX_ENTRY_SIZE:
            raise ArchiveTooLargeError(
                f"size out of range for {name!r}: {size!r} (0 to {MAX_ENTRY_SIZE} bytes)"
            )
        if size == 0 and crc is None:
            crc = 0  # the CRC of nothing is known up front: no data descriptor needed
        if mode is None:
            mode = DEFAULT_DIR_MODE if is_dir else DEFAULT_FILE_MODE
        compression = self.compression if compression is None else check_compression(compression)
        entry = Entry(
            name,
            is_dir,
            source,
            size,
            int(mtime) if mtime is not None else self.default_mtime,
            self._shared_ints.setdefault(mode, mode),
            compression,
            self.level if level is None else check_level(level),
            crc,
            crc_ahead=(
                self.precompute_crc
                and crc is None
                and not is_dir
                and size is not None
                and compression == STORED
                and source is not None
                and source.reopenable
            ),
        )
        self._layout.prepare(entry)
        if type(entry.layout) is int:
            entry.layout = self._shared_ints.setdefault(entry.layout, entry.layout)
        self._entries.append(entry)
        self._names[name] = None
        if "/" in name.rstrip("/"):
            record_folders(self._folders, name)
        self._plan = None
