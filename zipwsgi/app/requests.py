"""What the standalone app reads from a request: paths as the file system spells them,
form fields, the archive format asked for; and the URLs it writes back."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Optional
from urllib.parse import quote, unquote_to_bytes

import webob

from zipwsgi.engine.choice import SUFFIXES, ZIP, format_name
from zipwsgi.paths import Found

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

__all__ = [
    "Parts",
    "Problem",
    "accepted_format",
    "archive_suffix",
    "chosen_format",
    "form_fields",
    "path_info",
    "printable",
    "printable_names",
    "script_name",
    "url",
]

Parts = tuple[str, ...]


class Problem(Exception):
    """An answer other than the happy path: status, a sentence for people, extra headers."""

    def __init__(self, status: int, message: str, **headers: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def printable_names(found: Iterable[Found]) -> Iterator[Found]:
    """Walked entries with names a browser can show (see :func:`printable`)."""
    for item in found:
        item.arcname = printable(item.arcname)
        yield item


def path_info(environ: WSGIEnvironment) -> str:
    """PATH_INFO as the file system spells names: bytes (PEP 3333's latin-1 str) decoded
    like ``os.fsdecode``, so names that are not UTF-8 still match."""
    try:
        return os.fsdecode(environ.get("PATH_INFO", "").encode("latin-1"))
    except UnicodeEncodeError:  # a server that broke PEP 3333's rule
        raise Problem(400, "The request path is malformed.") from None


def printable(name: str) -> str:
    """A name whose bytes were not UTF-8 (``os.fsdecode`` kept them as surrogates) with
    each such byte shown as U+FFFD: zip names must be valid UTF-8."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def script_name(environ: WSGIEnvironment) -> str:
    return quote(environ.get("SCRIPT_NAME", "").encode("latin-1").rstrip(b"/"), safe="/")


def url(base: str, parts: Parts, *, slash: bool) -> str:
    """An absolute path under ``base`` with every segment percent-encoded."""
    path = "".join("/" + quote(os.fsencode(part), safe="") for part in parts)
    return base + (path + "/" if slash else path or "/")


def form_fields(data: bytes) -> list[tuple[str, str]]:
    """Decode ``application/x-www-form-urlencoded`` bytes, names decoded like file names.

    Not ``urllib.parse.parse_qsl``: it cannot take raw non-ASCII bytes in a query string.
    """
    fields = []
    for pair in data.split(b"&"):
        if not pair:
            continue
        key, _, value = pair.partition(b"=")
        fields.append((
            os.fsdecode(unquote_to_bytes(key.replace(b"+", b" "))),
            os.fsdecode(unquote_to_bytes(value.replace(b"+", b" "))),
        ))
    return fields


#: What a folder URL can answer, by media type, in order of preference on a tie.
_ACCEPTED: dict[str, Optional[str]] = {
    "text/html": None,
    "application/zip": ZIP,
    "application/x-tar": "tar",
    "application/gzip": "tar.gz",
}


def accepted_format(request: webob.Request) -> Optional[str]:
    """The archive format the client prefers to the page (``Accept: application/zip``,
    ``application/x-tar``, ``application/gzip`` for a tar.gz), or None for the page.

    Browsers send ``*/*``, which matches all; ties go to the page, then in this order.
    """
    offers = request.accept.acceptable_offers(list(_ACCEPTED))
    return _ACCEPTED[offers[0][0]] if offers else None


def chosen_format(fields: list[tuple[str, str]]) -> Optional[str]:
    """The ``format`` field's archive format (the first one given), or None if absent;
    400 for a value that names none."""
    for key, value in fields:
        if key == "format":
            try:
                return format_name(value)
            except ValueError:
                raise Problem(400, "Unknown archive format: choose zip, tar or tar.gz.") from None
    return None


def archive_suffix(name: str) -> tuple[str, str]:
    """(stem, format) of a name ending in an archive suffix the app serves (``.zip``,
    ``.tar``, ``.tar.gz``; case matters, as in file names), else ``("", "zip")``."""
    for suffix, fmt in SUFFIXES:
        if suffix[1:] == fmt and name.endswith(suffix):
            return name[: -len(suffix)], fmt
    return "", ZIP
