"""Property-based fuzzing of manifests, archive names and request paths (issue #16).

What must hold for any input:

- nothing escapes: the middleware answers every manifest with an archive or with its own
  clean 4xx/5xx before the first byte; after the first byte only zipwsgi's own errors
  may end a body (a server then cuts the connection);
- a refusal's body never echoes a location or a name from the manifest;
- no archive we write holds a name that leaves the extraction folder on any system:
  the raw name bytes (and the Unicode Path field's UTF-8 name) have no backslash, NUL,
  leading ``/``, ``..`` component or drive letter;
- ``normalise_name`` either refuses or returns such a name, and is a fixed point.

Bounded for CI (a few thousand cases in all). ``make fuzz`` runs the profile ``fuzz``
(``HYPOTHESIS_PROFILE=fuzz``: 50,000 cases per property) with ``ZIPWSGI_FUZZ_REPORT=1``,
which counts escapes instead of stopping at the first one and prints the totals.
"""

from __future__ import annotations

import logging
import os
import re
import struct
from collections import Counter
from pathlib import Path
from typing import Any, Optional
from urllib.parse import quote

import pytest
import webtest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zipwsgi import ZipApp, ZipMiddleware, ZipStream
from zipwsgi.errors import ZipwsgiError
from zipwsgi.paths import normalise_name

# Long generated names (33,000 characters) make hypothesis warn about their repr.
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")

settings.register_profile(
    "ci", max_examples=600, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
settings.register_profile(
    "fuzz", max_examples=50_000, deadline=None, database=None,
    suppress_health_check=list(HealthCheck),
)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
FUZZ = settings.get_profile(PROFILE if PROFILE in ("ci", "fuzz") else "ci")
REPORT = bool(os.environ.get("ZIPWSGI_FUZZ_REPORT"))
#: Depths of the deep-path cases (``a/`` repeated); 3000 was quadratic before issue #16.
DEPTHS = [0, 300, 3000] if not os.environ.get("ZIPWSGI_FUZZ_SHALLOW") else [0, 30]

#: Escapes by property and kind, printed at the end in report mode.
ESCAPES: Counter[str] = Counter()
CASES: Counter[str] = Counter()


def _escape(prop: str, what: str) -> None:
    """Record (report mode) or fail (default) on an escape."""
    ESCAPES[f"{prop}: {what}"] += 1
    if not REPORT:
        pytest.fail(f"{prop}: {what}")


@pytest.fixture(scope="module", autouse=True)
def _report() -> Any:
    yield
    if REPORT:
        total = sum(ESCAPES.values())
        print(f"\nfuzz cases: {dict(CASES)}; escaping: {total}")
        for kind, count in ESCAPES.most_common():
            print(f"  {count:6d}  {kind}")
        if total:
            pytest.fail(f"{total} escapes over {sum(CASES.values())} cases")


# -- checking the bytes of an archive ------------------------------------------------------

_DRIVE = re.compile(rb"^[A-Za-z]:")


def raw_names(data: bytes) -> list[bytes]:
    """Every central-directory name of a zip, as raw bytes, and every Unicode Path
    (0x7075) field's UTF-8 name: what an extractor may turn into a path."""
    end = data.rindex(b"PK\x05\x06")
    count, cd_size, cd_offset = struct.unpack("<HII", data[end + 10 : end + 20])
    if cd_offset == 0xFFFFFFFF or count == 0xFFFF:
        locator = data.rindex(b"PK\x06\x07", 0, end)
        (zip64_end,) = struct.unpack("<Q", data[locator + 8 : locator + 16])
        count, _, cd_size, cd_offset = struct.unpack("<QQQQ", data[zip64_end + 24 : zip64_end + 56])
    names, pos = [], cd_offset
    for _ in range(count):
        assert data[pos : pos + 4] == b"PK\x01\x02"
        name_len, extra_len, comment_len = struct.unpack("<HHH", data[pos + 28 : pos + 34])
        name = data[pos + 46 : pos + 46 + name_len]
        names.append(name)
        extra = data[pos + 46 + name_len : pos + 46 + name_len + extra_len]
        at = 0
        while at + 4 <= len(extra):
            tag, size = struct.unpack("<HH", extra[at : at + 4])
            if tag == 0x7075:
                names.append(extra[at + 9 : at + 4 + size])
            at += 4 + size
        pos += 46 + name_len + extra_len + comment_len
    return names


def unsafe(name: bytes) -> Optional[str]:
    """Why an archive name would leave the extraction folder somewhere, or None."""
    if b"\\" in name:
        return "backslash"
    if b"\x00" in name:
        return "NUL"
    if name.startswith(b"/"):
        return "leading slash"
    parts = name.split(b"/")
    if b".." in parts:
        return "'..' component"
    if any(_DRIVE.match(part) for part in parts):
        return "drive letter"
    return None


# -- names --------------------------------------------------------------------------------

NASTY = list("ab./\\:Cz\x00 é∕\u2024\uff0e\uff3cソ表")
names = st.text(alphabet=st.sampled_from(NASTY), min_size=0, max_size=14)
CHARSETS = [
    None, "native", "utf-8", "cp437", "cp866", "cp932", "shift_jis", "latin-1",
    "raw_unicode_escape", "unicode_escape", "utf-16", "utf-32", "idna", "punycode",
    "rot13", "base64", "hex", "zlib", "no-such-codec",
]


@FUZZ
@given(name=names, is_dir=st.booleans())
def test_normalise_name_gives_safe_fixed_points(name: str, is_dir: bool) -> None:
    CASES["normalise_name"] += 1
    try:
        normal = normalise_name(name, is_dir=is_dir)
    except ZipwsgiError:
        return
    except Exception as exc:  # noqa: BLE001 -- counting what escapes is the point
        return _escape("normalise_name", type(exc).__name__)
    why = unsafe(normal.rstrip("/").encode("utf-8"))
    if why:
        return _escape("normalise_name", f"unsafe name ({why})")
    if normalise_name(normal, is_dir=is_dir) != normal:
        return _escape("normalise_name", "not a fixed point")
    return None


@FUZZ
@given(
    name=st.one_of(names, st.builds(lambda c, n: c * n, st.sampled_from("aé∕ソ"),
                                    st.sampled_from([1, 21_000, 33_000, 65_536]))),
    charset=st.sampled_from(CHARSETS),
    size=st.sampled_from([None, 0, 1, 2**62, 2**63 - 1, 2**63, 2**64]),
)
def test_engine_add_refuses_or_writes_safe_names(
    name: str, charset: Optional[str], size: Optional[int]
) -> None:
    CASES["ZipStream.add"] += 1
    data: Any = b"x" if size is None else (lambda: b"x")
    try:
        zs = ZipStream(charset=charset)
        zs.add(data, name, size=size)
        length = zs.size
        if size not in (None, 1):
            return None  # planned, never streamed: nothing more to check
        archive = b"".join(zs)
    except (ZipwsgiError, ValueError, LookupError) as exc:
        if isinstance(exc, (LookupError, UnicodeError)) and not isinstance(exc, ZipwsgiError):
            return _escape("ZipStream.add", type(exc).__name__)
        return None
    except Exception as exc:  # noqa: BLE001
        return _escape("ZipStream.add", type(exc).__name__)
    assert len(archive) == length
    for raw in raw_names(archive):
        why = unsafe(raw.rstrip(b"/"))
        if why:
            return _escape("ZipStream.add", f"unsafe name ({why})")
    return None


class _Failures(logging.Handler):
    """Collects error records of the ``zipwsgi`` logger during one case."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


# -- manifests through the middleware -----------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root with files, a folder, a link inside and a link out."""
    base = tmp_path_factory.mktemp("fuzz")
    root = base / "root"
    (root / "a").mkdir(parents=True)
    (root / "a" / "f.txt").write_bytes(b"hello\n")
    (root / "b.txt").write_bytes(b"0123456789")
    (base / "secret.txt").write_bytes(b"secret")
    os.symlink("b.txt", root / "inlink")
    os.symlink(str(base / "secret.txt"), root / "outlink")
    return root


SEGMENTS = ["a", "f.txt", "b.txt", "inlink", "outlink", "..", ".", "", "%2e%2e", "%2F",
            "%00", "%zz", "C:", "x" * 300, "\\", "é", "%C3%A9", "a b", "+"]
locations = st.one_of(
    st.sampled_from(["/files/a/f.txt", "/files/b.txt", "/files/inlink", "/files/outlink",
                     "@directory", "%40directory", "/sub/ok", "/sub/404", "/sub/raise",
                     "/sub/short", "/sub/long"]),
    st.lists(st.sampled_from(SEGMENTS), min_size=0, max_size=6).map(
        lambda parts: "/files/" + "/".join(parts)),
    st.builds(lambda n: "/files/" + "a/" * n + "b", st.sampled_from(DEPTHS)),
    st.text(alphabet=st.sampled_from(list("/%a.?=é \\")), max_size=10),
)
crcs = st.sampled_from(["-", "-", "0", "363a3020", "d6dd5b20", "FFFFFFFF", "123456789", "g",
                        ""])
sizes = st.sampled_from(["0", "6", "10", "2", "9223372036854775807", "9223372036854775808",
                         "18446744073709551616", "-1", "1e3", "x", ""])
long_names = st.sampled_from(["é" * 33_000, "x" * 70_000, "é" * 21_000 + "x"])
#: Lines a backend would plausibly write (a file that exists, with its size), so names
#: and charsets reach the engine; and lines with any mix of good and bad fields.
good_lines = st.builds(
    lambda where, crc, name: f"{crc} {where[1]} {where[0]} {name}",
    st.sampled_from([("/files/a/f.txt", 6), ("/files/b.txt", 10), ("/sub/ok", 6),
                     ("/files/inlink", 10), ("@directory", 0)]),
    st.sampled_from(["-", "-", "0", "363a3020", "ffffffff"]),
    st.one_of(names, names, long_names, st.sampled_from(["ok.txt", "d/ok", "é/ок.txt"])),
)
lines = st.builds(
    lambda crc, size, location, name: f"{crc} {size} {location} {name}",
    crcs, sizes, locations, st.one_of(names, long_names),
)
manifests = st.lists(
    st.one_of(good_lines, good_lines, good_lines, good_lines, lines, st.text(max_size=20)),
    min_size=0, max_size=4, unique=True).map(
    lambda ls: "\n".join(ls))


def _backend(manifest: bytes, charset: Optional[str], pass_headers: Optional[str]) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/zip":
            headers = [("X-Archive-Files", "zip")]
            if charset is not None:
                headers.append(("X-Archive-Charset", charset))
            if pass_headers is not None:
                headers.append(("X-Archive-Pass-Headers", pass_headers))
            start_response("200 OK", headers)
            return [manifest]
        if path == "/sub/raise":
            raise RuntimeError("the app failed")
        if path == "/sub/404":
            start_response("404 Not Found /sub/secret-location", [])
            return [b"nope"]
        body = {"/sub/short": b"ab", "/sub/long": b"x" * 100}.get(path, b"hello\n")
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    return app


@FUZZ
@given(
    manifest=manifests,
    charset=st.sampled_from(CHARSETS),
    pass_headers=st.sampled_from([None, "", "Cookie", "Cookie:X-Auth", ":::"]),
    range_header=st.sampled_from([None, "bytes=0-10", "bytes=5-", "bytes=-3"]),
)
def test_middleware_answers_every_manifest_cleanly(
    served: Path, manifest: str, charset: Optional[str], pass_headers: Optional[str],
    range_header: Optional[str],
) -> None:
    CASES["middleware"] += 1
    body = manifest.encode("utf-8", "surrogatepass")
    app = ZipMiddleware(_backend(body, charset, pass_headers), roots={"/files/": served})
    client = webtest.TestApp(app, lint=False)
    headers = {"Range": range_header} if range_header else {}
    handler = _Failures()
    logger = logging.getLogger("zipwsgi")
    logger.addHandler(handler)
    try:
        response = client.get("/zip", headers=headers, expect_errors=True)
    except ZipwsgiError:
        return None  # raised while streaming, after the first byte: the server cuts it
    except Exception as exc:  # noqa: BLE001
        return _escape("middleware", f"{type(exc).__name__}: {str(exc)[:60]}")
    finally:
        logger.removeHandler(handler)
    unexpected = [r for r in handler.records if r.exc_info]
    if unexpected:  # answered cleanly by the safety net, but still an escape of a rule
        exc = unexpected[0].exc_info[1]  # type: ignore[index]
        return _escape("middleware", f"{type(exc).__name__} (caught by the safety net)")
    status = response.status_int
    if status >= 400:
        text = response.body.decode("utf-8", "replace")
        for line in manifest.splitlines():
            for field in line.split(" ")[2:]:
                if len(field) >= 8 and field in text:
                    return _escape("middleware", "refusal echoes the manifest")
        return None
    if status == 200:
        try:
            found = raw_names(response.body)
        except Exception as exc:  # noqa: BLE001
            return _escape("middleware", f"unreadable archive: {type(exc).__name__}")
        for raw in found:
            why = unsafe(raw.rstrip(b"/"))
            if why:
                return _escape("middleware", f"unsafe name ({why})")
    return None


# -- paths through the standalone app ----------------------------------------------------


@FUZZ
@given(
    parts=st.lists(st.sampled_from(SEGMENTS + ["a.zip", "?download", "?path=..", "?path=a"]),
                   max_size=8),
    deep=st.sampled_from([0, 0, 0, *DEPTHS]),
)
def test_app_answers_every_path_cleanly(served: Path, parts: list[str], deep: int) -> None:
    CASES["app"] += 1
    path = "/" + "a/" * deep + "/".join(quote(part, safe="%?=") for part in parts)
    handler = _Failures()
    logger = logging.getLogger("zipwsgi")
    logger.addHandler(handler)
    try:
        client = webtest.TestApp(ZipApp(served), lint=False)
        response = client.get(path, expect_errors=True)
    except Exception as exc:  # noqa: BLE001
        return _escape("app", f"{type(exc).__name__}")
    finally:
        logger.removeHandler(handler)
    if response.status_int >= 500 or handler.records:
        return _escape("app", f"{response.status_int} with a logged failure")
    if response.status_int == 200 and response.content_type == "application/zip":
        for raw in raw_names(response.body):
            why = unsafe(raw.rstrip(b"/"))
            if why:
                return _escape("app", f"unsafe name ({why})")
    return None
