"""HTTP field values as RFC 9110 defines them: dates, entity-tags, byte ranges.

Parsers that take a header's string and give plain values (or None for anything to
ignore), so :mod:`zipwsgi.http.decision` reads as the decision it makes. Pure: no I/O,
no WSGI, no WebOb.
"""

from __future__ import annotations

import calendar
import datetime
import re
from typing import Optional, Sequence

__all__ = [
    "MAX_RANGES",
    "coalesce",
    "entity_tags",
    "format_http_date",
    "parse_entity_tag",
    "parse_http_date",
    "parse_range",
    "satisfiable",
]

#: More range-specs than this in one Range field: answered with the whole body (200).
MAX_RANGES = 64
#: Digits beyond this in a byte position are "larger than any representation" (and
#: keep ``int()`` of a hostile 1 MB number out of the way).
_MAX_DIGITS = 18
_HUGE = 10**_MAX_DIGITS

_ENTITY_TAG = re.compile(r'(W/)?"([\x21\x23-\x7e\x80-\xff]*)"')
OWS = " \t"


def entity_tags(value: str) -> list[tuple[bool, str]]:
    """The entity-tags of a ``#entity-tag`` list as (weak, opaque-tag); elements that
    are not entity-tags (unquoted tokens, say) are skipped: they match nothing."""
    tags = []
    pos, end = 0, len(value)
    while pos < end:
        while pos < end and (value[pos] in OWS or value[pos] == ","):
            pos += 1
        match = _ENTITY_TAG.match(value, pos)
        if match is not None:
            after = match.end()
            while after < end and value[after] in OWS:
                after += 1
            if after == end or value[after] == ",":
                tags.append((match.group(1) is not None, match.group(2)))
                pos = after
                continue
        comma = value.find(",", pos)  # a malformed element: skip to the next one
        pos = end if comma < 0 else comma
    return tags


def parse_entity_tag(value: str) -> Optional[tuple[bool, str]]:
    """One ``ETag`` field value as (weak, opaque-tag), or None if it is not one."""
    tags = entity_tags(value)
    return tags[0] if len(tags) == 1 and value.strip(OWS).endswith('"') else None


# -- HTTP-date (RFC 9110 5.6.7) -------------------------------------------------------

_MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}
_MONTH = "(" + "|".join(_MONTHS) + ")"
_TIME = r"(\d\d):(\d\d):(\d\d)"
_IMF_FIXDATE = re.compile(r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d\d) " + _MONTH
                          + r" (\d{4}) " + _TIME + " GMT", re.ASCII)
_RFC850 = re.compile(r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), "
                     r"(\d\d)-" + _MONTH + r"-(\d\d) " + _TIME + " GMT", re.ASCII)
_ASCTIME = re.compile(r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) " + _MONTH + r" ([ \d]\d) "
                      + _TIME + r" (\d{4})", re.ASCII)


def parse_http_date(value: str, *, now_year: Optional[int] = None) -> Optional[int]:
    """Seconds since the epoch for an HTTP-date in any of its three forms, or None.

    None means "not a valid HTTP-date", which every precondition must then ignore
    (13.1.3, 13.1.4). A two-digit rfc850 year more than 50 years ahead belongs to the
    previous century (5.6.7); ``now_year`` pins "now" for tests.
    """
    value = value.strip(OWS)
    fields: Optional[tuple[int, int, int, int, int, int]] = None
    if (m := _IMF_FIXDATE.fullmatch(value)) is not None:
        fields = (int(m[3]), _MONTHS[m[2]], int(m[1]), int(m[4]), int(m[5]), int(m[6]))
    elif (m := _ASCTIME.fullmatch(value)) is not None:
        fields = (int(m[6]), _MONTHS[m[1]], int(m[2]), int(m[3]), int(m[4]), int(m[5]))
    elif (m := _RFC850.fullmatch(value)) is not None:
        if now_year is None:
            now_year = datetime.datetime.now(datetime.timezone.utc).year
        year = now_year // 100 * 100 + int(m[3])
        if year > now_year + 50:
            year -= 100
        fields = (year, _MONTHS[m[2]], int(m[1]), int(m[4]), int(m[5]), int(m[6]))
    if fields is None:
        return None
    try:
        datetime.datetime(*fields)  # rejects 31 February and 25:00
    except ValueError:
        return None
    return calendar.timegm(fields + (0, 0, 0))


def format_http_date(seconds: int) -> str:
    """IMF-fixdate, the one form a sender generates (5.6.7)."""
    t = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    return t.strftime("%a, %d %b %Y %H:%M:%S GMT")


# -- ranges ---------------------------------------------------------------------------

# re.ASCII: DIGIT is 0-9 (RFC 5234); "\d" alone also takes "٣" or "３", and int() too.
_INT_RANGE = re.compile(r"(\d+)-(\d*)", re.ASCII)
_SUFFIX_RANGE = re.compile(r"-(\d+)", re.ASCII)
_Spec = tuple[Optional[int], Optional[int]]  # (first, last) or (None, suffix length)


def parse_range(value: str) -> Optional[list[_Spec]]:
    """14.1.1 ``bytes=`` range-set, or None for anything to ignore: another unit, a
    malformed or inverted range-spec, or more than :data:`MAX_RANGES` of them."""
    unit, equals, ranges = value.partition("=")
    if not equals or unit.strip(OWS).lower() != "bytes":
        return None
    specs: list[_Spec] = []
    for element in ranges.split(","):
        element = element.strip(OWS)
        if not element:  # 5.6.1: empty list elements do not count
            continue
        if len(specs) == MAX_RANGES:
            return None
        if (m := _INT_RANGE.fullmatch(element)) is not None:
            first, last = _number(m[1]), (_number(m[2]) if m[2] else None)
            if last is not None and last < first:
                return None
            specs.append((first, last))
        elif (m := _SUFFIX_RANGE.fullmatch(element)) is not None:
            specs.append((None, _number(m[1])))
        else:
            return None
    return specs or None


def _number(digits: str) -> int:
    digits = digits.lstrip("0") or "0"
    return _HUGE if len(digits) > _MAX_DIGITS else int(digits)


def satisfiable(specs: Sequence[_Spec], size: int) -> Optional[list[tuple[int, int]]]:
    """The satisfiable specs as ``[start, stop)``, clipped to the size (14.1.1/14.1.2).

    None means "serve the whole body": a zero-length representation asked for with a
    suffix range, which 14.1.1 calls satisfiable yet no Content-Range can describe.
    """
    ranges = []
    for first, last in specs:
        if first is None:
            assert last is not None
            if last == 0:
                continue
            if size == 0:
                return None
            ranges.append((max(0, size - last), size))
        elif first < size:
            ranges.append((first, size if last is None else min(last + 1, size)))
    return ranges


def coalesce(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Merge ranges that overlap or touch; order by each merged range's earliest
    appearance in the request (15.3.7.2)."""
    order = sorted(range(len(ranges)), key=lambda i: ranges[i])
    merged: list[list[int]] = []  # [start, stop, first index]
    for i in order:
        start, stop = ranges[i]
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], stop)
            merged[-1][2] = min(merged[-1][2], i)
        else:
            merged.append([start, stop, i])
    merged.sort(key=lambda m: m[2])
    return [(start, stop) for start, stop, _ in merged]
