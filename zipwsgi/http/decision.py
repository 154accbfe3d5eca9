"""The HTTP decision for one representation: preconditions, ranges, multipart framing.

Everything HTTP says about answering ``GET``/``HEAD`` (and ``POST`` selections) of a
byte representation lives in :func:`decide`, once: RFC 9110 preconditions in the order
of section 13.2.2, then Range with If-Range (14.2, 13.1.5), single and multipart 206
(15.3.7, 14.6), 304, 412 and 416. Archives from the middleware and the standalone app
and the app's single files all answer through it (via
:mod:`zipwsgi.http.responses`).

The module is pure on purpose: header strings and integers in, a :class:`Decision` out;
no WSGI environ, no WebOb, no I/O. A WSGI adapter (``responses.py``) maps environ keys
to header names and lazily fetches each byte range; an ASGI adapter can reuse the same
function with the ``headers`` of its scope (lower-cased names, repeated fields joined
with ``", "``) and send the same status, headers and parts.

Choices where the RFC leaves room, so callers can rely on them:

- Ranges that overlap or touch are coalesced (15.3.7.2 allows it); the parts keep the
  order in which the client asked for them, a coalesced part taking the place of its
  earliest member (15.3.7.2: "in the same order ... excluding those ... coalesced").
  Ranges separated by a gap are never merged: a client gets only bytes it asked for.
- Abuse bounds (14.2 allows ignoring a Range field): more than :data:`MAX_RANGES`
  range-specs, or satisfiable ranges adding up to more than the whole representation,
  give ``200`` with the whole body.
- A syntactically invalid Range (unknown unit, garbage, an inverted ``5-3`` range-spec,
  which 14.1.1 calls invalid) is ignored: ``200`` with the whole body (14.2: "MAY
  ignore"). ``416`` with ``Content-Range: bytes */N`` comes only when the Range is valid
  and *no* range-spec in it is satisfiable (15.5.17).
- ``HEAD`` gets exactly the status and headers ``GET`` would (9.3.2), including 206 for
  a Range, and no body.
- The multipart boundary is derived from the validators, so every replica and every
  retry produces the same bytes for the same representation and Range.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Mapping, Optional

from zipwsgi.http.fields import (
    MAX_RANGES,
    coalesce,
    entity_tags,
    format_http_date,
    parse_entity_tag,
    parse_http_date,
    parse_range,
    satisfiable,
)

__all__ = [
    "MAX_RANGES",
    "Decision",
    "Part",
    "Representation",
    "decide",
    "format_http_date",
    "parse_entity_tag",
    "parse_http_date",
]

_REASONS = {
    200: "OK",
    206: "Partial Content",
    304: "Not Modified",
    412: "Precondition Failed",
    416: "Range Not Satisfiable",
}

# Representation metadata (RFC 9110 8) a 304, 412 or 416 must not carry from the 200:
# those answers do not describe the representation's bytes.
_CONTENT_HEADERS = frozenset({
    "content-type", "content-length", "content-range", "content-disposition",
    "content-encoding", "content-language", "content-md5", "accept-ranges",
})
_VALIDATORS = frozenset({"etag", "last-modified"})
# What a 304/412/416 removes: all of the above (a 304 sets the validators again).
_NO_CONTENT = _CONTENT_HEADERS | _VALIDATORS
# What a 200/206 removes: the fields the decision sets itself. The caller's other
# representation headers (Content-Disposition, say) stay.
_OWN_HEADERS = frozenset({
    "content-type", "content-length", "content-range", "accept-ranges",
}) | _VALIDATORS


@dataclass(frozen=True)
class Representation:
    """What the server knows about the selected representation before sending it.

    ``size`` is None when it cannot be known in advance (deflate): no Content-Length and
    no ranges then. ``etag`` is the opaque-tag without quotes; ``etag_weak`` marks a
    weak one (never matches If-Match or If-Range, RFC 9110 8.8.3.2). ``last_modified``
    is in whole seconds since the epoch. ``ranges`` False turns Range support off.
    """

    size: Optional[int]
    content_type: str
    etag: Optional[str] = None
    etag_weak: bool = False
    last_modified: Optional[int] = None
    ranges: bool = True

    @property
    def rangeable(self) -> bool:
        return self.ranges and self.size is not None


@dataclass(frozen=True)
class Part:
    """Bytes ``[start, stop)`` of the representation, preceded by ``head`` (the multipart
    delimiter and part header fields; empty for a single range or the whole body)."""

    head: bytes
    start: int
    stop: int


@dataclass(frozen=True)
class Decision:
    """What to answer: ``status``, the header fields to set (replacing any of the same
    name) and to remove, and the body.

    The body is ``content`` (a short text of our own for 412/416), or else the
    representation: all of it when ``parts`` is None, else each part's ``head`` followed
    by its byte range, then ``tail``. ``send_body`` is False for HEAD and 304: the
    headers are the same, nothing is read.
    """

    status: int
    headers: tuple[tuple[str, str], ...]
    remove: frozenset[str]
    parts: Optional[tuple[Part, ...]] = None
    tail: bytes = b""
    content: Optional[bytes] = None
    send_body: bool = True
    boundary: Optional[str] = None

    @property
    def status_line(self) -> str:
        return f"{self.status} {_REASONS[self.status]}"

    @property
    def ranges(self) -> tuple[tuple[int, int], ...]:
        """The byte ranges sent, ``[start, stop)``; empty unless the status is 206."""
        return tuple((p.start, p.stop) for p in self.parts or ()) if self.status == 206 else ()


def decide(method: str, headers: Mapping[str, str], rep: Representation) -> Decision:
    """The answer to ``method`` with request ``headers`` (lower-case names) for ``rep``.

    RFC 9110 13.2.2, in its order: If-Match (strong comparison, ``*`` passes since the
    representation exists), else If-Unmodified-Since; If-None-Match (weak comparison;
    304 for GET/HEAD, 412 otherwise), else If-Modified-Since (GET/HEAD only); then Range,
    honoured only when If-Range (if any) matches strongly (13.1.5).
    """
    method = method.upper()
    safe = method in ("GET", "HEAD")

    if_match = headers.get("if-match")
    if if_match is not None:
        if not _if_match(if_match, rep):
            return _refusal(412, method, rep)
    else:
        since = _header_date(headers, "if-unmodified-since")
        # 13.1.4: ignored without a modification date; the date counts in whole seconds.
        if since is not None and rep.last_modified is not None and rep.last_modified > since:
            return _refusal(412, method, rep)

    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        if _if_none_match_fails(if_none_match, rep):
            return _not_modified(rep) if safe else _refusal(412, method, rep)
    elif safe:
        since = _header_date(headers, "if-modified-since")
        if since is not None and rep.last_modified is not None and rep.last_modified <= since:
            return _not_modified(rep)

    # 14.2: GET is the only method with range semantics; HEAD mirrors GET (9.3.2).
    range_value = headers.get("range")
    if range_value is None or not safe or not rep.rangeable:
        return _whole(method, rep)
    if_range = headers.get("if-range")
    if if_range is not None and not _if_range(if_range, rep):
        return _whole(method, rep)
    assert rep.size is not None  # rangeable
    specs = parse_range(range_value)
    if specs is None:
        return _whole(method, rep)
    ranges = satisfiable(specs, rep.size)
    if ranges is None:
        return _whole(method, rep)
    if not ranges:
        return _refusal(416, method, rep)
    if sum(stop - start for start, stop in ranges) > rep.size:
        return _whole(method, rep)
    return _partial(method, rep, coalesce(ranges))


# -- preconditions --------------------------------------------------------------------


def _if_match(value: str, rep: Representation) -> bool:
    """13.1.1: ``*`` is true for an existing representation; else a strong match."""
    if value.strip() == "*":
        return True
    if rep.etag is None or rep.etag_weak:
        return False
    return any(not weak and tag == rep.etag for weak, tag in entity_tags(value))


def _if_none_match_fails(value: str, rep: Representation) -> bool:
    """13.1.2: the condition is *false* (304/412) when ``*`` or a weak match."""
    if value.strip() == "*":
        return True
    if rep.etag is None:
        return False
    return any(tag == rep.etag for _, tag in entity_tags(value))


def _if_range(value: str, rep: Representation) -> bool:
    """13.1.5: an entity-tag must match strongly; a date must equal Last-Modified
    exactly (a later date names another representation, whatever WebOb thinks)."""
    value = value.strip()
    if value.startswith(('"', "W/")):
        tags = list(entity_tags(value))
        if len(tags) != 1 or rep.etag is None or rep.etag_weak:
            return False
        weak, tag = tags[0]
        return not weak and tag == rep.etag
    date = parse_http_date(value)
    return date is not None and rep.last_modified is not None and date == rep.last_modified


def _header_date(headers: Mapping[str, str], name: str) -> Optional[int]:
    value = headers.get(name)
    return None if value is None else parse_http_date(value)


# -- the answers ----------------------------------------------------------------------


def _validators(rep: Representation) -> list[tuple[str, str]]:
    headers = []
    if rep.etag is not None:
        headers.append(("ETag", ('W/"%s"' if rep.etag_weak else '"%s"') % rep.etag))
    if rep.last_modified is not None:
        headers.append(("Last-Modified", format_http_date(rep.last_modified)))
    return headers


def _accept_ranges(rep: Representation) -> list[tuple[str, str]]:
    return [("Accept-Ranges", "bytes")] if rep.rangeable else []


def _whole(method: str, rep: Representation) -> Decision:
    headers = [("Content-Type", rep.content_type)]
    if rep.size is not None:
        headers.append(("Content-Length", str(rep.size)))
    headers += _accept_ranges(rep) + _validators(rep)
    return Decision(200, tuple(headers), _OWN_HEADERS, send_body=method != "HEAD")


def _partial(method: str, rep: Representation, ranges: list[tuple[int, int]]) -> Decision:
    size = rep.size
    assert size is not None
    common = _accept_ranges(rep) + _validators(rep)
    if len(ranges) == 1:
        ((start, stop),) = ranges
        headers = [
            ("Content-Type", rep.content_type),
            ("Content-Length", str(stop - start)),
            ("Content-Range", f"bytes {start}-{stop - 1}/{size}"),
        ]
        return Decision(206, tuple(headers + common), _OWN_HEADERS,
                        parts=(Part(b"", start, stop),), send_body=method != "HEAD")
    boundary = _boundary(rep)
    parts = []
    delimiter = b"--" + boundary.encode("ascii")
    for index, (start, stop) in enumerate(ranges):
        head = (b"\r\n" if index else b"") + delimiter + (
            f"\r\nContent-Type: {rep.content_type}"
            f"\r\nContent-Range: bytes {start}-{stop - 1}/{size}\r\n\r\n"
        ).encode("latin-1")
        parts.append(Part(head, start, stop))
    tail = b"\r\n" + delimiter + b"--\r\n"
    length = sum(len(p.head) + p.stop - p.start for p in parts) + len(tail)
    headers = [
        ("Content-Type", f"multipart/byteranges; boundary={boundary}"),
        ("Content-Length", str(length)),
    ]
    return Decision(206, tuple(headers + common), _OWN_HEADERS, parts=tuple(parts), tail=tail,
                    send_body=method != "HEAD", boundary=boundary)


def _boundary(rep: Representation) -> str:
    """A boundary fixed by the representation's validators: the same bytes from every
    replica for the same Range. It is 40 characters of a SHA-256 digest, so it cannot be
    chosen to collide with content whose own bytes decide the validators."""
    seed = f"{rep.etag}\0{rep.etag_weak}\0{rep.size}\0{rep.last_modified}\0{rep.content_type}"
    return "zipwsgi-" + hashlib.sha256(seed.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _not_modified(rep: Representation) -> Decision:
    """15.4.5: the validators, none of the content's metadata, no body."""
    return Decision(304, tuple(_validators(rep)), _NO_CONTENT, content=b"", send_body=False)


def _refusal(status: int, method: str, rep: Representation) -> Decision:
    """412 or 416 with a short text of our own, before any byte of the representation."""
    if status == 416:
        text = "Range Not Satisfiable: no requested range lies inside the "
        text += f"{rep.size} bytes of this resource.\n"
    else:
        text = "Precondition Failed: this resource does not match the request's "
        text += "If-Match, If-Unmodified-Since or If-None-Match.\n"
    content = text.encode("ascii")
    headers = [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(content))),
    ]
    if status == 416:
        # 15.5.17: the current length, so the client can correct its range.
        headers += [("Content-Range", f"bytes */{rep.size}")] + _accept_ranges(rep)
    send = method != "HEAD"
    return Decision(status, tuple(headers), _NO_CONTENT,
                    content=content if send else b"", send_body=send)


