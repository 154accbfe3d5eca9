"""Entries made by columns: the fast paths of ``add_found`` and ``add_files``.

A folder walk (``paths.walk.walk_runs``) hands most files over in runs of plain files of
one folder (:class:`~zipwsgi.paths.walk.FileRun`: regular, reached without a symlink,
the archive name the folder's and the name on disk), as names and stats, with no
object per file. Their entries are made column by column (names, sizes, modes, mtimes,
sources, the entries themselves, their preparation), each one ``map`` call, as
:meth:`~zipwsgi.engine.entries.ArchiveEntries.add_files` does for manifest lines. What
is left per file is the ``FolderFile`` and ``Entry`` constructors and ``prepare``.
Measured on 10,000 files: see ``ArchiveEntries.add_found``.

Everything else (folders, links, renamed names, a run with a clash or a size out of
range, a layout that refuses) goes one by one through the general code, so errors are
the same, raised at the same entry.
"""

from __future__ import annotations

from collections import deque
from itertools import repeat
from operator import attrgetter
from typing import Any

from zipwsgi.engine.files import FolderFile, FolderFiles
from zipwsgi.formats.entry import ArchiveLayout, Entry, Level
from zipwsgi.paths.walk import FileRun

__all__ = ["prepare_all", "walked_entries"]

_ST_MODE, _ST_SIZE, _ST_MTIME = attrgetter("st_mode"), attrgetter("st_size"), attrgetter("st_mtime")
_LAYOUT = attrgetter("layout")
#: The CRC known before reading, by size: that of nothing (0) for empty files.
_KNOWN_CRC = {0: 0}.get


def walked_entries(
    run: FileRun, method: str, level: Level, ahead: bool, shared: dict[Any, Any]
) -> tuple[list[str], list[int], list[Entry]]:
    """``(names, sizes, entries)`` of a run of plain files: the entries ``add_found``
    makes one by one (for Found items), not prepared, not checked (the
    caller checks the names and sizes, then prepares). ``shared`` holds one int object
    per mode."""
    names = run.arcnames()
    sts = run.sts
    folder = FolderFiles(run.folder, len(run.head))
    sizes = list(map(_ST_SIZE, sts))
    modes = list(map(_ST_MODE, sts))
    entries = list(map(
        Entry, names, repeat(False), map(FolderFile, repeat(folder), names, sts), sizes,
        map(int, map(_ST_MTIME, sts)), map(shared.setdefault, modes, modes), repeat(method),
        repeat(level), map(_KNOWN_CRC, sizes),
        map(bool, sizes) if ahead else repeat(False),  # walked files are reopenable
    ))
    return names, sizes, entries


def prepare_all(layout: ArchiveLayout, entries: list[Entry], shared: dict[Any, Any]) -> bool:
    """``layout.prepare`` each entry, int layouts made the archive's shared objects (one
    per value); False, with nothing to keep, if the layout refused one. For the entries
    ``add_found`` and ``add_files`` make by columns; the layouts are rewritten only when
    some entry holds another int object than the shared one (the zip and tar fast
    ``prepare`` hand out module constants), which spared add_files ~0.03 µs an entry."""
    try:
        deque(map(layout.prepare, entries), 0)
    except Exception:  # noqa: BLE001 -- the caller goes one by one: same error, same entry
        return False
    layouts = list(map(_LAYOUT, entries))
    kinds = set(layouts)
    if all(type(bits) is int for bits in kinds):
        same = {bits: shared.setdefault(bits, bits) for bits in kinds}
        # Rewritten only where some entry holds another object than the shared one (the
        # fast prepare hands out module constants: nothing to do, one set of ids less).
        if set(map(id, layouts)) != set(map(id, same.values())):
            deque(map(setattr, entries, repeat("layout"), map(same.__getitem__, layouts)), 0)
    else:
        for entry in entries:
            bits = entry.layout
            if type(bits) is int:
                entry.layout = shared.setdefault(bits, bits)
    return True
