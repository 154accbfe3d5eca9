"""Single files of the standalone app, answered by the same HTTP decision as archives."""

from __future__ import annotations

import mimetypes
import os
import stat
from typing import Iterator, Optional

from zipwsgi.errors import SourceChangedError
from zipwsgi.http.responses import RangedResponse

__all__ = ["file_response"]

_CHUNK = 256 * 1024


class _FileBody:
    """A file's bytes for WebOb: opened only when iterated (HEAD and 304 never open it),
    bounded to the size announced, and closed whichever way the response ends."""

    __slots__ = ("path", "size", "_passes")

    def __init__(self, path: str, size: int) -> None:
        self.path = path
        self.size = size
        self._passes: list[Iterator[bytes]] = []

    def __iter__(self) -> Iterator[bytes]:
        return self.app_iter_range(0, None)

    def app_iter_range(self, start: int, stop: Optional[int]) -> Iterator[bytes]:
        gen = self._read(start, self.size if stop is None else stop)
        self._passes.append(gen)
        return gen

    def _read(self, start: int, stop: int) -> Iterator[bytes]:
        # O_NONBLOCK: a FIFO swapped in since the request was checked must not hold the
        # open (and this thread) until a writer comes; it is refused just below.
        flags = (os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
                 | getattr(os, "O_NONBLOCK", 0))
        with open(os.open(self.path, flags), "rb") as file:
            if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
                raise SourceChangedError(f"no longer a regular file: {self.path}")
            file.seek(start)
            remaining = stop - start
            while remaining > 0:
                data = file.read(min(_CHUNK, remaining))
                if not data:
                    return
                remaining -= len(data)
                yield data

    def close(self) -> None:
        for gen in self._passes:
            gen.close()  # type: ignore[attr-defined]


def file_response(real: str, st: os.stat_result, validator: str = "local") -> RangedResponse:
    """One file, answered by the same RFC 9110 decision as zips (preconditions, Range
    and multipart, 304/412/416, HEAD without opening the file)."""
    content_type, encoding = mimetypes.guess_type(real)
    if content_type is None or encoding is not None:
        # "x.tar.gz" would otherwise go out as Content-Encoding: gzip and be unpacked.
        content_type = "application/octet-stream"
    response = RangedResponse(
        _FileBody(real, st.st_size),
        content_type=content_type,
        size=st.st_size,
        etag=_file_etag(st, validator),
        last_modified=int(st.st_mtime),
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "sandbox"
    return response


def _file_etag(st: os.stat_result, validator: str) -> str:
    """A strong ETag for one file. ``"local"`` adds inode and ctime: a rewrite in place
    that keeps size and mtime still changes the ctime, so If-Range gives a 200, not a
    206 joining two versions. ``"portable"``: size and mtime, the same on every replica."""
    if validator == "portable":
        return f"{st.st_size:x}-{st.st_mtime_ns // 10**9:x}"
    return f"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}-{st.st_ctime_ns:x}"
