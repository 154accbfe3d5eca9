"""What an archive holds already: its names, and the paths ``add_path`` was given.

Both guard against an archive that extracts wrong without any error: two entries of one
name (readers keep one, silently), a file where a folder must be, or the same files
twice under two names because a folder and something inside it were both added.
"""

from __future__ import annotations

import os
from typing import Container

from zipwsgi.errors import DuplicateNameError, NestedPathError

__all__ = ["AddedPaths", "check_unique"]


def check_unique(
    names: Container[str],
    name: str,
    is_dir: bool,
    parents_checked: bool = False,
    folders: Container[str] = (),
) -> None:
    """Refuse names that extractors would silently merge or fail on.

    Exact duplicates, a file and a folder of the same name (``a`` and ``a/``), a file
    standing where a later name needs a folder (``a`` then ``a/b``), and a file where an
    earlier name made a folder (``a/b`` then ``a``: ``folders`` holds the folders that
    names added so far imply, see :func:`record_folders`).
    """
    if name in names:
        raise DuplicateNameError(f"duplicate archive name: {name!r}")
    twin = name[:-1] if is_dir else name + "/"
    if twin in names:
        raise DuplicateNameError(f"{name!r} clashes with {twin!r}: a file and a folder")
    if not is_dir and name in folders:
        raise DuplicateNameError(f"{name!r} is a folder already (it holds earlier names)")
    if parents_checked:
        return
    parent = name.rstrip("/")
    while "/" in parent:
        parent = parent.rsplit("/", 1)[0]
        if parent in names:
            raise DuplicateNameError(f"{name!r} needs {parent!r} to be a folder, not a file")


def record_folders(folders: dict[str, None], name: str) -> None:
    """Note the folders ``name`` implies (``a/b/c`` implies ``a`` and ``a/b``). Stops at
    the first one noted already: its parents were noted with it, so each folder costs
    one lookup however many names it holds."""
    parent = name.rstrip("/")
    while "/" in parent:
        parent = parent.rsplit("/", 1)[0]
        if parent in folders:
            return
        folders[parent] = None


class AddedPaths:
    """The real paths ``add_path`` was given: folders it walked, and every folder above
    any path it added (what a folder walked later would contain)."""

    __slots__ = ("_walked", "_above")

    def __init__(self) -> None:
        self._walked: dict[str, str] = {}
        self._above: dict[str, str] = {}

    def check(self, path: str, real: str, walks: bool) -> None:
        """Refuse ``path`` (real path ``real``) if a folder walked already holds it, or
        if it is a folder to walk that holds a path added already. Costs one dict lookup
        per folder above ``real``: no scan of what was added."""
        if self._walked:
            at = real
            while True:
                given = self._walked.get(at)
                if given is not None:
                    where = "is" if at == real else "lies inside"
                    raise NestedPathError(
                        f"{path!r} {where} {given!r}, which add_path walked already: its "
                        "files would be in the archive twice. Add the folder once, or "
                        "each entry with recursive=False."
                    )
                parent = os.path.dirname(at)
                if parent == at:
                    break
                at = parent
        if walks:
            inside = self._above.get(real)
            if inside is not None:
                raise NestedPathError(
                    f"{path!r} contains {inside!r}, added already: its files would be in "
                    "the archive twice. Add the folder once, or each entry with "
                    "recursive=False."
                )

    def remember(self, path: str, real: str, walks: bool) -> None:
        if walks:
            self._walked[real] = path
        at = real
        while True:
            parent = os.path.dirname(at)
            if parent == at or parent in self._above:
                break  # the folders above it were recorded with it
            self._above[parent] = path
            at = parent
