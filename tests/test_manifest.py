"""The mod_zip manifest parser: mod_zip's own grammar cases, every error, a round trip."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zipwsgi.errors import ManifestError
from zipwsgi.http.manifest import ManifestEntry, format_manifest, parse_manifest


def entry(
    crc: int | None,
    size: int,
    location: str,
    name: str,
    *,
    query: str = "",
    is_directory: bool = False,
    line: int = 1,
) -> ManifestEntry:
    return ManifestEntry(crc, size, location, query, name, is_directory, line)


def only(body: bytes, **kwargs: object) -> ManifestEntry:
    """Parse a one-entry manifest and return that entry."""
    (result,) = parse_manifest(body, **kwargs)  # type: ignore[arg-type]
    return result


# --- mod_zip's test cases ---------------------------------------------------------------


def test_two_files_from_mod_zip_suite() -> None:
    body = b"1a6349c5 24 /file1.txt file1.txt\r\n5d70c4d3 25 /file2.txt file2.txt\r\n"
    assert parse_manifest(body) == [
        entry(0x1A6349C5, 24, "/file1.txt", "file1.txt", line=1),
        entry(0x5D70C4D3, 25, "/file2.txt", "file2.txt", line=2),
    ]


@pytest.mark.parametrize("crc", [b"1A6349C5", b"1a6349c5", b"1A6349c5"])
def test_crc_is_hex_in_any_case(crc: bytes) -> None:
    assert only(crc + b" 24 /file1.txt file1.txt").crc == 0x1A6349C5


def test_short_crc_is_zero_extended() -> None:
    assert only(b"0 0 /empty empty").crc == 0
    assert only(b"abc 1 /x x").crc == 0xABC


def test_dash_crc_means_unknown() -> None:
    assert only(b"- 24 /file1.txt file1.txt").crc is None


def test_percent_20_is_a_space_and_plus_stays_plus() -> None:
    result = only(b"- 5 /dir%20one/a+b.txt a+b.txt")
    assert result.location == "/dir one/a+b.txt"
    assert result.name == "a+b.txt"


def test_percent_decoding_is_utf8_over_bytes() -> None:
    result = only(b"- 1 /%D0%9F%d1%80%2F%25 x")
    assert result.location == "/Пр/%"


def test_query_is_split_at_first_question_mark_and_kept_raw() -> None:
    result = only(b"- 24 /file1.txt?a=1&b=%20x?y file1.txt")
    assert result.location == "/file1.txt"
    assert result.query == "a=1&b=%20x?y"


def test_query_bytes_survive_as_latin1() -> None:
    assert only(b"- 1 /f?\xff x").query.encode("latin-1") == b"\xff"


def test_empty_query_after_question_mark() -> None:
    result = only(b"- 1 /f? x")
    assert (result.location, result.query) == ("/f", "")


def test_no_query() -> None:
    assert only(b"- 1 /f x").query == ""


@pytest.mark.parametrize("crc", [b"-", b"0", b"00000000"])
def test_directory_entry(crc: bytes) -> None:
    result = only(crc + b" 0 @directory empty folder/")
    assert result.is_directory
    assert (result.location, result.size, result.name) == ("@directory", 0, "empty folder/")


def test_escaped_at_directory_is_an_ordinary_file() -> None:
    result = only(b"- 3 %40directory x")
    assert not result.is_directory
    assert result.location == "@directory"


def test_name_with_spaces_runs_to_end_of_line() -> None:
    result = only(b"- 1 /f my  long   name .txt \r\n")
    assert result.name == "my  long   name .txt "


def test_multiple_spaces_between_fields() -> None:
    result = only(b"1a6349c5    24     /file1.txt      file1.txt")
    assert (result.crc, result.size, result.location, result.name) == (
        0x1A6349C5,
        24,
        "/file1.txt",
        "file1.txt",
    )


def test_tab_is_not_a_separator() -> None:
    assert only(b"- 1 /f a\tb").name == "a\tb"
    with pytest.raises(ManifestError, match="size"):
        parse_manifest(b"- 1\t/f x")


@pytest.mark.parametrize(
    "separator", [b"\n", b"\r\n", b"\r", b"\n\n", b"\r\n\r\n", b"\n\r", b"\r\r\n\n"]
)
def test_any_run_of_cr_and_lf_separates_lines(separator: bytes) -> None:
    body = separator.join([b"- 1 /a a", b"- 2 /b b", b"- 3 /c c"]) + separator
    assert [(e.location, e.name) for e in parse_manifest(body)] == [
        ("/a", "a"),
        ("/b", "b"),
        ("/c", "c"),
    ]


def test_mixed_separators_and_blank_lines_count_as_lines() -> None:
    body = b"\r\n\n- 1 /a a\r\n\r\n- 2 /b b\r- 3 /c c\n\n\n"
    assert [e.line for e in parse_manifest(body)] == [3, 5, 6]


def test_name_has_no_trailing_cr() -> None:
    assert only(b"- 1 /f name\r").name == "name"
    assert only(b"- 1 /f name\r\n").name == "name"


def test_django_zip_stream_lines_without_trailing_newline() -> None:
    body = b"- 24 /srv/media/file1.txt /docs/file1.txt\n- 25 /srv/media/file2.txt /file2.txt"
    assert parse_manifest(body) == [
        entry(None, 24, "/srv/media/file1.txt", "/docs/file1.txt", line=1),
        entry(None, 25, "/srv/media/file2.txt", "/file2.txt", line=2),
    ]


def test_136_entries() -> None:
    body = "".join(f"- {i} /files/{i}.txt dir/{i}.txt\r\n" for i in range(136)).encode()
    result = parse_manifest(body)
    assert len(result) == 136
    assert result[135] == entry(None, 135, "/files/135.txt", "dir/135.txt", line=136)


@pytest.mark.parametrize("body", [b"", b"\n", b"\r\n\r\n", b"\r"])
def test_empty_manifest_gives_no_entries(body: bytes) -> None:
    assert parse_manifest(body) == []


def test_utf8_names_by_default_and_other_encodings_on_request() -> None:
    assert only("- 1 /f Отчёт.txt".encode()).name == "Отчёт.txt"
    assert only("- 1 /f café".encode("cp1252"), name_encoding="cp1252").name == "café"


def test_largest_size() -> None:
    assert only(b"- 4611686018427387904 /f x").size == 2**62
    with pytest.raises(ManifestError, match="size"):
        only(b"- 4611686018427387905 /f x")  # the engine's MAX_ENTRY_SIZE, plus one
    with pytest.raises(ManifestError, match="size"):
        only(b"- 9223372036854775807 /f x")  # issue #16: an OverflowError in the plan


def test_bytes_like_body() -> None:
    assert only(bytearray(b"- 1 /f x")).name == "x"
    assert only(memoryview(b"- 1 /f x")).name == "x"


def test_only_cr_and_lf_break_lines() -> None:
    # str.splitlines() would also break at these; mod_zip (and bytes.splitlines) do not.
    assert only(b"- 1 /f a\x0bb\x0cc\x1cd\x85e", name_encoding="latin-1").name == (
        "a\x0bb\x0cc\x1cd\x85e"
    )


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        (b"- 1 /f", 1, "missing archive name"),
        (b"- 1 /f   ", 1, "missing archive name"),
        (b"- 1", 1, "missing location, archive name"),
        (b"-", 1, "missing size, location, archive name"),
        (b"ok\n\n- 1", 1, "missing"),
        (b"- 1 /a a\n\n- 1", 3, "missing location"),
        (b" - 1 /f x", 1, "starts with a space"),
        (b"xyz 1 /f x", 1, "CRC-32"),
        (b"123456789 1 /f x", 1, "CRC-32"),
        (b"0x12 1 /f x", 1, "CRC-32"),
        (b"-1 1 /f x", 1, "CRC-32"),
        (b"-- 1 /f x", 1, "CRC-32"),
        (b"- -1 /f x", 1, "size"),
        (b"- +1 /f x", 1, "size"),
        (b"- 1.5 /f x", 1, "size"),
        (b"- 1_000 /f x", 1, "size"),
        (b"- 0x10 /f x", 1, "size"),
        (b"- 9223372036854775808 /f x", 1, "size"),
        (b"- " + b"9" * 5000 + b" /f x", 1, "size"),
        (b"- 1 ?a=1 x", 1, "empty location"),
        (b"- 1 /f%zz x", 1, "invalid percent-escape '%zz'"),
        (b"- 1 /f%2 x", 1, "invalid percent-escape '%2'"),
        (b"- 1 /f% x", 1, "invalid percent-escape '%'"),
        (b"- 1 /f%2/g x", 1, "invalid percent-escape '%2/'"),
        (b"- 1 /f%00 x", 1, "NUL"),
        (b"- 1 /f%ff x", 1, "UTF-8"),
        (b"- 1 /f\xff x", 1, "UTF-8"),
        (b"- 1 /f \xff", 1, "not valid utf-8"),
        (b"- 5 @directory d/", 1, "@directory"),
        (b"1 0 @directory d/", 1, "@directory"),
    ],
)
def test_malformed_lines(body: bytes, line: int, message: str) -> None:
    with pytest.raises(ManifestError, match=re.escape(message)) as info:
        parse_manifest(body)
    assert info.value.line == line
    assert str(info.value).startswith(f"manifest line {line}: ")


def test_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_manifest(b"nonsense")


def test_error_message_is_bounded_for_huge_fields() -> None:
    with pytest.raises(ManifestError) as info:
        parse_manifest(b"z" * 100_000 + b" 1 /f x")
    assert len(str(info.value)) < 200


def test_body_larger_than_max_bytes() -> None:
    body = b"- 1 /f x\n" * 10
    assert len(parse_manifest(body, max_bytes=len(body))) == 10
    with pytest.raises(ManifestError, match="limit of 89") as info:
        parse_manifest(body, max_bytes=len(body) - 1)
    assert info.value.line is None


def test_more_than_max_entries() -> None:
    body = b"- 1 /f x\n\n" * 4
    assert len(parse_manifest(body, max_entries=4)) == 4
    with pytest.raises(ManifestError, match="more than 3 entries") as info:
        parse_manifest(body, max_entries=3)
    assert info.value.line == 7


def test_unknown_name_encoding() -> None:
    with pytest.raises(LookupError):
        parse_manifest(b"", name_encoding="no-such-codec")


# --- format_manifest ----------------------------------------------------------------------


def test_format_manifest_layout() -> None:
    body = format_manifest(
        [
            entry(0x1A6349C5, 24, "/a dir/ü?%#+.txt", "name with spaces", query="x=1&y=%20"),
            entry(None, 0, "@directory", "empty/", is_directory=True),
            entry(0xABC, 1, "@directory", "file called @directory"),
        ]
    )
    assert body == (
        b"1a6349c5 24 /a%20dir/%C3%BC%3F%25%23+.txt?x=1&y=%20 name with spaces\n"
        b"- 0 @directory empty/\n"
        b"00000abc 1 %40directory file called @directory\n"
    )


def test_format_manifest_of_nothing() -> None:
    assert format_manifest([]) == b""


@pytest.mark.parametrize(
    "bad",
    [
        entry(None, 1, "/f", ""),
        entry(None, 1, "/f", " leading space"),
        entry(None, 1, "/f", "line\nbreak"),
        entry(None, 1, "/f", "carriage\rreturn"),
        entry(None, 1, "", "x"),
        entry(None, 1, "/f\x00", "x"),
        entry(None, 1, "/f", "x", query="a b"),
        entry(None, 1, "/f", "x", query="ü€"),
        entry(-1, 1, "/f", "x"),
        entry(2**32, 1, "/f", "x"),
        entry(None, -1, "/f", "x"),
        entry(None, 2**63, "/f", "x"),
    ],
)
def test_format_manifest_rejects_what_no_line_can_express(bad: ManifestEntry) -> None:
    with pytest.raises(ManifestError, match="entry 1"):
        format_manifest([bad])


def test_format_manifest_name_encoding() -> None:
    body = format_manifest([entry(None, 1, "/f", "café")], name_encoding="cp1252")
    assert body == b"- 1 /f caf\xe9\n"
    with pytest.raises(ManifestError, match="cannot be encoded"):
        format_manifest([entry(None, 1, "/f", "Отчёт")], name_encoding="cp1252")


# --- round trip ---------------------------------------------------------------------------

_text = st.characters(blacklist_categories=("Cs",))  # surrogates cannot be UTF-8
_locations = st.text(_text.filter(lambda c: c != "\x00"), min_size=1)
_queries = st.text(st.characters(max_codepoint=0xFF, blacklist_characters=" \r\n"))
_names = st.text(_text.filter(lambda c: c not in "\r\n"), min_size=1).filter(
    lambda name: not name.startswith(" ")
)
_files = st.builds(
    entry,
    crc=st.none() | st.integers(0, 0xFFFFFFFF),
    size=st.integers(0, 2**62),
    location=_locations,
    name=_names,
    query=_queries,
)
_directories = st.builds(
    entry,
    crc=st.sampled_from([None, 0]),
    size=st.just(0),
    location=st.just("@directory"),
    name=_names,
    query=_queries,
    is_directory=st.just(True),
)


@settings(deadline=None)  # a busy CI machine must not make these flaky
@given(st.lists(_files | _directories, max_size=20))
def test_round_trip(entries: list[ManifestEntry]) -> None:
    numbered = [
        ManifestEntry(e.crc, e.size, e.location, e.query, e.name, e.is_directory, i)
        for i, e in enumerate(entries, start=1)
    ]
    assert parse_manifest(format_manifest(numbered)) == numbered


@settings(deadline=None)  # a busy CI machine must not make these flaky
@given(st.binary(max_size=200))
def test_arbitrary_bytes_parse_or_raise_manifest_error(body: bytes) -> None:
    try:
        result = parse_manifest(body)
    except ManifestError:
        return
    assert all("\x00" not in e.location and e.location and e.name for e in result)
