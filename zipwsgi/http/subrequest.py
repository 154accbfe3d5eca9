"""Sub-requests: entry data fetched from the wrapped WSGI app itself, as mod_zip does.

A manifest location under no configured root (``/reports/2024.csv?format=long``) is not a
file on disk but a URL the app can answer. :class:`SubrequestSource` is a
:class:`~zipwsgi.sources.Source` that, each time the stream reaches its entry, calls the
app with a fresh ``GET`` for that path and query and streams the body of the response
into the archive. The answer must be ``200``; its ``Content-Length``, when given, and the
number of bytes actually sent must equal the size the manifest promised (the engine
checks the byte count, this module the status and header).

Security note: a sub-request runs with the privileges of the app, inside the server,
without passing through any middleware outside the one that issues it (as an nginx
sub-request skips ``location`` access rules the client would hit). Which of the
client's headers it carries is the app's choice (``X-Archive-Pass-Headers``); by default
it carries only ``Host``, so credentials reach sub-requests only when the app asks.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Optional, Sequence

from zipwsgi.engine.sources import ChunkReader, Reader, Source
from zipwsgi.errors import SubrequestError
from zipwsgi.http.wsgi import Captured, NoStatusError, close_all

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

__all__ = ["SubrequestSource", "subrequest_environ"]

#: Set in the environ of every sub-request, so the app can tell them apart.
SUBREQUEST_KEY = "zipwsgi.subrequest"

#: Request headers that make an app answer a part of a resource, or nothing: they belong
#: to the archive response, never to the requests that fetch its parts (or its manifest).
CONDITIONAL_KEYS = (
    "HTTP_RANGE",
    "HTTP_IF_RANGE",
    "HTTP_IF_MATCH",
    "HTTP_IF_NONE_MATCH",
    "HTTP_IF_MODIFIED_SINCE",
    "HTTP_IF_UNMODIFIED_SINCE",
)

# Request headers a sub-request never inherits, whatever X-Archive-Pass-Headers says:
# the body belongs to the client's request, and the range/conditionals to the archive.
_NEVER_PASSED = frozenset(
    {
        *CONDITIONAL_KEYS,
        "CONTENT_LENGTH",
        "CONTENT_TYPE",
        "HTTP_CONTENT_LENGTH",
        "HTTP_CONTENT_TYPE",
        "HTTP_TRANSFER_ENCODING",
        "HTTP_EXPECT",
        # Servers' copies of the client's raw request line (gunicorn, uWSGI, mod_wsgi):
        # they would contradict PATH_INFO and QUERY_STRING.
        "REQUEST_URI",
        "RAW_URI",
    }
)


def subrequest_environ(
    environ: Mapping[str, Any],
    location: str,
    query: str = "",
    pass_headers: Sequence[str] = (),
) -> dict[str, Any]:
    """A ``GET`` environ for ``location`` (a decoded path), derived from the client's.

    Server and connection keys (``SERVER_NAME``, ``wsgi.url_scheme``, ``REMOTE_ADDR``...)
    are kept; of the client's headers only ``Host`` and those named in ``pass_headers``
    (header names, any case) are. A location starting with the app's ``SCRIPT_NAME`` is
    taken as a full path and made relative to it; any other is a path inside the app.
    """
    wanted = {"HTTP_HOST"} | {
        "HTTP_" + name.strip().upper().replace("-", "_") for name in pass_headers if name.strip()
    }
    sub: dict[str, Any] = {
        key: value
        for key, value in environ.items()
        if (not key.startswith("HTTP_") or key in wanted) and key not in _NEVER_PASSED
    }
    script_name = environ.get("SCRIPT_NAME", "")
    # PEP 3333: PATH_INFO is the URL's bytes decoded as latin-1.
    path = location.encode("utf-8").decode("latin-1")
    if script_name and (path == script_name or path.startswith(script_name + "/")):
        path = path[len(script_name) :]
    sub.update(
        {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_LENGTH": "0",
            "wsgi.input": io.BytesIO(b""),
            SUBREQUEST_KEY: True,
        }
    )
    sub.pop("CONTENT_TYPE", None)
    # Keys frameworks cache parsed objects under would describe the client's request.
    for key in [k for k in sub if k.startswith(("webob.", "werkzeug.", "bottle.", "paste."))]:
        del sub[key]
    return sub


class SubrequestSource(Source):
    """Entry data produced by calling ``app`` with a ``GET`` for one location.

    ``size`` is the manifest's promise; every :meth:`open` is a fresh request, so the
    source can be read again (ranges, a second pass). Nothing runs until opened.
    """

    __slots__ = ("app", "environ", "location", "size")
    reopenable = True

    def __init__(
        self, app: WSGIApplication, environ: Mapping[str, Any], size: int, location: str
    ) -> None:
        super().__init__()
        self.app = app
        self.environ = dict(environ)
        self.size = size
        self.location = location

    def describe(self) -> str:
        return f"sub-request GET {self.location}"

    def _call(self) -> Captured:
        """Run the app up to its status line; the caller owns (and closes) the body."""
        environ = dict(self.environ)
        environ["wsgi.input"] = io.BytesIO(b"")
        response = Captured()
        try:
            response.call(self.app, environ)
        except NoStatusError as exc:
            raise SubrequestError(f"{self.describe()}: the app sent no status") from exc
        except Exception as exc:
            raise SubrequestError(f"{self.describe()}: the app raised {exc!r}") from exc
        try:
            self._check(response)
        except BaseException:
            response.close()
            raise
        return response

    def _check(self, response: Captured) -> None:
        status = response.status
        if not status.startswith("200"):
            raise SubrequestError(f"{self.describe()}: answered {status!r}, not 200", status)
        if response.header("X-Archive-Files") is not None:
            raise SubrequestError(f"{self.describe()}: answered with a manifest (nested "
                                  "archives are not supported)", status)
        length = response.header("Content-Length")
        if length is not None and length.strip().isdigit() and int(length) != self.size:
            raise SubrequestError(
                f"{self.describe()}: Content-Length is {int(length)}, the manifest "
                f"promised {self.size} bytes",
                status,
            )

    def check(self) -> None:
        """Issue the request and check status and length without reading the body.

        Lets the middleware answer 502 before the first byte instead of cutting the
        download halfway through; costs one extra call of the app per entry.
        """
        self._call().close()

    def open(self) -> Reader:
        response = self._call()
        return _BodyReader(response.written, response.body)


class _BodyReader(ChunkReader):
    """Re-chunks a WSGI body (after what it passed to ``write()``); closes it when done."""

    __slots__ = ("body",)

    def __init__(self, written: list[bytes], body: Iterable[bytes]) -> None:
        super().__init__(None, b"".join(written))
        self.body = body

    def next_chunk(self) -> Optional[bytes]:
        if self.it is None:
            self.it = iter(self.body)
        try:
            chunk = next(self.it)
        except StopIteration:
            return None
        except Exception as exc:
            raise SubrequestError(f"the sub-request's body raised {exc!r}") from exc
        if not isinstance(chunk, (bytes, bytearray)):
            raise SubrequestError(
                f"the sub-request's body yielded {type(chunk).__name__}, not bytes"
            )
        return bytes(chunk)

    def close(self) -> None:
        body, self.body = self.body, ()
        close_all((body,))
