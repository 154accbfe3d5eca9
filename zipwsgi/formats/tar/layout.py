"""How the tar format lays out entries: the :class:`ArchiveLayout` the plan and writer use.

Decisions that shape bytes live here, once: which entries need a pax extended header
(only those ustar cannot hold: a name that does not fit its 100 + 155 byte split, a
name that is not ASCII, a size of 8 GiB or more, an mtime before 1970 or past 2242), and
what it says. The pax records are built once per entry, in :meth:`TarLayout.prepare`,
and kept on the entry, so the plan's length and the writer's bytes come from the same
value: an archive length that disagrees with the bytes (a pax header miscounted by its
own length digits) cannot happen.
"""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

from zipwsgi.formats.entry import DEFLATE, Entry, EntryRecord
from zipwsgi.formats.tar import records as tf

#: What ``entry.layout`` holds for a member that needs no pax header (most of them).
_PLAIN = 0
_PAX_PREFIX = b"PaxHeaders/"
#: The zeros after each member's data, one shared bytes object per length: no allocation
#: per file (bytes(n) made one for every member).
_PADDING = tuple(bytes(n) for n in range(tf.BLOCK))


def raw_name(name: str) -> bytes:
    """The bytes a name is written as: UTF-8, or a file name's own bytes from disk when
    it is not valid UTF-8 (``os.scandir`` hands those over with surrogate escapes)."""
    return name.encode("utf-8", "surrogateescape")


def _clamped_mtime(mtime: int) -> int:
    """The mtime the ustar field shows: the real one where it fits 11 octal digits (the
    pax header, when there is one, carries the real value)."""
    return min(max(mtime, 0), tf.OCTAL_11_LIMIT - 1)


def pax_records(entry: Entry) -> bytes:
    """The pax records ``entry`` needs, or ``b""`` when ustar holds all of it.

    Only values ustar cannot hold get a record, so most members have no pax header at
    all (some Windows tools show each one as a ``PaxHeaders`` folder). A name that is
    not valid UTF-8 is written as its raw bytes with ``hdrcharset=BINARY``, which tells
    readers not to decode it (POSIX defines it for exactly this).
    """
    out = b""
    name = entry.name
    if not name.isascii() or len(name) > tf.NAME_FIELD:
        try:
            raw = name.encode("utf-8")
        except UnicodeEncodeError:
            out += tf.pax_record(b"hdrcharset", b"BINARY")
            raw = raw_name(name)
        if not raw.isascii() or tf.split_name(raw) is None:
            out += tf.pax_record(b"path", raw)
    size = entry.size
    if not entry.is_dir and size is not None and size >= tf.OCTAL_11_LIMIT:
        out += tf.pax_record(b"size", b"%d" % size)
    if not 0 <= entry.mtime < tf.OCTAL_11_LIMIT:
        out += tf.pax_record(b"mtime", b"%d" % entry.mtime)
    return out


def pax_header_name(name: str) -> bytes:
    """The name of a member's pax header: ``PaxHeaders/`` and the member's name, in ASCII
    (other characters become ``_``), cut to fit. No process id or counter, so archives
    stay byte-identical."""
    ascii_name = name.rstrip("/").encode("ascii", "replace").replace(b"?", b"_")
    return cut_name(_PAX_PREFIX + ascii_name)


def cut_name(raw: bytes) -> bytes:
    """``raw`` cut to the 100-byte name field, for readers that do not know pax: the cut
    never ends in a ``..`` or ``.`` segment or a ``/`` (a file read as a folder, or a
    name read as its parent), so what such a reader sees is as safe as the name."""
    cut = raw[: tf.NAME_FIELD]
    while cut and cut.rpartition(b"/")[2] in (b"", b".", b".."):
        cut = cut.rpartition(b"/")[0]
    return cut or b"_"


class TarLayout:
    """The tar :class:`~zipwsgi.formats.entry.ArchiveLayout` (POSIX pax, ustar headers).

    Every member is a header (a pax header first where needed), its data, zeros to the
    next 512-byte block; the archive ends with two zero blocks and zeros up to a whole
    10240-byte record, as GNU tar and Python's tarfile write it. Integer mtimes, uid and
    gid 0, empty user and group names, the permission bits of the entry's mode;
    folders are typeflag ``5`` with a trailing ``/``.

    Tar writes each size in the header before the data and has no data descriptor, so
    every entry must have a known size (``needs_sizes``), and nothing is compressed per
    entry (``TarStream(compression="gzip")`` compresses the whole archive).
    """

    content_type = "application/x-tar"
    extension = ".tar"
    needs_crc = False
    needs_sizes = True

    # -- per entry ------------------------------------------------------------------------

    def prepare(self, entry: Entry) -> None:
        size = entry.size
        if (
            size is not None
            and size < tf.OCTAL_11_LIMIT
            and len(entry.name) <= tf.NAME_FIELD
            and entry.name.isascii()
            and 0 <= entry.mtime < tf.OCTAL_11_LIMIT
            and entry.compression != DEFLATE
        ):
            entry.layout = _PLAIN  # most members: ustar holds everything (pax_records: b"")
            return
        if not entry.is_dir:
            if size is None:
                raise ValueError(
                    f"{entry.name!r}: tar writes every file's size in its header, before "
                    "the data; pass size= for data whose length cannot be seen "
                    "(iterables, callables, unseekable file objects)"
                )
            if entry.compression == DEFLATE:
                raise ValueError(
                    f"{entry.name!r}: tar has no per-entry compression; use "
                    'TarStream(compression="gzip") to compress the whole archive'
                )
        records = pax_records(entry)
        entry.layout = records if records else _PLAIN

    def _header_size(self, entry: Entry) -> int:
        records = entry.layout
        if records == _PLAIN:
            return tf.BLOCK
        return tf.pax_block_size(len(records)) + tf.BLOCK  # type: ignore[arg-type]

    def planned_sizes(self, entry: Entry, offset: int) -> tuple[int, int, int]:
        footer = 0 if entry.is_dir else tf.padding(entry.size)  # type: ignore[arg-type]
        return self._header_size(entry), footer, 0

    def header(self, entry: Entry, offset: int) -> bytes:
        is_dir = entry.is_dir
        typeflag = tf.TYPE_DIRECTORY if is_dir else tf.TYPE_FILE
        if entry.layout == _PLAIN:
            # Most members: an ASCII name that fits, a size and an mtime that fit (else
            # prepare() would have written pax records), so no checks are needed here.
            raw = entry.name.encode()
            prefix, field = (b"", raw) if len(raw) <= tf.NAME_FIELD else tf.split_name(raw)  # type: ignore[misc]
            size = 0 if is_dir else entry.size
            return tf.ustar_header(field, prefix, entry.mode, size, entry.mtime, typeflag)  # type: ignore[arg-type]
        name = entry.name
        raw = raw_name(name)
        # Where a pax path overrides, the ustar fields still get what fits, for readers
        # that do not know pax.
        prefix, field = tf.split_name(raw) or (b"", cut_name(raw))
        size = 0 if is_dir else entry.size
        if size is None or size >= tf.OCTAL_11_LIMIT:
            size = 0  # the pax header says it; GNU tar writes 0 here too
        mtime = _clamped_mtime(entry.mtime)
        head = tf.ustar_header(field, prefix, entry.mode, size, mtime, typeflag)
        return tf.pax_block(pax_header_name(name), entry.layout, mtime) + head  # type: ignore[arg-type]

    def records(self, entry: Entry, offset: int, crc: int) -> tuple[bytes, bytes]:
        size: int = entry.size  # type: ignore[assignment]
        if entry.layout == _PLAIN:
            raw = entry.name.encode()
            if len(raw) <= tf.NAME_FIELD:
                # Most files: header()'s first case, without its call and its checks.
                header = tf.ustar_header(raw, b"", entry.mode, size, entry.mtime, tf.TYPE_FILE)
                return header, _PADDING[-size % tf.BLOCK]
        return self.header(entry, offset), _PADDING[-size % tf.BLOCK]

    def footer_size(self, entry: Entry) -> int:
        return 0 if entry.is_dir else tf.padding(entry.size)  # type: ignore[arg-type]

    def footer(self, entry: Entry, crc: int, compressed_size: int, size: int) -> bytes:
        return _PADDING[-size % tf.BLOCK]

    # -- end of archive -------------------------------------------------------------------

    def trailer(
        self,
        entries: Sequence[Entry],
        record_of: Callable[[int], EntryRecord],
        offset: int,
    ) -> Iterator[bytes]:
        yield bytes(tf.end_size(offset))

    def trailer_size(self, count: int, offset: int, shares: int) -> int:
        return tf.end_size(offset)


__all__ = ["TarLayout", "pax_header_name", "pax_records", "raw_name"]
