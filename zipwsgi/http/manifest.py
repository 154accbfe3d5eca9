"""The mod_zip manifest: parse and write the ``X-Archive-Files: zip`` response body.

An app that already speaks to nginx's mod_zip answers with a plain-text manifest instead
of a zip, one entry per line::

    1a6349c5 24 /files/file1.txt file1.txt
    - 25 /files/file%202.txt?v=3 folder/file 2.txt
    - 0 @directory empty folder/

This module turns that body into :class:`ManifestEntry` values, following mod_zip's own
grammar, so existing apps move over unchanged. It does no I/O and knows nothing about
HTTP: fetching each location and normalising names is the engine's job.

Security note: the manifest usually comes from a trusted upstream, but it is still
parsed defensively. Size and entry limits bound the work done on a hostile body, every
malformed line raises :class:`~zipwsgi.errors.ManifestError` naming the line, and a
decoded location can never carry a NUL byte. Archive names are *not* made safe here.
"""

from __future__ import annotations

import codecs
import re
from itertools import repeat
from typing import Iterable, NamedTuple, Optional, Sequence
from urllib.parse import quote, unquote_to_bytes

from zipwsgi.errors import ManifestError
from zipwsgi.formats.entry import MAX_ENTRY_SIZE

__all__ = [
    "DIRECTORY",
    "ManifestColumns",
    "ManifestEntry",
    "format_manifest",
    "parse_columns",
    "parse_manifest",
    "parse_manifest_lines",
]

#: The location mod_zip reserves for "this entry is an (empty) directory".
DIRECTORY = "@directory"

#: The largest size a line may give: the engine's bound for one entry (2**62; see
#: :data:`zipwsgi.formats.entry.MAX_ENTRY_SIZE`). Larger sizes cannot be archived, so they
#: are a malformed manifest (nginx's own ``off_t`` stops at 2**63 - 1).
MAX_SIZE = MAX_ENTRY_SIZE

# mod_zip separates fields with runs of spaces only (a tab is part of a field). The name
# starts at the first non-space byte after the location and runs to the end of the line.
_LINE = re.compile(rb"([^ ]+) +([^ ]+) +([^ ]+) +([^ ].*)", re.DOTALL)
# The same four fields with a valid CRC and size: a well-formed line (nearly all of them)
# is split and checked by one match; the field checks below then only explain failures.
# 19 digits cover MAX_SIZE; more cannot be valid.
_GOOD_LINE = re.compile(rb"(-|[0-9A-Fa-f]{1,8}) +([0-9]{1,19}) +([^ ]+) +([^ ].*)", re.DOTALL)
_CRC = re.compile(rb"-|[0-9A-Fa-f]{1,8}")
# The whole body at once (parse_columns): each match is one whole line, from a line's
# start (the body's start or after its breaks, blank lines included) to its end, and a
# line that is not well formed gives no match. So as many matches as non-empty lines
# proves every line good, and the fields come out of one C call instead of a split and a
# fullmatch per line.
_GOOD_LINES = re.compile(
    rb"(?:\A|[\r\n]+)(-|[0-9A-Fa-f]{1,8}) +([0-9]{1,19}) +([^ \r\n]+) +([^ \r\n][^\r\n]*)"
)
# A '%' not followed by two hex digits: parse_manifest's error, not the bulk decoding's.
_BAD_PERCENT = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_PERCENT = re.compile(rb"%(.{0,2})", re.DOTALL)
_HEX2 = re.compile(rb"[0-9A-Fa-f]{2}")

# Characters a location may keep unescaped when written back: RFC 3986 pchar minus '%'
# (always escaped), plus '/'. Space, '?', '#', controls and non-ASCII get escaped.
_LOCATION_SAFE = "/!$&'()*+,;=:@~"


class ManifestEntry(NamedTuple):
    """One manifest line, decoded but not yet interpreted.

    ``location`` is the percent-decoded path the engine fetches; ``query`` is handed on
    to that sub-request untouched (a WSGI-style latin-1 string, so its bytes survive).
    A named tuple: immutable, and cheap to make for each of 100,000 lines.
    """

    crc: Optional[int]  # None when the manifest says "-": computed while streaming
    size: int
    location: str
    query: str
    name: str
    is_directory: bool
    line: int


def parse_manifest(
    body: bytes,
    *,
    max_entries: int = 100_000,
    max_bytes: int = 64 * 1024 * 1024,
    name_encoding: str = "utf-8",
) -> list[ManifestEntry]:
    """Parse a mod_zip manifest body into entries, in order.

    Lines are split at any run of CR/LF and blank lines are skipped; line numbers in
    errors count CR, LF and CRLF as one line break each, as an editor would. An empty
    manifest gives ``[]``: mod_zip refuses it, but an empty archive is a valid answer and
    the caller decides. Raises :class:`ManifestError` on the first malformed line or when
    a limit is exceeded; raises :class:`LookupError` for an unknown ``name_encoding``.
    """
    columns = parse_columns(body, max_entries=max_entries, max_bytes=max_bytes,
                            name_encoding=name_encoding)
    if columns is not None:
        return columns.entries()
    return parse_manifest_lines(body, max_entries=max_entries, max_bytes=max_bytes,
                                name_encoding=name_encoding)


def parse_manifest_lines(
    body: bytes,
    *,
    max_entries: int = 100_000,
    max_bytes: int = 64 * 1024 * 1024,
    name_encoding: str = "utf-8",
) -> list[ManifestEntry]:
    """:func:`parse_manifest` line by line: the general path, and the one that explains
    what is wrong. For callers that tried :func:`parse_columns` already."""
    codecs.lookup(name_encoding)
    if len(body) > max_bytes:
        raise ManifestError(f"manifest is {len(body)} bytes, more than the limit of {max_bytes}")
    entries: list[ManifestEntry] = []
    # bytes.splitlines() breaks at exactly \r, \n and \r\n -- mod_zip's separators.
    for number, raw in enumerate(bytes(body).splitlines(), start=1):
        if not raw:
            continue
        if len(entries) >= max_entries:
            raise ManifestError(f"more than {max_entries} entries", number)
        entries.append(_parse_line(raw, number, name_encoding))
    return entries


class ManifestColumns:
    """A manifest of plain file lines by columns, as :func:`parse_columns` gives it.

    Plain: no ``@directory`` line and no query, every field valid. Lists rather than a
    :class:`ManifestEntry` per line, because the middleware's fast path reads columns and
    makes an entry only for a line it refuses (:meth:`entry`). ``lines`` is None when
    line ``i + 1`` is entry ``i`` (no blank lines), else each entry's line number.
    """

    __slots__ = ("crcs", "sizes", "locations", "names", "lines")

    def __init__(
        self,
        crcs: list[Optional[int]],
        sizes: list[int],
        locations: list[str],
        names: list[str],
        lines: Optional[list[int]],
    ) -> None:
        self.crcs = crcs
        self.sizes = sizes
        self.locations = locations
        self.names = names
        self.lines = lines

    def __len__(self) -> int:
        return len(self.names)

    def entry(self, index: int) -> ManifestEntry:
        """The :class:`ManifestEntry` of entry ``index`` (what :func:`parse_manifest` gives)."""
        line = index + 1 if self.lines is None else self.lines[index]
        return ManifestEntry(self.crcs[index], self.sizes[index], self.locations[index], "",
                             self.names[index], False, line)

    def entries(self) -> list[ManifestEntry]:
        count = len(self.names)
        lines: Sequence[int] = range(1, count + 1) if self.lines is None else self.lines
        return list(map(ManifestEntry, self.crcs, self.sizes, self.locations, repeat("", count),
                        self.names, repeat(False, count), lines))


def parse_columns(
    body: bytes,
    *,
    max_entries: int = 100_000,
    max_bytes: int = 64 * 1024 * 1024,
    name_encoding: str = "utf-8",
) -> Optional[ManifestColumns]:
    """:func:`parse_manifest` by columns, for a manifest of plain file lines; None when
    some line needs the line-by-line parse (a ``@directory``, a query, a malformed line
    to explain, a limit to name): :func:`parse_manifest` gives the same entries or error.

    Speed trick, measured on 10,000 lines (bench_first_byte.py): 18 ms line by line, 6 ms
    here. One regex ``findall`` over the body splits every line in C; sizes become ints
    with one ``map``; locations and names are joined by LF (neither can hold one), decoded
    (and percent-decoded) once and split again. Raises only what :func:`parse_manifest`
    raises before reading lines: an unknown encoding, a body over ``max_bytes``.
    """
    info = codecs.lookup(name_encoding)  # fail on a bad argument even for an empty body
    if len(body) > max_bytes:
        raise ManifestError(f"manifest is {len(body)} bytes, more than the limit of {max_bytes}")
    text = bytes(body).rstrip(b"\r\n")  # trailing breaks end no line
    rows = _GOOD_LINES.findall(text)
    count = len(rows)
    if not count or count > max_entries:
        return None
    # As many matches as lines (line breaks + 1) proves every line non-empty and good.
    breaks = text.count(b"\n")
    if b"\r" in text:
        breaks += text.count(b"\r") - text.count(b"\r\n")
    lines: Optional[list[int]] = None
    if breaks + 1 != count:
        # Blank lines, or a line that is not four good fields (no match): number the
        # non-empty lines as parse_manifest does; more of them than matches is the latter.
        lines = [number for number, raw in enumerate(text.splitlines(), start=1) if raw]
        if len(lines) != count:
            return None
    crc_fields, size_fields, location_fields, name_fields = zip(*rows)
    sizes = list(map(int, size_fields))
    if max(sizes) > MAX_SIZE:
        return None
    if crc_fields.count(b"-") == count:
        crcs: list[Optional[int]] = [None] * count
    else:
        crcs = [None if field == b"-" else int(field, 16) for field in crc_fields]
    raw = b"\n".join(location_fields)
    if b"?" in raw or b"\x00" in raw or DIRECTORY.encode() in location_fields:
        return None
    if b"%" in raw:
        if _BAD_PERCENT.search(raw):
            return None
        raw = unquote_to_bytes(raw)
        if raw.count(b"\n") != count - 1 or b"\x00" in raw:
            return None  # a %0A or %00: the line-by-line parse says which
    try:
        locations = raw.decode("utf-8").split("\n")
        if info.name == "utf-8":
            names = b"\n".join(name_fields).decode("utf-8").split("\n")
        else:
            names = [field.decode(name_encoding) for field in name_fields]
    except UnicodeDecodeError:
        return None
    return ManifestColumns(crcs, sizes, locations, names, lines)


def _parse_line(raw: bytes, number: int, name_encoding: str) -> ManifestEntry:
    """Parse one non-empty line; ``number`` is only used to name it in errors."""
    match = _GOOD_LINE.fullmatch(raw)
    if match is None:
        raise ManifestError(_explain_bad_line(raw), number)
    crc_field, size_field, location_field, name_field = match.groups()
    crc = None if crc_field == b"-" else int(crc_field, 16)
    size = int(size_field)
    if size > MAX_SIZE:
        raise ManifestError(_SIZE_RULE + _show(size_field), number)

    path, _, query_bytes = location_field.partition(b"?")
    query = query_bytes.decode("latin-1")  # WSGI's QUERY_STRING convention: bytes survive
    # Compared before decoding, so "%40directory" names a file called "@directory".
    is_directory = path == DIRECTORY.encode()
    if is_directory:
        if size != 0 or crc not in (None, 0):
            raise ManifestError("a @directory entry must have size 0 and CRC 0 or '-'", number)
        location = DIRECTORY
    elif not path:
        raise ManifestError("empty location (nothing before '?')", number)
    else:
        location = _decode_location(path, number)

    try:
        name = name_field.decode(name_encoding)
    except UnicodeDecodeError as exc:
        raise ManifestError(
            f"archive name is not valid {name_encoding} (byte {exc.start})", number
        ) from None
    return ManifestEntry(crc, size, location, query, name, is_directory, number)


def _decode_location(path: bytes, number: int) -> str:
    """Percent-decode a URL path bytes-to-bytes, then UTF-8, so ``%D0%9F`` is one 'П'.

    Written by hand because ``urllib.parse.unquote`` silently keeps broken escapes such
    as ``%zz``; here they are errors. ``+`` stays ``+`` (this is a path, not a form).
    """

    def replace(match: re.Match[bytes]) -> bytes:
        digits = match.group(1)
        if not _HEX2.fullmatch(digits):
            raise ManifestError(
                f"invalid percent-escape {_show(b'%' + digits)} in location", number
            )
        return bytes([int(digits, 16)])

    decoded = _PERCENT.sub(replace, path) if b"%" in path else path
    try:
        location = decoded.decode("utf-8")
    except UnicodeDecodeError:
        raise ManifestError(f"location {_show(path)} does not decode to UTF-8", number) from None
    if "\x00" in location:
        raise ManifestError("location contains a NUL byte", number)
    return location


def _explain_bad_line(raw: bytes) -> str:
    """Say what is wrong with a line that is not four well-formed fields, in the
    reader's terms: a missing field, or which field is malformed."""
    match = _LINE.fullmatch(raw)
    if match is None:
        if raw.startswith(b" "):
            return "line starts with a space; expected '<crc32> <size> <location> <name>'"
        words = [word for word in raw.split(b" ") if word]
        # Four words always match _LINE, so at least the name is missing here.
        missing = ["CRC-32", "size", "location", "archive name"][len(words) :]
        return (
            f"missing {', '.join(missing)}; expected '<crc32> <size> <location> <name>' "
            "(a raw space ends a field: percent-encode locations, a space is %20)"
        )
    crc_field, size_field = match.group(1, 2)
    if not _CRC.fullmatch(crc_field):
        return f"CRC-32 must be 1 to 8 hex digits or '-', got {_show(crc_field)}"
    return _SIZE_RULE + _show(size_field)


_SIZE_RULE = "size must be a decimal integer from 0 to 2**62, got "


def _show(field: bytes, limit: int = 40) -> str:
    """Quote a field for an error message, shortened so a huge line cannot flood logs."""
    text = repr(field[:limit].decode("latin-1"))
    return text + "..." if len(field) > limit else text


def format_manifest(entries: Iterable[ManifestEntry], *, name_encoding: str = "utf-8") -> bytes:
    """Write entries as a manifest that :func:`parse_manifest` (and mod_zip) read back.

    One LF-terminated line per entry, CRC as 8 lowercase hex digits or ``-``, locations
    percent-encoded as UTF-8 so spaces, ``%``, ``?`` and non-ASCII survive. Raises
    :class:`ManifestError` for an entry that no manifest line can express (a name with a
    line break or a leading space, a query with a space, an empty location, ...).
    """
    lines = []
    for index, entry in enumerate(entries, start=1):
        lines.append(_format_entry(entry, index, name_encoding))
    return b"".join(line + b"\n" for line in lines)


def _format_entry(entry: ManifestEntry, index: int, name_encoding: str) -> bytes:
    """Format one entry; ``index`` names it in errors (its ``line`` may be arbitrary)."""

    def fail(message: str) -> ManifestError:
        return ManifestError(f"entry {index} ({entry.name!r}): {message}")

    if entry.crc is not None and not 0 <= entry.crc <= 0xFFFFFFFF:
        raise fail("CRC-32 out of range")
    if not 0 <= entry.size <= MAX_SIZE:
        raise fail("size out of range")
    if not entry.name or entry.name[0] == " " or any(c in entry.name for c in "\r\n"):
        raise fail("name must be non-empty, not start with a space, and have no CR/LF")
    crc = b"-" if entry.crc is None else b"%08x" % entry.crc

    if entry.is_directory:
        location = DIRECTORY.encode()
    elif not entry.location or "\x00" in entry.location:
        raise fail("location must be non-empty and contain no NUL")
    else:
        location = quote(entry.location, safe=_LOCATION_SAFE, encoding="utf-8").encode()
        if location == DIRECTORY.encode():
            location = b"%40directory"  # a file that happens to be called "@directory"
    if entry.query:
        if any(c in entry.query for c in " \r\n"):
            raise fail("query must not contain spaces or line breaks")
        try:
            location += b"?" + entry.query.encode("latin-1")
        except UnicodeEncodeError:
            raise fail("query must be a latin-1 (WSGI bytes-as-str) string") from None
    try:
        name = entry.name.encode(name_encoding)
    except UnicodeEncodeError:
        raise fail(f"name cannot be encoded as {name_encoding}") from None
    return b"%s %d %s %s" % (crc, entry.size, location, name)
