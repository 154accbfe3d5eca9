"""The wrapped app's answer, held back until the middleware decides what it is.

An answer may be a manifest (``X-Archive-Files``), a marker body, or anything else to
pass through untouched; nothing reaches the client before that is known, and nothing of
a manifest ever does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional

from zipwsgi.engine.choice import ZIP, format_name
from zipwsgi.errors import Refusal
from zipwsgi.http.wsgi import Captured, strip_archive_headers

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse

__all__ = ["UpstreamAnswer"]


class UpstreamAnswer(Captured):
    """One call of the app: its status, headers and body, held back until we decide.

    If the app uses PEP 3333's ``write()`` for a response without the manifest header,
    the answer is committed on the spot (status and headers forwarded, the write passed
    on): such a body cannot be a marker object, and buffering it would break streaming.
    """

    def __init__(self, start_response: StartResponse, head: bool, limit: int) -> None:
        super().__init__()
        self._start_response = start_response
        self._real_write: Any = None
        self.head = head
        self.limit = limit
        self.written_size = 0
        self.committed = False

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], Any]:
        if self.committed:
            self._real_write = self._start_response(
                status, strip_archive_headers(headers), exc_info
            )
            return self.write
        self.status, self.headers, self.exc_info = status, list(headers), exc_info
        return self.write

    def write(self, data: bytes) -> None:
        if not self.committed and self.header("X-Archive-Files") is None:
            self._commit()
        if self.committed:
            if not self.head:
                self._real_write(data)
            return
        self.written_size += len(data)
        if self.written_size <= self.limit:
            self.written.append(data)

    def _commit(self) -> None:
        self.committed = True
        self._real_write = self._start_response(
            self.status, strip_archive_headers(self.headers), self.exc_info
        )
        for data in self.written:
            if not self.head:
                self._real_write(data)
        self.written = []

    def archive_format(self) -> Optional[str]:
        """The format this answer asks for by header, or None; a marker object needs no
        header. ``zip`` matches as a prefix, as in mod_zip (``zip; x=y`` is a zip);
        ``tar``, ``tar.gz`` and ``tgz`` match whole, in any case. Any other value is
        refused with a 500: the body is a manifest all the same, and a manifest never
        reaches the client (mod_zip would pass it through)."""
        files = self.header("X-Archive-Files")
        if files is None:
            return None
        value = files.strip().lower()
        if value.startswith(ZIP):
            return ZIP
        try:
            return format_name(value)
        except ValueError:
            return None

    def is_archive(self) -> bool:
        """Whether the app sent a manifest (whatever format it names)."""
        return self.header("X-Archive-Files") is not None

    def pass_through(self) -> Iterable[bytes]:
        """Forward the answer as the app gave it (minus ``X-Archive-*`` headers)."""
        if not self.committed:
            self.committed = True
            write = self._start_response(
                self.status, strip_archive_headers(self.headers), self.exc_info
            )
            if self.written and not self.head:
                for data in self.written:
                    write(data)
        if self.head:
            self.close()
            return []
        return self.body

    def read_body(self) -> bytes:
        """The whole body (the manifest), bounded by the limit; the body is closed."""
        chunks, size = list(self.written), self.written_size
        try:
            for chunk in self.body:
                size += len(chunk)
                if size > self.limit:
                    break
                chunks.append(chunk)
        finally:
            self.close()
        if size > self.limit:
            raise Refusal(
                f"manifest exceeds max_manifest_bytes={self.limit}",
                "manifest larger than the configured limit",
            )
        return b"".join(chunks)
