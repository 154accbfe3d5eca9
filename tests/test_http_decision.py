"""The pure HTTP decision (zipwsgi.http.decision): RFC 9110 preconditions, ranges, framing.

No WSGI here: header strings in, a Decision out. The last tests run the WSGI adapter over
an in-memory body, with hypothesis, to show that the multipart body parsed back gives
exactly the requested slices and that Content-Length is exact.
"""

from __future__ import annotations

import re
from typing import Iterable, Iterator, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zipwsgi.http.decision import (
    MAX_RANGES,
    Decision,
    Representation,
    decide,
    format_http_date,
    parse_entity_tag,
    parse_http_date,
)
from zipwsgi.http.responses import RangedResponse

LM = 1_700_000_000  # Tue, 14 Nov 2023 22:13:20 GMT
LM_TEXT = format_http_date(LM)
BEFORE = format_http_date(LM - 1)
AFTER = format_http_date(LM + 1)
REP = Representation(size=1000, content_type="application/zip", etag="v1", last_modified=LM)


def d(method: str = "GET", rep: Representation = REP, **headers: str) -> Decision:
    return decide(method, {k.replace("_", "-").lower(): v for k, v in headers.items()}, rep)


def header(decision: Decision, name: str) -> Optional[str]:
    found = [v for n, v in decision.headers if n.lower() == name.lower()]
    return found[0] if found else None


# --- dates and entity-tags -------------------------------------------------------------


def test_http_dates_in_all_three_forms():
    assert parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT") == 784111777
    assert parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT", now_year=2026) == 784111777
    assert parse_http_date("Sun Nov  6 08:49:37 1994") == 784111777
    assert format_http_date(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT"
    # Two-digit years more than 50 years ahead are in the past century (5.6.7).
    assert parse_http_date("Saturday, 01-Jan-77 00:00:00 GMT", now_year=2026) == 220924800
    assert parse_http_date("Tuesday, 01-Jan-70 00:00:00 GMT", now_year=2026) == 3155760000


@pytest.mark.parametrize("value", [
    "", "0", "-1", "yesterday", "Sun, 06 Nov 1994 08:49:37", "Sun, 06 Nov 1994 08:49:37 CET",
    "Sun, 31 Feb 1994 08:49:37 GMT", "Sun, 06 Nov 1994 25:49:37 GMT",
    "Sun, 06 Nov 1994 08:49:37 GMT, Mon, 07 Nov 1994 08:49:37 GMT", "1994-11-06T08:49:37Z",
])
def test_invalid_dates_are_none(value):
    assert parse_http_date(value) is None


def test_entity_tags():
    assert parse_entity_tag('"abc"') == (False, "abc")
    assert parse_entity_tag('W/"abc"') == (True, "abc")
    assert parse_entity_tag("abc") is None
    assert parse_entity_tag('"a" "b"') is None


# --- the decision table ------------------------------------------------------------------


def test_plain_get_and_head():
    get, head = d("GET"), d("HEAD")
    assert get.status == head.status == 200
    assert get.headers == head.headers
    assert dict(get.headers) == {
        "Content-Type": "application/zip", "Content-Length": "1000",
        "Accept-Ranges": "bytes", "ETag": '"v1"', "Last-Modified": LM_TEXT,
    }
    assert get.send_body and not head.send_body and get.parts is None


@pytest.mark.parametrize(("value", "status"), [
    ('"v1"', 200), ('"v2"', 412), ("*", 200), ('"a", "v1", "b"', 200), ('"a","b"', 412),
    ('W/"v1"', 412),  # strong comparison: a weak tag never matches (13.1.1)
    ("v1", 412),  # not an entity-tag: matches nothing
    ('"a", junk, "v1"', 200),  # a malformed member does not spoil the others
])
def test_if_match(value, status):
    assert d(If_Match=value).status == status
    assert d("POST", If_Match=value).status == status


def test_if_match_with_no_or_a_weak_etag_fails_except_star():
    for rep in (Representation(size=10, content_type="x/y"),
                Representation(size=10, content_type="x/y", etag="v1", etag_weak=True)):
        assert d(rep=rep, If_Match='"v1"').status == 412
        assert d(rep=rep, If_Match="*").status == 200


@pytest.mark.parametrize(("value", "status"), [
    (LM_TEXT, 200), (AFTER, 200), (BEFORE, 412),
    ("not a date", 200),  # invalid: ignored (13.1.4)
    ("Tue Nov 14 22:13:19 2023", 412),  # asctime form, one second before Last-Modified
])
def test_if_unmodified_since(value, status):
    assert d(If_Unmodified_Since=value).status == status


def test_if_unmodified_since_is_ignored_when_if_match_is_present_or_no_date_is_known():
    assert d(If_Match='"v1"', If_Unmodified_Since=BEFORE).status == 200
    assert d(If_Match='"v2"', If_Unmodified_Since=AFTER).status == 412
    no_date = Representation(size=10, content_type="x/y", etag="v1")
    assert d(rep=no_date, If_Unmodified_Since=BEFORE).status == 200


@pytest.mark.parametrize(("value", "get", "post"), [
    ('"v1"', 304, 412), ('W/"v1"', 304, 412),  # weak comparison (13.1.2)
    ("*", 304, 412), ('"x", "v1"', 304, 412), ('"x"', 200, 200),
])
def test_if_none_match(value, get, post):
    assert d("GET", If_None_Match=value).status == get
    assert d("HEAD", If_None_Match=value).status == get
    assert d("POST", If_None_Match=value).status == post


@pytest.mark.parametrize(("value", "status"), [
    (LM_TEXT, 304), (AFTER, 304), (BEFORE, 200), ("garbage", 200),
])
def test_if_modified_since(value, status):
    assert d(If_Modified_Since=value).status == status
    assert d("POST", If_Modified_Since=value).status == 200  # GET/HEAD only (13.1.3)


def test_if_none_match_overrides_if_modified_since():
    assert d(If_None_Match='"x"', If_Modified_Since=AFTER).status == 200
    assert d(If_None_Match='"v1"', If_Modified_Since=BEFORE).status == 304


@pytest.mark.parametrize(("headers", "status"), [
    # 13.2.2 order: If-Match failure beats a matching If-None-Match (412, not 304) ...
    ({"If_Match": '"nope"', "If_None_Match": '"v1"'}, 412),
    ({"If_Unmodified_Since": BEFORE, "If_None_Match": '"v1"'}, 412),
    # ... preconditions beat Range (no 416, no 206) ...
    ({"If_Match": '"nope"', "Range": "bytes=5000-"}, 412),
    ({"If_None_Match": '"v1"', "Range": "bytes=0-1"}, 304),
    ({"If_Modified_Since": LM_TEXT, "Range": "bytes=0-1"}, 304),
    # ... and passing ones let Range through.
    ({"If_Match": '"v1"', "If_Unmodified_Since": LM_TEXT, "If_None_Match": '"x"',
      "Range": "bytes=0-1"}, 206),
    ({"If_Match": "*", "Range": "bytes=5000-"}, 416),
])
def test_evaluation_order(headers, status):
    assert d(**headers).status == status


def test_304_carries_validators_and_no_content_metadata():
    decision = d(If_None_Match='"v1"')
    assert dict(decision.headers) == {"ETag": '"v1"', "Last-Modified": LM_TEXT}
    assert {"content-type", "content-length", "content-disposition"} <= decision.remove
    assert not decision.send_body


def test_412_and_416_say_so_in_text_before_any_byte():
    failed = d(If_Match='"x"')
    assert failed.status_line == "412 Precondition Failed" and failed.parts is None
    assert header(failed, "Content-Length") == str(len(failed.content or b""))
    assert "etag" in failed.remove and header(failed, "ETag") is None
    unsatisfiable = d(Range="bytes=1000-")
    assert unsatisfiable.status_line == "416 Range Not Satisfiable"
    assert header(unsatisfiable, "Content-Range") == "bytes */1000"
    assert d("HEAD", Range="bytes=1000-").content == b""


# --- Range and If-Range --------------------------------------------------------------------


@pytest.mark.parametrize(("value", "ranges"), [
    ("bytes=0-9", [(0, 10)]), ("bytes=990-", [(990, 1000)]), ("bytes=-10", [(990, 1000)]),
    ("bytes=-5000", [(0, 1000)]), ("bytes=900-99999", [(900, 1000)]),
    ("BYTES = 0-0", [(0, 1)]), ("bytes=0-0, ,", [(0, 1)]),
    ("bytes=0-3,100-199,-22", [(0, 4), (100, 200), (978, 1000)]),
    ("bytes=100-199,0-3", [(100, 200), (0, 4)]),  # the client's order is kept
    ("bytes=0-9,10-19", [(0, 20)]),  # touching: coalesced
    ("bytes=50-59,0-9,5-54", [(0, 60)]),  # overlapping chain: one part
    ("bytes=500-509,0-9,5-14", [(500, 510), (0, 15)]),  # merged part stays where it first came
    ("bytes=0-9,1000-2000", [(0, 10)]),  # the unsatisfiable one is dropped
    ("bytes=0-9,12-19", [(0, 10), (12, 20)]),  # a gap: two parts
    ("bytes=999999999999999999999999-,0-0", [(0, 1)]),
])
def test_ranges(value, ranges):
    decision = d(Range=value)
    assert decision.status == 206 and list(decision.ranges) == ranges
    multipart = len(ranges) > 1
    assert (decision.boundary is not None) == multipart
    content_type = header(decision, "Content-Type") or ""
    assert content_type.startswith("multipart/byteranges; boundary=") == multipart
    if not multipart:
        (start, stop), = ranges
        assert header(decision, "Content-Range") == f"bytes {start}-{stop - 1}/1000"
        assert header(decision, "Content-Length") == str(stop - start)


@pytest.mark.parametrize("value", [
    "bytes=5-3",  # inverted: the whole ranges-specifier is invalid (14.1.1) -> ignored
    "bytes=0-1,5-3", "items=0-1", "bytes=", "bytes=abc", "bytes 0-1", "0-1", "bytes=--1",
    "bytes=1-2-3", "bytes=0-1;2-3",
    "bytes=" + ",".join(f"{i}-{i}" for i in range(MAX_RANGES + 1)),  # too many
    "bytes=0-,0-",  # adds up to more than the whole: abuse, whole body
    "bytes=0-599,400-999",
])
def test_ranges_ignored_give_the_whole_body(value):
    decision = d(Range=value)
    assert decision.status == 200 and decision.parts is None
    assert header(decision, "Content-Length") == "1000"


def test_exactly_max_ranges_are_served():
    value = "bytes=" + ",".join(f"{2 * i}-{2 * i}" for i in range(MAX_RANGES))
    assert len(d(Range=value).ranges) == MAX_RANGES


@pytest.mark.parametrize("value", ["bytes=1000-", "bytes=1000-1000,2000-", "bytes=-0"])
def test_nothing_satisfiable_gives_416(value):
    assert d(Range=value).status == 416


def test_zero_length_representation():
    empty = Representation(size=0, content_type="text/plain", etag="e")
    assert d(rep=empty, Range="bytes=0-").status == 416
    assert d(rep=empty, Range="bytes=-5").status == 200  # satisfiable, but no 206 can say it


def test_range_needs_a_size_get_or_head_and_ranges_on():
    assert d("POST", Range="bytes=0-1").status == 200
    assert d("HEAD", Range="bytes=0-1").status == 206  # HEAD mirrors GET (9.3.2)
    unsized = Representation(size=None, content_type="application/zip", etag="v1")
    decision = d(rep=unsized, Range="bytes=0-1")
    assert decision.status == 200 and header(decision, "Content-Length") is None
    assert header(decision, "Accept-Ranges") is None
    off = Representation(size=10, content_type="x/y", ranges=False)
    assert d(rep=off, Range="bytes=0-1").status == 200


@pytest.mark.parametrize(("if_range", "status"), [
    ('"v1"', 206), ('"v2"', 200),
    ('W/"v1"', 200),  # a weak tag never matches If-Range (13.1.5)
    (LM_TEXT, 206),
    (AFTER, 200),  # WebOb says 206 here; the RFC wants an exact match
    (BEFORE, 200), ("garbage", 200), ('"v1", "v2"', 200),
])
def test_if_range(if_range, status):
    assert d(Range="bytes=3-", If_Range=if_range).status == status
    assert d(If_Range=if_range).status == 200  # without Range, If-Range is ignored


def test_if_range_with_a_weak_current_etag_or_no_date_never_matches():
    weak = Representation(size=10, content_type="x/y", etag="v1", etag_weak=True)
    assert d(rep=weak, Range="bytes=1-", If_Range='"v1"').status == 200
    assert d(rep=weak, If_None_Match='"v1"').status == 304  # but weak comparison works
    undated = Representation(size=10, content_type="x/y", etag="v1")
    assert d(rep=undated, Range="bytes=1-", If_Range=LM_TEXT).status == 200


def test_boundary_is_deterministic_and_follows_the_representation():
    first = d(Range="bytes=0-0,5-5").boundary
    assert first == d(Range="bytes=9-9,2-2").boundary
    other = Representation(size=1000, content_type="application/zip", etag="v2",
                           last_modified=LM)
    assert first != d(rep=other, Range="bytes=0-0,5-5").boundary
    assert first is not None and len(first) <= 70  # RFC 2046


# --- the body, parsed back ------------------------------------------------------------


class BytesBody:
    """A RangedBody over bytes that records what was opened and closed."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.opened: list[tuple[int, Optional[int]]] = []
        self.parts_closed = 0
        self.closed = 0

    def app_iter_range(self, start: int, stop: Optional[int]) -> Iterable[bytes]:
        body = self

        class Part:
            def __iter__(self) -> Iterator[bytes]:
                body.opened.append((start, stop))
                chunk = body.data[start:stop]
                for i in range(0, len(chunk), 7):
                    yield chunk[i:i + 7]

            def close(self) -> None:
                body.parts_closed += 1

        return Part()

    def close(self) -> None:
        self.closed += 1


def call(data: bytes, method: str = "GET", **headers: str):
    body = BytesBody(data)
    response = RangedResponse(body, content_type="application/octet-stream", size=len(data),
                              etag="t", last_modified=LM)
    environ = {"REQUEST_METHOD": method}
    environ.update({"HTTP_" + k.upper(): v for k, v in headers.items()})
    captured: dict[str, object] = {}

    def start_response(status, headerlist, exc_info=None):
        captured["status"], captured["headers"] = status, dict(headerlist)

    iterable = response(environ, start_response)
    try:
        out = b"".join(iterable)
    finally:
        iterable.close()
    return captured["status"], captured["headers"], out, body


def parse_multipart(body: bytes, content_type: str, size: int) -> list[tuple[int, int, bytes]]:
    """Strictly parse a multipart/byteranges body: (start, stop, data) per part."""
    match = re.fullmatch(r"multipart/byteranges; boundary=([0-9A-Za-z'()+_,./:=?-]{1,70})",
                         content_type)
    assert match, content_type
    delimiter = b"--" + match[1].encode()
    parts, pos = [], 0
    while True:
        assert body[pos:pos + len(delimiter)] == delimiter, (pos, body[pos:pos + 80])
        pos += len(delimiter)
        if body[pos:] == b"--\r\n":
            return parts
        assert body[pos:pos + 2] == b"\r\n"
        end = body.index(b"\r\n\r\n", pos)
        fields = dict(line.split(": ", 1) for line in body[pos + 2:end].decode().split("\r\n"))
        assert fields["Content-Type"] == "application/octet-stream"
        first, last, total = map(int, re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)",
                                                   fields["Content-Range"]).groups())
        assert total == size and first <= last < size
        pos = end + 4
        parts.append((first, last + 1, body[pos:pos + last + 1 - first]))
        pos += last + 1 - first
        assert body[pos:pos + 2] == b"\r\n"
        pos += 2


def test_multipart_body_closes_every_part_and_the_source():
    data = bytes(range(256)) * 4
    status, headers, out, body = call(data, Range="bytes=0-3,100-199,-22")
    assert status == "206 Partial Content"
    assert int(headers["Content-Length"]) == len(out)
    parts = parse_multipart(out, headers["Content-Type"], len(data))
    assert [(a, b) for a, b, _ in parts] == [(0, 4), (100, 200), (1002, 1024)]
    assert all(chunk == data[a:b] for a, b, chunk in parts)
    assert body.opened == [(0, 4), (100, 200), (1002, 1024)]
    assert body.parts_closed == 3 and body.closed == 1


@pytest.mark.parametrize(("method", "headers"), [
    ("HEAD", {}), ("HEAD", {"Range": "bytes=0-3,9-9"}), ("GET", {"If_None_Match": '"t"'}),
    ("GET", {"If_Match": '"x"'}), ("GET", {"Range": "bytes=5000-"}),
])
def test_answers_without_the_representation_open_nothing_and_close_the_source(method, headers):
    status, _, out, body = call(b"x" * 100, method, **headers)
    assert body.opened == [] and body.closed == 1
    assert out == b"" or status[:3] in ("412", "416")


def test_head_headers_equal_get_headers():
    for headers in ({}, {"Range": "bytes=1-2"}, {"Range": "bytes=1-2,5-9"}):
        get, head = call(b"y" * 50, **headers), call(b"y" * 50, "HEAD", **headers)
        assert get[:2] == head[:2] and head[2] == b""


def test_a_disconnect_mid_part_closes_the_open_part_and_the_source():
    body = BytesBody(b"z" * 1000)
    response = RangedResponse(body, content_type="x/y", size=1000, etag="t")
    iterable = response({"REQUEST_METHOD": "GET", "HTTP_RANGE": "bytes=0-99,200-299"},
                        lambda *a: None)
    next(iter(iterable)), next(iter(iterable))  # the delimiter, then 7 bytes of part one
    iterable.close()
    assert body.parts_closed == 1 and body.closed == 1
    assert list(iterable) == []


def _int_range(pair: tuple[int, Optional[int]]) -> str:
    first, last = pair
    return f"{first}-{'' if last is None else last}"


_spec = st.one_of(
    st.tuples(st.integers(0, 1200), st.one_of(st.none(), st.integers(0, 1200)))
    .filter(lambda t: t[1] is None or t[1] >= t[0]).map(_int_range),
    st.integers(0, 1200).map(lambda n: f"-{n}"),
)


@settings(max_examples=400, deadline=None)
@given(size=st.integers(1, 1000), specs=st.lists(_spec, min_size=1, max_size=12))
def test_property_any_range_set_reads_back_as_its_slices(size, specs):
    data = bytes((i * 7 + 3) % 256 for i in range(size))
    status, headers, out, body = call(data, Range="bytes=" + ",".join(specs))
    assert body.closed == 1
    if status.startswith("200"):
        assert out == data
        return
    if status.startswith("416"):
        assert headers["Content-Range"] == f"bytes */{size}"
        return
    assert status.startswith("206") and int(headers["Content-Length"]) == len(out)
    if headers["Content-Type"].startswith("multipart/"):
        parts = parse_multipart(out, headers["Content-Type"], size)
        assert len(parts) > 1
    else:
        first, last = map(int, re.fullmatch(rf"bytes (\d+)-(\d+)/{size}",
                                            headers["Content-Range"]).groups())
        parts = [(first, last + 1, out)]
    for a, b, chunk in parts:
        assert chunk == data[a:b]
    # No byte twice, and every byte asked for that exists is sent.
    spans = sorted((a, b) for a, b, _ in parts)
    assert all(b1 < a2 for (_, b1), (a2, _) in zip(spans, spans[1:]))  # not even touching
    asked = set()
    for spec in specs:
        first_text, _, last_text = spec.partition("-")
        if first_text == "":
            asked.update(range(max(0, size - int(last_text)), size))
        else:
            stop = min(size, int(last_text) + 1) if last_text else size
            asked.update(range(int(first_text), stop))
    assert set().union(*(range(a, b) for a, b in spans)) == asked
