"""HTTP Basic authentication in front of a WSGI app (RFC 7617), for ``zipwsgi serve``.

Usage::

    from zipwsgi.app.auth import BasicAuth
    application = BasicAuth(ZipApp("/srv/share"), "alice", "s3cret", realm="share")

Every request without the right ``Authorization: Basic`` credentials gets a small 401
with ``WWW-Authenticate: Basic realm="..."``; the wrapped app never sees it. The right
ones pass through with ``REMOTE_USER`` set.

Security note: Basic sends the password in clear on every request, so use it over TLS
(a reverse proxy, see the README) or on a network you trust. Credentials are compared as
SHA-256 digests with :func:`hmac.compare_digest`, so the time taken says nothing about
how much of a guess was right, nor how long the password is. Nothing here logs them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["BasicAuth", "parse_credentials"]

_BODY = b"401 Unauthorized: this server needs a user name and password.\n"


def parse_credentials(text: str) -> tuple[str, str]:
    """``"user:password"`` as a pair; ValueError (without echoing it) when malformed.

    The user name ends at the first colon (RFC 7617 2: it cannot contain one); the
    password may contain colons. Surrounding line breaks (from a file) are dropped.
    """
    user, colon, password = text.strip("\r\n").partition(":")
    if not colon or not user or not password:
        raise ValueError("credentials must look like USER:PASSWORD, both non-empty")
    return user, password


def _digest(credentials: bytes) -> bytes:
    return hashlib.sha256(credentials).digest()


class BasicAuth:
    """Let a request through to ``app`` only with the given user name and password."""

    def __init__(
        self, app: WSGIApplication, username: str, password: str, realm: str = "zipwsgi"
    ) -> None:
        if ":" in username:
            raise ValueError("a Basic user name cannot contain ':'")
        self.app = app
        self.username = username
        # The realm is often a folder's name (zipwsgi serve): anything but printable ASCII
        # (CR/LF, or 写真, which is not latin-1) would make every 401 a server error.
        realm = "".join(c if " " <= c <= "~" else "_" for c in realm)
        self.realm = realm.replace("\\", "\\\\").replace('"', '\\"')
        self._expected = _digest(f"{username}:{password}".encode())

    def is_allowed(self, environ: WSGIEnvironment) -> bool:
        """Whether the request carries the right credentials (override to change how)."""
        scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").strip().partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            given = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(_digest(given), self._expected)

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        if self.is_allowed(environ):
            environ["REMOTE_USER"] = self.username
            return self.app(environ, start_response)
        start_response(
            "401 Unauthorized",
            [
                ("WWW-Authenticate", f'Basic realm="{self.realm}", charset="UTF-8"'),
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-Length", str(len(_BODY))),
                ("Cache-Control", "no-store"),
            ],
        )
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [_BODY]
