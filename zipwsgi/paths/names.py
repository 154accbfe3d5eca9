"""Archive names: what a name inside an archive may be, so no archive we write can make an
extractor create a file outside its target folder."""

from __future__ import annotations

import re

from zipwsgi.errors import ArchiveNameError

__all__ = ["check_encoded_name", "normalise_name"]

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
