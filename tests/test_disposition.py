"""Content-Disposition: real header parsers recover the name; nothing can be injected."""

from __future__ import annotations

import email.message
import email.utils
import http.client
import io
import re
import unicodedata
from typing import Callable

import pytest
import webob
from hypothesis import given, settings
from hypothesis import strategies as st

from zipwsgi.http.disposition import archive_filename, content_disposition

_PRINTABLE_ASCII_LINE = re.compile(r"[ -~]+")
# Unicode bidi controls, which content_disposition drops on purpose.
_BIDI = dict.fromkeys(
    map(ord, "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
)


def stdlib_filename(value: str) -> str | None:
    """The name the stdlib's RFC 2231 machinery decodes from ``value``.

    ``Message.get_filename()`` returns the *first* ``filename`` parameter, but RFC 6266
    section 4.3 says a recipient prefers ``filename*``, so pick that one when present;
    the decoding itself is all the stdlib's.
    """
    message = email.message.Message()
    message["Content-Disposition"] = value
    params = message.get_params(header="content-disposition") or []
    values = [v for k, v in params if k == "filename"]
    extended = [v for v in values if isinstance(v, tuple)]
    if not values:
        return None
    return email.utils.collapse_rfc2231_value((extended or values)[0])


def werkzeug_filename(value: str) -> str | None:
    http = pytest.importorskip("werkzeug.http")
    return http.parse_options_header(value)[1].get("filename")


def django_filename(value: str) -> str | None:
    http = pytest.importorskip("django.utils.http")
    return http.parse_header_parameters(value)[1].get("filename")


PARSERS = [stdlib_filename, werkzeug_filename, django_filename]


def header_lines(value: str) -> list[tuple[str, str]]:
    """Headers a client reads when the value is sent on the wire (latin-1, CRLF)."""
    raw = f"Content-Disposition: {value}\r\nContent-Type: application/zip\r\n\r\n"
    return list(http.client.parse_headers(io.BytesIO(raw.encode("latin-1"))).items())


def test_example_from_the_brief() -> None:
    assert content_disposition("Отчёт 2024.zip") == (
        'attachment; filename="_____ 2024.zip"; '
        "filename*=UTF-8''%D0%9E%D1%82%D1%87%D1%91%D1%82%202024.zip"
    )


def test_plain_ascii_name_has_no_extended_form() -> None:
    assert content_disposition("report-2024_v1.zip") == 'attachment; filename="report-2024_v1.zip"'


def test_inline_disposition() -> None:
    assert content_disposition("a.zip", "inline") == 'inline; filename="a.zip"'


@pytest.mark.parametrize("bad", ["", "attachment; x=1", "attach ment", "a\r\nb", "ä"])
def test_disposition_must_be_a_token(bad: str) -> None:
    with pytest.raises(ValueError, match="token"):
        content_disposition("a.zip", bad)


def test_accents_are_dropped_in_the_fallback() -> None:
    assert content_disposition("Café Müller.zip") == (
        "attachment; filename=\"Cafe Muller.zip\"; filename*=UTF-8''Caf%C3%A9%20M%C3%BCller.zip"
    )


def test_decomposed_input_is_sent_composed() -> None:
    # macOS file systems hand out NFD; the extended form carries the usual NFC spelling.
    assert content_disposition("Cafe\u0301.zip") == content_disposition("Café.zip")


def test_attr_chars_stay_literal_in_the_extended_form() -> None:
    value = content_disposition("é!#$&+^`|~-._.zip")
    assert value.endswith("filename*=UTF-8''%C3%A9!#$&+^`|~-._.zip")


@pytest.mark.parametrize(
    ("name", "fallback"),
    [
        ('say "hi".zip', "say _hi_.zip"),
        ("back\\slash.zip", "back_slash.zip"),
        ("a/b/c.zip", "a_b_c.zip"),
        ("100%.zip", "100_.zip"),
        ("tab\there.zip", "tabhere.zip"),
        ("\u0301", "_"),
        ("日本.zip", "__.zip"),
        ("ﬁle.zip", "file.zip"),  # NFKD unfolds the ligature
    ],
)
def test_fallback_is_safe_ascii(name: str, fallback: str) -> None:
    assert f'filename="{fallback}"' in content_disposition(name)


@pytest.mark.parametrize(
    "name",
    [
        "Отчёт 2024.zip",
        "Café Müller.zip",
        'quote " and backslash.zip',
        "100% sure; really=yes.zip",
        "日本語のファイル.zip",
        "emoji 📦 archive.zip",
        "it's fine.zip",
        "a,b;c=d.zip",
    ],
)
@pytest.mark.parametrize("parser", PARSERS)
def test_real_parsers_recover_the_name(name: str, parser: Callable[[str], str | None]) -> None:
    assert parser(content_disposition(name)) == name


def test_webob_sends_the_header_unchanged() -> None:
    value = content_disposition("Отчёт 2024.zip")
    response = webob.Response(content_disposition=value)
    assert response.headers["Content-Disposition"] == value
    assert stdlib_filename(response.headers["Content-Disposition"]) == "Отчёт 2024.zip"


@pytest.mark.parametrize(
    "name",
    [
        "evil.zip\r\nSet-Cookie: session=stolen",
        "evil.zip\nLocation: http://example.com/",
        "evil.zip\rX: y",
        'evil.zip"; filename="other.exe',
        'evil.zip"\r\n\r\n<script>alert(1)</script>',
        "evil\x00.zip",
        "evil\u2028\u0085.zip",
        'evil\\"; name=x.zip',
    ],
)
def test_injection_attempts_give_one_safe_header_line(name: str) -> None:
    value = content_disposition(name)
    assert _PRINTABLE_ASCII_LINE.fullmatch(value)
    # Exactly one filename and at most one filename*: nothing was smuggled in.
    assert value.count('filename="') == 1
    assert value.count("filename*=") <= 1
    assert [key for key, _ in header_lines(value)] == ["Content-Disposition", "Content-Type"]
    for parser in PARSERS:
        parsed = parser(value)
        assert parsed
        assert not any(c in parsed for c in "\r\n\x00\u2028\x85")


def test_injection_attempt_through_webob_response() -> None:
    response = webob.Response(content_disposition=content_disposition("a\r\nX-Evil: 1.zip"))
    assert "X-Evil" not in response.headers
    assert len(response.headerlist) == len({name.lower() for name, _ in response.headerlist})


def test_bidi_overrides_cannot_disguise_the_extension() -> None:
    value = content_disposition("invoice\u202egpj.exe")
    assert value == 'attachment; filename="invoicegpj.exe"'


def test_separators_become_underscores_in_both_forms() -> None:
    value = content_disposition("../Отчёт/..\\x.zip")
    assert "%2F" not in value and "%5C" not in value
    assert 'filename=".._______.._x.zip"' in value
    assert stdlib_filename(value) == ".._Отчёт_.._x.zip"


@pytest.mark.parametrize("name", ["", "\r\n", "\x00\x1f\x7f", "\u202e"])
def test_empty_name_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="empty"):
        content_disposition(name)


@settings(deadline=None)  # a busy CI machine must not make these flaky
@given(st.text(min_size=1))
def test_any_name_gives_one_printable_ascii_line(name: str) -> None:
    try:
        value = content_disposition(name)
    except ValueError:
        return  # nothing printable was left
    assert _PRINTABLE_ASCII_LINE.fullmatch(value)


@settings(deadline=None)  # a busy CI machine must not make these flaky
@given(
    st.text(
        st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters="/\\"),
        min_size=1,
    )
)
def test_parsers_recover_any_printable_name(name: str) -> None:
    expected = unicodedata.normalize("NFC", name).translate(_BIDI)
    if expected:
        for parser in PARSERS:
            assert parser(content_disposition(name)) == expected


# --- archive_filename ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("report", "report.zip"),
        ("report.zip", "report.zip"),
        ("Report.ZIP", "Report.ZIP"),
        ("photos.tar", "photos.tar.zip"),
        ("Отчёт 2024", "Отчёт 2024.zip"),
        ("a/b\\c", "a_b_c.zip"),
        ("../../etc/passwd", "_.._etc_passwd.zip"),
        ("  spaced out  ", "spaced out.zip"),
        ("trailing dot.", "trailing dot.zip"),
        ("x.zip. ", "x.zip"),
        (".hidden", "hidden.zip"),
        ("line\r\nbreak", "linebreak.zip"),
        ("", "archive.zip"),
        ("   ", "archive.zip"),
        ("..", "archive.zip"),
        (".zip", "archive.zip"),
        ("\r\n", "archive.zip"),
    ],
)
def test_archive_filename(name: str, expected: str) -> None:
    assert archive_filename(name) == expected


def test_archive_filename_default() -> None:
    assert archive_filename("", default="photos") == "photos.zip"
    assert archive_filename("", default="photos.zip") == "photos.zip"
    assert archive_filename("..", default="/") == "_.zip"
    assert archive_filename("", default="") == "archive.zip"
    assert archive_filename("", default=" .. ") == "archive.zip"


@settings(deadline=None)  # a busy CI machine must not make these flaky
@given(st.text(), st.text())
def test_archive_filename_is_always_a_safe_zip_name(name: str, default: str) -> None:
    result = archive_filename(name, default)
    assert result.lower().endswith(".zip")
    assert len(result) > 4
    assert "/" not in result and "\\" not in result
    assert not any(ord(c) < 32 for c in result)
    assert content_disposition(result)  # always usable as a download name
