"""Folder walks by runs against walks one Found at a time: the same entries, bytes, errors.

``add_path`` hands ``add_found`` the walk's plain files in :class:`FileRun` pieces and
makes their entries by columns (``engine/columns.py``); ``add_found`` given one
:class:`Found` per file (what the app passes, and what every run falls back to) adds
them one by one. Every archive here is built both ways and compared byte for byte, and
the errors of both ways are compared too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Iterator

import pytest
from conftest import drain

from zipwsgi import TarStream, ZipStream
from zipwsgi.engine import entries as entries_module
from zipwsgi.errors import ArchiveTooLargeError, DuplicateNameError
from zipwsgi.formats.entry import Entry
from zipwsgi.formats.zip.layout import ZipLayout
from zipwsgi.paths import walk
from zipwsgi.paths.walk import FileRun, Found, walk_folder, walk_runs

MTIME = 1_700_000_000


def _tree(root: Path) -> Path:
    top = root / "top"
    names = ["a.txt", "b/c.txt", "b/d/e.bin", "b/empty", "b/zz.txt", "f.txt", ".hidden",
             "g/é.txt", "g/h\\i.txt", "g/" + "n" * 120]
    for index, name in enumerate(names):
        path = top / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"" if name.endswith("empty") else os.urandom(1 + index * 700))
        os.utime(path, (MTIME + index, MTIME + index))
    os.symlink("../a.txt", top / "b" / "link.txt")  # inside the walked folder: followed
    for folder in [top, *top.rglob("*")]:
        if folder.is_dir():
            os.utime(folder, (MTIME, MTIME))
    return top


def _one_by_one(items: Iterable[Found | FileRun]) -> Iterator[Found]:
    """The walk as Found items only: add_found's one-by-one path."""
    for item in items:
        if isinstance(item, FileRun):
            yield from item.found()
        else:
            yield item


def _build(cls: Any, top: Path, arcname: str, by_runs: bool, **options: Any) -> bytes:
    stream = cls(mtime=MTIME, **options)
    if by_runs:
        stream.add_path(str(top), arcname)
    else:
        found = walk_runs(str(top), arcname)
        if arcname == "":
            next(found)  # add_path skips the root's own entry at the archive root
        stream.add_found(_one_by_one(found))
    return drain(stream)


@pytest.mark.parametrize("arcname", ["top", "x/y", ""])
@pytest.mark.parametrize(("cls", "options"), [
    (ZipStream, {}), (ZipStream, {"precompute_crc": True}), (TarStream, {}),  # tar: no CRC
])
def test_runs_and_found_give_the_same_bytes(
    tmp_path: Path, cls: Any, arcname: str, options: dict[str, Any]
) -> None:
    top = _tree(tmp_path)
    by_runs = _build(cls, top, arcname, True, **options)
    assert by_runs == _build(cls, top, arcname, False, **options)
    stream = cls(mtime=MTIME, **options)
    stream.add_path(str(top), arcname)
    assert stream.size == len(by_runs)


def test_runs_cut_at_the_limit_walk_the_same(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    top = _tree(tmp_path)
    whole = [(f.arcname, f.folder, f.name, f.target) for f in walk_folder(str(top), "top")]
    monkeypatch.setattr(walk, "RUN_LIMIT", 2)
    runs = list(walk_runs(str(top), "top"))
    assert max(len(r.names) for r in runs if isinstance(r, FileRun)) == 2
    assert [(f.arcname, f.folder, f.name, f.target) for f in _one_by_one(runs)] == whole
    assert _build(ZipStream, top, "top", True) == _build(ZipStream, top, "top", False)


def _error(cls: Any, top: Path, by_runs: bool, before: Iterable[str]) -> tuple[Any, list[str]]:
    stream = cls(mtime=MTIME)
    for name in before:
        stream.add(b"x", name)
    with pytest.raises(Exception) as caught:
        if by_runs:
            stream.add_path(str(top), "top")
        else:
            stream.add_found(_one_by_one(walk_runs(str(top), "top")))
    return (type(caught.value), str(caught.value)), list(stream.names)


@pytest.mark.parametrize("before", [["top/b/c.txt"], ["top/f.txt/"], ["top/a.txt/x"]])
def test_a_clash_in_a_run_raises_as_one_by_one(tmp_path: Path, before: list[str]) -> None:
    top = _tree(tmp_path)
    by_runs = _error(ZipStream, top, True, before)
    assert by_runs == _error(ZipStream, top, False, before)
    assert by_runs[0][0] is DuplicateNameError


def test_a_size_out_of_range_raises_as_one_by_one(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    top = _tree(tmp_path)
    monkeypatch.setattr(entries_module, "MAX_ENTRY_SIZE", 2000)
    by_runs = _error(TarStream, top, True, [])
    assert by_runs == _error(TarStream, top, False, [])
    assert by_runs[0][0] is ArchiveTooLargeError


class _Refusing(ZipLayout):
    def prepare(self, entry: Entry) -> None:
        if entry.name.endswith("zz.txt"):
            raise ValueError(f"refused: {entry.name}")
        super().prepare(entry)


def test_a_layout_refusal_raises_as_one_by_one(tmp_path: Path) -> None:
    top = _tree(tmp_path)
    outcomes = []
    for by_runs in (True, False):
        stream = entries_module.ArchiveEntries(_Refusing())
        with pytest.raises(ValueError, match="refused: top/b/zz.txt"):
            if by_runs:
                stream.add_path(str(top), "top")
            else:
                stream.add_found(_one_by_one(walk_runs(str(top), "top")))
        outcomes.append([(e.name, e.layout) for e in stream._entries])
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][-1][0] == "top/b/link.txt"  # the files before it are in


@pytest.mark.parametrize("by_runs", [True, False])
def test_files_of_a_folder_share_one_folder_object(tmp_path: Path, by_runs: bool) -> None:
    """One FolderFiles per folder, not per file (memory per entry), both ways."""
    top = _tree(tmp_path)
    stream = entries_module.ArchiveEntries(ZipLayout())
    if by_runs:
        stream.add_path(str(top), "top")
    else:
        stream.add_found(_one_by_one(walk_runs(str(top), "top")))
    sources = {e.name: e.source for e in stream._entries}
    # Consecutive plain files of one folder (a subfolder or a link between two splits
    # them: another FolderFiles then, as before runs).
    assert sources["top/g/é.txt"].folder is sources["top/g/" + "n" * 120].folder
    shared = [s.folder for s in sources.values() if hasattr(s, "folder")]
    assert len(set(map(id, shared))) < len(shared)
    assert sources["top/b/c.txt"].path == str(top / "b" / "c.txt")
