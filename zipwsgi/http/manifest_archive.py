"""From a mod_zip manifest to an archive stream, every entry checked before the first byte.

The manifest is the backend's private message: what goes wrong with it is logged in
full (line, location, name, reason) and answered with a generic :class:`Refusal`, whose
public text names the line number and the kind of problem, never a location or a name.

Locations under a root are files on disk, confined by :mod:`zipwsgi.paths` and stat-ed
here (one ``lstat`` each in the common case); any other location becomes a
:class:`~zipwsgi.http.subrequest.SubrequestSource` that asks the app when streamed.
With ``verify_sizes="lazy"`` a location's text is checked here (no ``..``, NUL or
backslash, under a root) and the file is found, confined and stat-ed only when the
stream reaches it (:mod:`zipwsgi.engine.deferred`): the manifest's sizes make the plan.

A manifest of plain file lines (nearly all of them) is built by columns first
(``_add_plain``): the same checks over whole lists, with C-level loops. Whatever that
path cannot prove plain (a symlink, a missing file, a name to normalise, an error to
explain) is built again line by line, so every refusal names its line as before.
"""

from __future__ import annotations

import codecs
import os
import stat
from itertools import repeat
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional

from zipwsgi.engine.deferred import DeferredFile
from zipwsgi.engine.files import FileSource
from zipwsgi.engine.options import check_verify_sizes
from zipwsgi.engine.stream import ArchiveStream
from zipwsgi.errors import (
    ArchiveNameError,
    ArchiveTooLargeError,
    ManifestError,
    OutsideRootError,
    PathTooLongError,
    Refusal,
    SubrequestError,
)
from zipwsgi.http.manifest import (
    ManifestColumns,
    ManifestEntry,
    parse_columns,
    parse_manifest_lines,
)
from zipwsgi.http.roots import Roots, RootsFinder
from zipwsgi.http.subrequest import SubrequestSource, subrequest_environ
from zipwsgi.paths import readable, split_url_path

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

__all__ = ["ManifestArchive", "refuse_entry"]

#: Sub-requests whose check must run before the first byte: (manifest line, source).
Subrequests = list[tuple[ManifestEntry, SubrequestSource]]


class ManifestArchive:
    """Builds archive streams from manifest bodies for one middleware configuration.

    ``new_stream(fmt, charset)`` makes the empty stream of the right format (``"zip"``,
    ``"tar"``, ``"tar.gz"``) and options, so this class knows manifests and paths, not
    formats: every format takes the same manifest, and a tar ignores the CRC column.
    """

    def __init__(
        self,
        app: WSGIApplication,
        roots: Roots,
        new_stream: Callable[[str, Optional[str]], ArchiveStream],
        *,
        max_entries: int,
        max_bytes: int,
        allow_subrequests: bool,
        verify_sizes: str = "eager",
    ) -> None:
        self.app = app
        self.roots = roots
        self.new_stream = new_stream
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.allow_subrequests = allow_subrequests
        self.lazy = check_verify_sizes(verify_sizes) == "lazy"

    def build(
        self,
        body: bytes,
        charset_header: Optional[str],
        pass_headers_header: Optional[str],
        environ: Mapping[str, Any],
        *,
        fmt: str = "zip",
    ) -> tuple[ArchiveStream, Subrequests]:
        """The ``fmt`` stream for a manifest body; raises :class:`Refusal` naming the
        bad line.

        Every file is stat-ed here, before the first byte (``verify_sizes="lazy"``: its
        location is checked by its text here, and the file is found and stat-ed when the
        stream reaches it, see :mod:`zipwsgi.engine.deferred`); sub-request entries are
        only described (the app is asked when the stream reaches them, or by the check).
        """
        charset = _charset(charset_header)
        encoding = _name_encoding(body, charset)
        try:
            columns = parse_columns(body, max_entries=self.max_entries,
                                    max_bytes=self.max_bytes, name_encoding=encoding)
            entries = self._parse(body, encoding) if columns is None else []
        except ManifestError as exc:
            raise Refusal(f"bad manifest: {exc}", _manifest_public(exc)) from None
        pass_headers = (pass_headers_header or "").split(":")
        try:
            stream = self.new_stream(fmt, charset)
        except (LookupError, ValueError) as exc:
            raise Refusal(f"bad manifest: X-Archive-Charset: {exc}", "bad manifest") from None
        if columns is not None:
            if self._add_plain(stream, columns):
                return stream, []
            entries = columns.entries()
        subrequests: Subrequests = []
        folders: dict[str, str] = {}  # resolved folders, shared by this manifest's files
        add_file = stream.add_file
        finder = RootsFinder(self.roots) if self.lazy else None
        for entry in entries:
            try:
                if entry.is_directory:
                    stream.mkdir(entry.name)
                    continue
                if finder is not None:
                    if self._under_root(entry):
                        add_file(DeferredFile(finder, entry.location, entry.size), entry.name,
                                 crc=entry.crc)
                        continue
                elif (located := self._locate(entry, folders)) is not None:
                    path, st = located
                    add_file(FileSource(path, _checked_stat(entry, path, st)), entry.name,
                             crc=entry.crc)
                    continue
                if not self.allow_subrequests:
                    raise Refusal("under no root, and sub-requests are disabled",
                                  "location outside the allowed folders")
                sub_environ = subrequest_environ(environ, entry.location, entry.query,
                                                 pass_headers)
                source = SubrequestSource(self.app, sub_environ, entry.size, entry.location)
                stream.add(source, entry.name, size=entry.size, crc=entry.crc)
                subrequests.append((entry, source))
            except Refusal as exc:
                raise refuse_entry(entry, exc.detail, exc.public) from None
            except (ArchiveNameError, OutsideRootError, ValueError) as exc:
                raise refuse_entry(entry, str(exc), public_reason(exc)) from None
        _plan(stream)
        return stream, subrequests

    def _add_plain(self, stream: ArchiveStream, columns: ManifestColumns) -> bool:
        """The build's fast path: add every line of a manifest of plain file lines in one
        go and plan, or add nothing and return False (the line-by-line build then gives
        the same archive, or the same refusal for the same line).

        Speed trick, measured (bench_first_byte.py, 10,000 lines in 20 folders): the
        names are checked in one go (:meth:`~ArchiveEntries.check_files`), the locations
        by their text in one go (:meth:`Roots.plain_folders`), each folder resolved
        once, and the per-line work is C-level maps: join the path, ``lstat`` it, compare
        kinds, sizes and read bits as whole lists; a symlink is followed as
        :meth:`_locate` follows it. Anything else (a missing or unreadable file, a wrong
        size, a link that is refused) goes the line-by-line way from the start.
        """
        checked = stream.check_files(columns.names)
        if checked is None:
            return False
        plain = self.roots.plain_folders(columns.locations)
        if plain is None:
            return False
        sources: list[FileSource]
        if self.lazy:
            sources = list(map(DeferredFile, repeat(RootsFinder(self.roots)), columns.locations,
                               columns.sizes))
        else:
            folders: dict[str, str] = {}
            paths = Roots.plain_paths(plain, folders)
            if paths is None:
                return False
            sources = []
            # By slices: a stat result is ~500 bytes, so all of them at once would more
            # than double the build's peak memory per entry (1,350 bytes against 790).
            for start in range(0, len(paths), _STAT_SLICE):
                found = self._stat_files(columns, paths, start, folders)
                if found is None:
                    return False
                sources += found
        try:
            stream.add_files(checked, sources, columns.crcs)
        except (ArchiveNameError, ValueError) as exc:
            # add_files adds in order: the entries made so far are the lines before.
            entry = columns.entry(len(stream.names))
            raise refuse_entry(entry, str(exc), public_reason(exc)) from None
        _plan(stream)
        return True

    def _stat_files(self, columns: ManifestColumns, paths: list[str], start: int,
                    folders: dict[str, str]) -> Optional[list[FileSource]]:
        """The files of ``paths[start:start + _STAT_SLICE]``, each ``lstat``-ed once and
        checked as :func:`_checked_stat` checks it; None when one is not a readable
        regular file of its size (the line-by-line build then says which)."""
        stop = start + _STAT_SLICE
        part = paths[start:stop]
        try:
            stats = list(map(os.lstat, part))
        except OSError:
            return None
        if not self._follow_links(columns, part, stats, start, folders):
            return None
        modes = set(map(_MODE, stats))  # a few values: kind and permission bits
        if (
            not all(map(stat.S_ISREG, modes))
            or list(map(_SIZE, stats)) != columns.sizes[start:stop]
            or (not all(mode & stat.S_IROTH for mode in modes)
                and not all(map(readable, part, stats)))
        ):
            return None
        return list(map(FileSource, part, stats))

    def _follow_links(self, columns: ManifestColumns, paths: list[str],
                      stats: list[os.stat_result], start: int, folders: dict[str, str]) -> bool:
        """Give each symlink among ``paths`` (lines ``start`` on; its ``lstat`` in
        ``stats``) the real path and stat :meth:`_locate` and :func:`_checked_stat` find;
        False if one of them refuses (the line-by-line build then refuses the first bad
        line)."""
        if all(map(stat.S_ISREG, set(map(_MODE, stats)))):
            return True
        for index, st in enumerate(stats):
            if stat.S_ISLNK(st.st_mode):
                entry = columns.entry(start + index)
                try:
                    located = self._locate(entry, folders)
                    if located is None:
                        return False
                    path = located[0]
                    paths[index], stats[index] = path, _checked_stat(entry, path, located[1])
                except (Refusal, OSError):
                    return False
        return True

    def _parse(self, body: bytes, encoding: str) -> list[ManifestEntry]:
        """The manifest line by line, once :func:`parse_columns` said it is not plain."""
        return parse_manifest_lines(body, max_entries=self.max_entries, max_bytes=self.max_bytes,
                                    name_encoding=encoding)

    def _locate(
        self, entry: ManifestEntry, folders: dict[str, str]
    ) -> Optional[tuple[str, Optional[os.stat_result]]]:
        location = entry.location
        try:
            if "?" in location:  # a decoded %3F: what precedes it is checked on its own too
                split_url_path(location.partition("?")[0])
            # Under a root, locate() splits the whole location (and refuses "..", NUL,
            # backslashes, excess length); any other location is split here, so a
            # sub-request never carries them either. Once per entry, never twice.
            located = self.roots.locate(location, folders)
            if located is None:
                split_url_path(location)
            return located
        except OSError as exc:
            raise _location_refusal(exc) from None

    def _under_root(self, entry: ManifestEntry) -> bool:
        """:meth:`_locate` without the disk: True if the location is under a root and
        its text stays inside it (the lazy mode finds the file when streaming)."""
        location = entry.location
        try:
            if "?" in location:
                split_url_path(location.partition("?")[0])
            if self.roots.split(location) is not None:
                return True
            split_url_path(location)
            return False
        except OSError as exc:
            raise _location_refusal(exc) from None


_MODE, _SIZE = attrgetter("st_mode"), attrgetter("st_size")
_STAT_SLICE = 1024  # files stat-ed at once by the fast path (see _add_plain)


def _plan(stream: ArchiveStream) -> None:
    """Plan now: sizes that add up past 2**63 are refused before the first byte."""
    try:
        stream.size  # noqa: B018
    except ArchiveTooLargeError as exc:
        raise Refusal(f"bad manifest: {exc}", "archive too large") from None


def _name_encoding(body: bytes, charset: Optional[str]) -> str:
    """How the manifest's names are read: UTF-8, unless the app declared an
    X-Archive-Charset (as apps written for mod_zip do) and the body is not valid UTF-8
    (a body that is valid UTF-8 is read as UTF-8: our own convention)."""
    if charset not in (None, "native"):
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            return str(charset)
    return "utf-8"


def _location_refusal(exc: OSError) -> Refusal:
    """What the client and the log are told about a location that may not be read."""
    if isinstance(exc, OutsideRootError):
        return Refusal(str(exc), "location outside the allowed folders")
    if isinstance(exc, PathTooLongError):
        return Refusal(str(exc), "location too long")
    # The root folder itself is missing.
    return Refusal(f"root folder unavailable: {exc}", "file not found")


def _charset(header: Optional[str]) -> Optional[str]:
    """None (UTF-8 names), ``"native"``, or a codec name that really is a text encoding.

    ``rot13``, ``base64`` or ``zlib`` are codecs too, but not text encodings: they would
    fail deep in the name encoder, so they are refused here, with the unknown ones.
    """
    charset = (header or "").strip() or None
    if charset is None:
        return None
    if charset.lower() == "native":
        return "native"
    try:
        info = codecs.lookup(charset)
    except LookupError:
        raise Refusal(f"bad manifest: unknown X-Archive-Charset {charset!r}",
                      "bad manifest") from None
    if not getattr(info, "_is_text_encoding", True):
        raise Refusal(f"bad manifest: X-Archive-Charset {charset!r} is not a text encoding",
                      "bad manifest")
    return charset


def _checked_stat(entry: ManifestEntry, path: str, st: Optional[os.stat_result]) -> os.stat_result:
    """The file's stat (``st`` if confinement already has it), checked against the
    manifest: a regular file, readable, of the announced size."""
    if st is None:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise Refusal(f"no such file: {path}", "file not found") from None
        except OSError as exc:
            raise Refusal(f"cannot stat {path}: {exc.strerror}", "file not readable") from None
    if not stat.S_ISREG(st.st_mode):
        raise Refusal(f"not a regular file: {path}", "not a regular file")
    if not readable(path, st):
        raise Refusal(f"not readable: {path}", "file not readable")
    if st.st_size != entry.size:
        raise Refusal(
            f"the manifest says {entry.size} bytes, {path} has {st.st_size}",
            "size in the manifest differs from the file",
        )
    return st


def refuse_entry(entry: ManifestEntry, detail: str, public: str, status: int = 500) -> Refusal:
    """A refusal naming the manifest line: the client gets its number and ``public``; the
    log gets the location, the name and ``detail``."""
    where = f"manifest line {entry.line}"
    if " " in entry.name and public != "archive name refused":
        detail += SPACE_HINT
    return Refusal(f"{where} (location {_short(entry.location)}, name {_short(entry.name)}): "
                   f"{detail}",
                   f"{where}: {public}", status)


#: Added to the log line of a refused entry whose name has a space: the likeliest cause
#: is a location written with a raw space, which ends the field there (the rest joins the
#: name). django-zip-stream writes locations unencoded; mod_zip fails the same way.
SPACE_HINT = (
    "; if the location has a space, the line was split there: percent-encode locations "
    "(a space is %20)"
)


def _short(text: str, limit: int = 200) -> str:
    """``repr(text)``, cut to ``limit`` characters: a huge name must not flood the log."""
    return repr(text[:limit]) + ("..." if len(text) > limit else "")


def public_reason(exc: Exception) -> str:
    """The kind of problem, in words that carry nothing from the manifest."""
    if isinstance(exc, OutsideRootError):
        return "location outside the allowed folders"
    if isinstance(exc, ArchiveNameError):
        return "archive name refused"
    if isinstance(exc, SubrequestError):
        code = (exc.status or "")[:3]
        return f"sub-request failed ({code if code.isdigit() else 'no answer'})"
    return "entry refused"


def _manifest_public(exc: ManifestError) -> str:
    where = f"manifest line {exc.line}: " if exc.line else ""
    return f"{where}bad manifest"
