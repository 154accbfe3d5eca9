"""python-zipstream's ``ZipFile`` on zipwsgi's engine: change the import line, keep the code.

    from zipwsgi.compat.zipstream import ZipFile, ZIP_DEFLATED   # was: from zipstream import ...

    z = ZipFile(mode="w", compression=ZIP_DEFLATED)
    z.write("/srv/report.pdf")                 # as zipfile names it: "srv/report.pdf"
    z.write_iter("log.txt", generate_lines())  # bytes from any iterable
    z.writestr("notes.txt", "text or bytes")
    for chunk in z: ...                        # lazy; StreamingHttpResponse(z) works as before

What python-zipstream (and its fork zipstream-new) got wrong and this does not:
directory entries were flagged deflated with a data descriptor, which ``unzip -t``
rejects (here a folder is a plain stored entry); writing a file tree took one full pass
per ``write`` call without any size (here ``len(z)`` is the exact archive length when
every entry is stored and sized, and :func:`zipwsgi.django.archive_response` or
:func:`zipwsgi.flask.send_archive` add Content-Length, Range and resume to the same
object).

Names follow zipfile's rules (``zipfile.ZipFile.write``): drive letters and leading
slashes are dropped and the path is normalised, so ``/home/me/a.txt`` is stored as
``home/me/a.txt``; zipwsgi's own rules then refuse ``..`` and NUL
(:class:`~zipwsgi.errors.ArchiveNameError`) and duplicate names
(:class:`~zipwsgi.errors.DuplicateNameError`, where zipfile only warns).

Differences that remain, each for a reason: ``write`` stats the file at once (so a
missing file fails in the view, not half-way through the download) and, like zipfile,
follows a symlink given to it explicitly (to confine a tree, add its folder with
:meth:`zipwsgi.ZipStream.add_path`, which never follows a link out of it); entries
without a file behind them (``write_iter``, ``writestr``) are dated 1980-01-01 rather
than "now", so the same inputs always give the same bytes (pass a ``zipfile.ZipInfo``
with a ``date_time`` to ``writestr`` for another date); ZIP64 is used exactly where an
entry needs it, whatever ``allowZip64`` says; zipstream-new's ``flush()`` (partial
output) is not offered: an archive here is planned whole, which is what makes its size
known.
"""

from __future__ import annotations

import calendar
import os
import zipfile
from typing import Any, Iterable, Iterator, Optional, Union

from zipwsgi.engine.stream import _LengthWhenKnown
from zipwsgi.engine.zipstream import ZipStream

__all__ = ["ZipFile", "ZIP_STORED", "ZIP_DEFLATED"]

#: zipfile's method numbers; ``ZipStream`` accepts them too.
ZIP_STORED = zipfile.ZIP_STORED
ZIP_DEFLATED = zipfile.ZIP_DEFLATED

PathLike = Union[str, "os.PathLike[str]"]


class ZipFile:
    """A write-only zip archive that is produced by iterating over it, as in
    python-zipstream; every iteration is a fresh pass over the same bytes.

    ``fileobj`` must be None: the archive is the iteration (python-zipstream never wrote
    to a real file either). ``mode`` must be ``"w"``. ``compression`` is ``ZIP_STORED``
    (exact size) or ``ZIP_DEFLATED``. ``options`` go to :class:`zipwsgi.ZipStream`
    (``chunk_size``, ``level``, ``workers``, ``precompute_crc``...).
    """

    def __init__(
        self,
        fileobj: None = None,
        mode: str = "w",
        compression: int = ZIP_STORED,
        allowZip64: bool = True,  # noqa: N803 - python-zipstream's (and zipfile's) name
        **options: Any,
    ) -> None:
        if mode != "w":
            raise RuntimeError('zipstream.ZipFile() requires mode "w"')
        if fileobj is not None:
            raise ValueError(
                "ZipFile(fileobj=...) is not supported: iterate over the ZipFile and write "
                "the chunks to the file (f.writelines(z))"
            )
        self.compression = compression
        self.allowZip64 = allowZip64
        #: The engine's stream: hand it to anything that takes a ZipStream.
        self.stream = ZipStream(compression, **options)
        self._closed = False

    # -- adding entries (python-zipstream's signatures) -----------------------------------

    def write(
        self,
        filename: PathLike,
        arcname: Optional[str] = None,
        compress_type: Optional[int] = None,
    ) -> None:
        """Add the file ``filename``; a folder adds its directory entry alone, as
        ``zipfile.ZipFile.write`` does (its contents are not walked)."""
        self._check_open()
        filename = os.fspath(filename)
        name = zipfile_arcname(filename if arcname is None else arcname)
        self.stream.add_path(filename, name, recursive=False, compression=compress_type)

    def write_iter(
        self, arcname: str, iterable: Iterable[bytes], compress_type: Optional[int] = None
    ) -> None:
        """Add an entry whose bytes come from ``iterable``, read only while streaming.

        Its length is unknown until then, so the archive has no size (``len()`` raises
        TypeError): use ``writestr`` for bytes in hand, or
        ``z.stream.add(iterable, name, size=n)`` when the length is known.
        """
        self._check_open()
        self.stream.add(iterable, zipfile_arcname(arcname), compression=compress_type)

    def writestr(
        self,
        arcname: Union[str, zipfile.ZipInfo],
        data: Union[bytes, str],
        compress_type: Optional[int] = None,
    ) -> None:
        """Add ``data`` (str is encoded as UTF-8) under ``arcname``, a name or a
        ``zipfile.ZipInfo`` (its ``filename``, ``date_time``, ``compress_type`` and the
        mode in ``external_attr`` are used)."""
        self._check_open()
        mtime: Optional[int] = None
        mode: Optional[int] = None
        if isinstance(arcname, zipfile.ZipInfo):
            info = arcname
            arcname = info.filename
            # DOS times carry no zone: read as UTC, which is how they are written here.
            mtime = calendar.timegm((*info.date_time, 0, 0, 0))
            mode = (info.external_attr >> 16) or None
            if compress_type is None:
                compress_type = info.compress_type
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.stream.add(
            data, zipfile_arcname(arcname), mtime=mtime, mode=mode, compression=compress_type
        )

    # -- what callers read -----------------------------------------------------------------

    @property
    def size(self) -> Optional[int]:
        """Exact archive length, or None (deflated or unsized entries)."""
        return self.stream.size

    # ``len(z)`` when the size is known; no ``__len__`` at all when it is not, so WSGI
    # servers that call len() on a body they can measure never fail on a deflated one.
    __len__ = _LengthWhenKnown()

    def __bool__(self) -> bool:
        return True  # never "empty" to a framework, even without a length

    @property
    def comment(self) -> bytes:
        """The archive comment (bytes, at most 65,535), as python-zipstream's."""
        return self.stream.comment

    @comment.setter
    def comment(self, value: bytes) -> None:
        self.stream.comment = value

    def namelist(self) -> list[str]:
        """The archive names so far, in order (zipfile's ``namelist``)."""
        return self.stream.names

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.stream)

    # -- ending ------------------------------------------------------------------------------

    def close(self) -> None:
        """End every running pass and close what was handed over; no more ``write``.

        The archive can still be iterated: python-zipstream code often closes (leaves a
        ``with`` block) before the web server reads the response.
        """
        self._closed = True
        self.stream.close()

    def __enter__(self) -> ZipFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("Attempt to write to ZIP archive that was already closed")


def zipfile_arcname(name: PathLike) -> str:
    """The name ``zipfile.ZipFile.write`` would store for ``name``: the drive dropped,
    the path normalised, leading separators removed, ``/`` as the separator."""
    name = os.path.normpath(os.path.splitdrive(os.fspath(name))[1])
    while name and name[0] in (os.sep, os.altsep):
        name = name[1:]
    if os.sep != "/":
        name = name.replace(os.sep, "/")
    return name
