"""The validator of an archive: a digest that changes whenever its bytes could.

It becomes the strong ETag HTTP answers carry, so a resumed download (If-Range) joins
two halves of the same bytes or starts over. What it is built from is a choice the
caller makes (``validator=``, see :meth:`~zipwsgi.engine.stream.ArchiveStream.fingerprint`).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from zipwsgi.engine.compression import deflate_implementation
from zipwsgi.engine.files import FileSource
from zipwsgi.formats.entry import DEFLATE, ArchiveLayout, Entry

__all__ = ["fingerprint"]


def fingerprint(
    layout: ArchiveLayout, entries: Sequence[Entry], validator: str, precompute_crc: bool
) -> Optional[str]:
    """The hex digest of ``entries`` under ``layout``, or None when some entry has no
    stable identity (data with neither a size nor a CRC, or not a file without a CRC)."""
    import hashlib  # here, not at the top: OpenSSL's memory only where validators are made

    from zipwsgi.engine.deflate import BLOCK_SIZE

    settings = sorted(vars(layout).items())
    local = validator == "local"
    digest = hashlib.sha256(
        f"{type(layout).__name__}{settings}{precompute_crc}"
        f"{validator}".encode()
    )
    engines: dict[Any, str] = {}  # deflate bytes depend on the library and block size
    for entry in entries:
        if entry.size is None and entry.crc_given is None and not entry.is_dir:
            return None
        if not isinstance(entry.source, (FileSource, type(None))) and entry.crc_given is None:
            return None
        where = ""
        if local and isinstance(entry.source, FileSource):
            source = entry.source
            where = f"{source.describe()}\0{source.mtime_ns}\0{source.identity}"
        if entry.compression == DEFLATE and not entry.is_dir:
            if entry.level not in engines:
                engines[entry.level] = f"{deflate_implementation(entry.level)}/{BLOCK_SIZE}"
            where += "\0" + engines[entry.level]
        digest.update(
            f"{entry.name}\0{entry.size}\0{entry.mtime}\0{entry.mode}\0{entry.compression}"
            f"\0{entry.level}\0{entry.crc_given}\0{where}\n".encode("utf-8", "surrogatepass")
        )
    return digest.hexdigest()
