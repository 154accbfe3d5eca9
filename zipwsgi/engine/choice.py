"""Which archive a caller asked for: format names, file-name suffixes, and the stream.

The middleware (``X-Archive-Files``), the standalone app (``/<folder>.tar``,
``format=``) and the command line (``--format``, ``-o NAME.tgz``) all name formats by
text; this module is the one place that turns that text into a stream class, so the
three agree on spellings and on which options each format takes. It knows nothing of
HTTP or of the byte layouts (those are the streams' business).

Formats: ``"zip"`` (:class:`~zipwsgi.engine.zipstream.ZipStream`), ``"tar"`` and
``"tar.gz"`` (:class:`~zipwsgi.engine.tarstream.TarStream`, plain or gzip); ``"tgz"``
is accepted as another spelling of ``"tar.gz"``.
"""

from __future__ import annotations

from typing import Optional

from zipwsgi.engine.compression import Level
from zipwsgi.engine.stream import ArchiveStream
from zipwsgi.engine.tarstream import TarStream
from zipwsgi.engine.zipstream import ZipStream

__all__ = [
    "ZIP",
    "TAR",
    "TAR_GZ",
    "FORMATS",
    "format_name",
    "format_of_filename",
    "archive_stem",
    "new_archive",
]

ZIP = "zip"
TAR = "tar"
TAR_GZ = "tar.gz"
#: Every format, the default first.
FORMATS = (ZIP, TAR, TAR_GZ)
_ALIASES = {"tgz": TAR_GZ}
#: File-name suffixes and their formats, longest first (".tar.gz" before ".gz" lookalikes).
SUFFIXES = ((".tar.gz", TAR_GZ), (".tgz", TAR_GZ), (".tar", TAR), (".zip", ZIP))


def format_name(text: str) -> str:
    """The canonical name of the format ``text`` spells (any case, ``tgz`` allowed);
    ``ValueError`` for anything else."""
    lowered = text.strip().lower()
    name = _ALIASES.get(lowered, lowered)
    if name not in FORMATS:
        raise ValueError(f"unknown archive format {text!r} (choose zip, tar or tar.gz)")
    return name


def format_of_filename(name: str) -> Optional[str]:
    """The format a file name's suffix announces (``x.tgz`` → ``"tar.gz"``), or None."""
    lowered = name.lower()
    for suffix, fmt in SUFFIXES:
        if lowered.endswith(suffix):
            return fmt
    return None


def archive_stem(name: str) -> str:
    """``name`` without the archive suffix it ends with (any case), else unchanged."""
    lowered = name.lower()
    for suffix, _ in SUFFIXES:
        if lowered.endswith(suffix):
            return name[: -len(suffix)]
    return name


def new_archive(
    fmt: str,
    *,
    compression: str = "stored",
    level: Level = None,
    charset: Optional[str] = None,
    precompute_crc: bool = False,
) -> ArchiveStream:
    """An empty stream of format ``fmt``.

    ``compression``, ``charset`` and ``precompute_crc`` are zip's (how entries are
    stored, how names are encoded, whether CRCs go in the headers): a tar has no
    per-entry compression, stores names as UTF-8 (pax) and has no CRC, so they do not
    apply to it. ``level`` is the deflate level of a zip and the gzip level of a
    tar.gz; a plain tar compresses nothing and ignores it.
    """
    fmt = format_name(fmt)
    if fmt == TAR:
        return TarStream()
    if fmt == TAR_GZ:
        return TarStream("gzip", level)
    return ZipStream(compression, level, charset=charset, precompute_crc=precompute_crc)
