"""ZipStream: the zip archive, streamed lazily (the engine's core with the zip layout).

Everything format-neutral lives in :class:`~zipwsgi.engine.stream.ArchiveStream`; what is
here is what only zip has: a deflate choice per entry, name charsets, the archive comment,
CRCs ahead of headers for strict readers, and zipstream-ng's ``from_path``/``info_list``.
"""

from __future__ import annotations

from typing import Any, Optional, TypeVar, Union

from zipwsgi.engine.compression import Level
from zipwsgi.engine.options import (
    DEFAULT_CHUNK_SIZE,
    ZIP_DEFLATED,
    ZIP_STORED,
    Compression,
)
from zipwsgi.engine.stream import ArchiveStream, PathLike
from zipwsgi.formats.entry import DEFLATE, STORED
from zipwsgi.formats.zip import records as zip_records
from zipwsgi.formats.zip.layout import ZipLayout

__all__ = ["ZipStream"]

_Z = TypeVar("_Z", bound="ZipStream")


class ZipStream(ArchiveStream):
    """A zip archive, streamed lazily. See the README for the whole API.

    ``compression`` is ``"stored"`` (exact size known, ranges cheap) or ``"deflate"``;
    ``charset`` controls name encoding (see :class:`~zipwsgi.formats.zip.layout.ZipLayout`).

    ``level`` (also per entry in ``add``) is a zlib level 0-9 (default 6), compressed by
    zlib-ng when installed, or ``"fast"``: isal level 3 when installed (~200 MB/s per
    core, ratio ~3 on text), else zlib-ng level 2, else zlib level 1.
    ``workers`` is how many threads compress deflated entries in parallel during each
    pass (default: the CPUs available; 0 compresses in the iterating thread). The bytes
    are the same for any number of workers; see :mod:`zipwsgi.engine.deflate`.

    ``precompute_crc=True`` reads each stored entry of unknown CRC once before writing
    its header, so no entry needs a data descriptor: Java's ``ZipInputStream`` (and any
    strict streaming reader) then reads every entry. The cost is a second read of each
    file (usually from the page cache); the size stays exact and ranges still work.

    ``validator`` chooses what :meth:`fingerprint` (the ETag) is built from; see there.
    """

    def __init__(
        self,
        compression: Compression = STORED,
        level: Level = None,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        mtime: Optional[float] = None,
        charset: Optional[str] = None,
        allow_duplicates: bool = False,
        workers: Optional[int] = None,
        precompute_crc: bool = False,
        comment: Union[bytes, str] = b"",
        validator: str = "local",
    ) -> None:
        self._zip_layout = ZipLayout(charset)
        super().__init__(
            self._zip_layout,
            compression=compression,
            level=level,
            chunk_size=chunk_size,
            mtime=mtime,
            allow_duplicates=allow_duplicates,
            workers=workers,
            precompute_crc=precompute_crc,
            validator=validator,
        )
        self.comment = comment  # type: ignore[assignment,unused-ignore]  # str: the setter encodes it

    @classmethod
    def from_path(
        cls: type[_Z],
        path: PathLike,
        *,
        compression: Compression = STORED,
        level: Level = None,
        recursive: bool = True,
        arcname: Optional[str] = None,
        include_hidden: bool = True,
        **options: Any,
    ) -> _Z:
        """A new stream holding ``path`` (zipstream-ng's ``ZipStream.from_path``):
        ``compression``, ``level`` and ``options`` (``chunk_size``, ``mtime``,
        ``charset``, ``workers``, ``precompute_crc``, ``comment``...) go to the
        constructor, the rest to :meth:`add_path`. A folder lands under its own name, as
        there; pass ``arcname=""`` for its contents at the root."""
        stream = cls(compression, level, **options)
        try:
            stream.add_path(path, arcname, recursive=recursive, include_hidden=include_hidden)
        except BaseException:
            stream.close()
            raise
        return stream

    @property
    def comment(self) -> bytes:
        """The archive comment, written after the end record and counted in :attr:`size`.

        Set bytes, or str (encoded as UTF-8, as zipstream-ng does); at most 65,535 bytes,
        refused beyond rather than truncated. Setting it changes the size and the ETag.
        """
        return self._zip_layout.comment

    @comment.setter
    def comment(self, value: Union[bytes, str, None]) -> None:
        if value is None:
            value = b""
        elif isinstance(value, str):
            value = value.encode("utf-8")
        self._zip_layout.comment = zip_records.check_comment(value)
        self._plan = None  # the trailer's length changed

    def info_list(self) -> list[dict[str, Any]]:
        """One dict per entry, in archive order, with zipstream-ng's keys.

        ``name``, ``size``, ``compressed_size``, ``datetime`` (the DOS time written, as
        zipfile reads it back: UTC, even seconds), ``is_dir``, ``CRC``,
        ``compress_type`` (zipfile's 0 or 8) and ``compress_level``. What is known before
        streaming is filled in; the rest is None: a deflated size is never known ahead, a
        CRC only when given, computed by a pass (or empty). zipstream-ng's ``streamed`` is
        left out: every pass here is independent, so there is no "streamed yet" state.
        """
        info: list[dict[str, Any]] = []
        for entry in self._entries:
            deflated = entry.compression == DEFLATE and not entry.is_dir
            size = 0 if entry.is_dir else entry.size
            date, clock, _ = zip_records.time_fields(entry.mtime)
            info.append(
                {
                    "name": entry.name,
                    "size": size,
                    "compressed_size": None if deflated else size,
                    "datetime": (
                        1980 + (date >> 9),
                        (date >> 5) & 0xF,
                        date & 0x1F,
                        clock >> 11,
                        (clock >> 5) & 0x3F,
                        (clock & 0x1F) * 2,
                    ),
                    "is_dir": entry.is_dir,
                    "CRC": 0 if entry.is_dir else entry.crc,
                    "compress_type": ZIP_DEFLATED if deflated else ZIP_STORED,
                    "compress_level": entry.level if deflated else None,
                }
            )
        return info
