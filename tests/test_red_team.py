"""Red-team pass over the new surfaces (tar names, HTTP fields, Basic auth, framework
responses): each test is an attack or a careless input that once got through."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import wsgiref.util
import wsgiref.validate
from pathlib import Path
from typing import Any, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zipwsgi import TarStream, ZipStream
from zipwsgi.errors import ArchiveNameError, ArchiveTooLargeError, DuplicateNameError
from zipwsgi.formats.tar import records as tf
from zipwsgi.http.decision import Representation, decide
from zipwsgi.http.fields import parse_http_date, parse_range

# --- tar: what a reader that does not know pax sees -------------------------------------


def ustar_names(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(typeflag, prefix/name) of every ustar header block: the name a pax-unaware reader
    (old tars, minimal extractors) extracts, pax headers included (typeflag ``x`` is an
    unknown type to them, so a file)."""
    offset = 0
    while offset + tf.BLOCK <= len(data):
        block = data[offset : offset + tf.BLOCK]
        if block[257:263] != b"ustar\0":
            return
        name, prefix = block[:100].rstrip(b"\0"), block[345:500].rstrip(b"\0")
        size = int(block[124:135] or b"0", 8)
        yield block[156:157], (prefix + b"/" + name if prefix else name)
        offset += tf.BLOCK + size + tf.padding(size)


def assert_safe_for_pax_unaware_readers(data: bytes) -> None:
    for typeflag, name in ustar_names(data):
        segments = name.split(b"/")
        assert name and not name.startswith(b"/"), (typeflag, name)
        assert b".." not in segments and b"." not in segments, (typeflag, name)
        assert b"\\" not in name and b"\0" not in name, (typeflag, name)
        if typeflag != tf.TYPE_DIRECTORY:
            assert not name.endswith(b"/"), (typeflag, name)  # a file is not a folder


@pytest.mark.parametrize(
    "name",
    [
        "a" * 97 + "/..b" + "c" * 100,  # the 100-byte cut ends in a ".." segment
        "a" * 98 + "/.b" + "c" * 100,  # ... in a "." segment
        "a" * 99 + "/" + "é" * 80,  # ... in a "/": a file that reads as a folder
        "a" * 86 + "/..b" + "c" * 100,  # the pax header's own name, PaxHeaders/..., too
        "a" * 88 + "/.b" + "c" * 100,
    ],
)
def test_the_ustar_fields_of_a_long_name_are_as_safe_as_the_name(name: str) -> None:
    ts = TarStream()
    ts.add(b"data", name)
    data = b"".join(ts)
    assert len(data) == ts.size
    assert_safe_for_pax_unaware_readers(data)
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:  # pax readers: the full name
        (member,) = archive.getmembers()
        assert member.name == name and member.isreg()
        assert archive.extractfile(member).read() == b"data"  # type: ignore[union-attr]


_PIECES = list("ab./\\:C\n= é\x00") + ["..", "C:", "\udcff", "\u202e", "x" * 45, "é" * 30]
_NAMES = st.lists(st.sampled_from(_PIECES), min_size=1, max_size=10).map("".join)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.tuples(_NAMES, st.binary(max_size=700), st.booleans(),
                          st.integers(-(2**36), 2**36)), min_size=1, max_size=4))
def test_hostile_names_give_exact_safe_tars(items: list[tuple[str, bytes, bool, int]]) -> None:
    """Whatever names get through: the size is exact, tarfile's ``data`` filter passes
    every member, each is a plain file or folder of the name kept, and the ustar fields
    alone are safe too."""
    ts = TarStream()
    for name, data, is_dir, mtime in items:
        try:
            if is_dir:
                ts.mkdir(name)
            else:
                ts.add(data, name, mtime=mtime)
        except (ArchiveNameError, DuplicateNameError):
            pass
    if not ts.names:
        return
    data = b"".join(ts)
    assert len(data) == ts.size
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        members = archive.getmembers()
    assert len(members) == len(ts.names)
    for member, name in zip(members, ts.names):
        assert member.isreg() or member.isdir()
        tarfile.data_filter(member, "/nonexistent/dest")  # raises for anything unsafe
        assert member.name + ("/" if member.isdir() else "") == name
    assert_safe_for_pax_unaware_readers(data)


HOSTILE = [
    "line\nbreak", "eq=ual", "x=1\n2 path=.evil", "hdr\nhdrcharset=BINARY", "17 path=/etc/x\n",
    "a" * 97 + "/..b" + "c" * 100, "d" * 99 + "/" + "é" * 80, "\udcff\udcfe/raw", "C:/abs",
    "/abs2", "back\\slash", "e" * 160 + "/f", "g/" * 70 + "h", "...", "..../x", "\u202etxt.exe",
]


@pytest.mark.parametrize("reader", ["tar", "bsdtar"])
def test_real_tars_extract_hostile_names_inside_the_folder(tmp_path: Path, reader: str) -> None:
    if shutil.which(reader) is None:
        pytest.skip(f"{reader} not installed")
    ts = TarStream()
    for name in HOSTILE:
        ts.add(name.encode("utf-8", "surrogateescape"), name)
    archive = tmp_path / "h.tar"
    archive.write_bytes(b"".join(ts))
    dest = tmp_path / "out" / "in"
    dest.mkdir(parents=True)
    subprocess.run([reader, "-xf", str(archive)], cwd=dest, check=True, capture_output=True,
                   timeout=60)
    assert os.listdir(tmp_path / "out") == ["in"]  # nothing beside the folder
    got = sorted(p for p in dest.rglob("*") if p.is_file())
    assert len(got) == len(HOSTILE)
    for path in got:
        assert not path.is_symlink()


# --- HTTP fields: DIGIT is ASCII ----------------------------------------------------------


@pytest.mark.parametrize("value", ["bytes=０-５", "bytes=٠-٩", "bytes=-５", "bytes=1-٣"])
def test_non_ascii_digits_are_not_a_range(value: str) -> None:
    assert parse_range(value) is None
    rep = Representation(size=1000, content_type="application/x-tar", etag="e")
    assert decide("GET", {"range": value}, rep).status == 200


def test_non_ascii_digits_are_not_a_date() -> None:
    assert parse_http_date("Tue, 14 Nov 2023 22:13:20 GMT") is not None
    assert parse_http_date("Tue, １４ Nov 2023 22:13:20 GMT") is None
    assert parse_http_date("Tuesday, 14-Nov-２３ 22:13:20 GMT") is None
    assert parse_http_date("Tue Nov 14 22:13:20 ２０２３") is None


# --- Basic auth: the realm is a folder's name --------------------------------------------


@pytest.mark.parametrize("realm", ["写真", "a\r\nX-Injected: 1", "tab\there", "q\"uote\\"])
def test_any_realm_gives_a_valid_401(realm: str) -> None:
    """``zipwsgi serve --auth`` uses the folder's name as the realm: CR/LF would inject a
    header, and a name outside latin-1 made waitress answer every request with a 500
    (so the browser never asked for the password)."""
    from zipwsgi.app.auth import BasicAuth

    def app(environ: Any, start_response: Any) -> list[bytes]:
        raise AssertionError("reached without credentials")

    seen: list[Any] = []
    checked = wsgiref.validate.validator(BasicAuth(app, "u", "p", realm=realm))
    environ: dict[str, Any] = {}
    wsgiref.util.setup_testing_defaults(environ)
    environ["QUERY_STRING"] = ""
    body = checked(environ, lambda status, headers, exc_info=None: seen.append((status, headers)))
    b"".join(body)
    body.close()  # type: ignore[attr-defined]
    status, headers = seen[0]
    assert status.startswith("401")
    value = dict(headers)["WWW-Authenticate"]
    value.encode("ascii")
    assert value.startswith('Basic realm="') and "\r" not in value and "\n" not in value


# --- framework responses: the archive is closed on the failure paths too ------------------


def _huge_archive(handle: Any) -> ZipStream:
    zs = ZipStream()
    zs.add(handle, "readme.md")
    zs.add(iter([b"x"]), "a", size=2**62)
    zs.add(iter([b"x"]), "b", size=2**62)
    return zs


def test_flask_closes_an_archive_it_cannot_answer(tmp_path: Path) -> None:
    flask = pytest.importorskip("flask")
    from zipwsgi.flask import send_archive

    (tmp_path / "f").write_bytes(b"data")
    with open(tmp_path / "f", "rb") as handle:
        zs = _huge_archive(handle)
        with flask.Flask(__name__).test_request_context("/a.zip"):
            with pytest.raises(ArchiveTooLargeError):
                send_archive(zs, "a.zip")
        assert handle.closed


def test_django_closes_an_archive_it_refuses_under_asgi(tmp_path: Path) -> None:
    pytest.importorskip("django")
    from django.test import AsyncRequestFactory
    from django_helper import django_app

    from zipwsgi.django import archive_response

    (tmp_path / "f").write_bytes(b"data")
    with open(tmp_path / "f", "rb") as handle, django_app(__name__):
        zs = ZipStream()
        zs.add(handle, "f")
        with pytest.raises(NotImplementedError):
            archive_response(AsyncRequestFactory().get("/a.zip"), zs, "a.zip")
        assert handle.closed


urlpatterns: list[Any] = []  # django_app(__name__) needs a URLconf
