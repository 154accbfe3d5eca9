"""``ZipMiddleware(verify_sizes="lazy")``: mod_zip's trade, the manifest's sizes trusted.

What a lazy archive must keep from an eager one: the same bytes for the same files (whole,
ranged, zip and tar), every location checked by its text before the first byte, and each
file confined and checked when the stream reaches it, so a missing, swapped or resized
file cuts the connection (curl: exit 18, fewer bytes than announced) instead of
completing a wrong archive. What it gives up: its own ETag and Last-Modified.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import pytest
import webob
import webtest
from servers import thread_server

from zipwsgi import ZipMiddleware
from zipwsgi.errors import SourceChangedError, SourceUnavailableError

BIG = 300_000  # more than one 256 KiB chunk: the response has started when later files fail


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    """Files under ``root/`` (served as /files/), a secret beside it."""
    (tmp_path / "secret.txt").write_bytes(b"TOP SECRET" * 100)
    root = tmp_path / "root"
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "big.bin").write_bytes(os.urandom(BIG))
    (root / "a.txt").write_bytes(b"alpha\n" * 100)
    (root / "sub" / "b.txt").write_bytes(b"bravo\n" * 50)
    (root / "sub" / "deep" / "c.txt").write_bytes(b"charlie\n")
    (root / "Отчёт.txt").write_bytes("отчёт\n".encode())
    (root / "empty.txt").write_bytes(b"")
    return root


FILES = ["big.bin", "a.txt", "sub/b.txt", "sub/deep/c.txt", "Отчёт.txt", "empty.txt"]


def manifest(root: Path, files: Iterable[str] = FILES, sizes: Optional[dict[str, int]] = None,
             crc: bool = False) -> bytes:
    import zlib
    from urllib.parse import quote

    lines = []
    for rel in files:
        size = (sizes or {}).get(rel)
        if size is None:
            size = (root / rel).stat().st_size
        crc_field = f"{zlib.crc32((root / rel).read_bytes()):08x}" if crc else "-"
        lines.append(f"{crc_field} {size} /files/{quote(rel)} out/{rel}")
    lines.append("- 0 @directory empty folder/")
    return ("\n".join(lines) + "\n").encode()


def upstream(body: bytes, fmt: str = "zip",
             headers: Iterable[tuple[str, str]] = ()) -> Callable[..., Any]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", [("X-Archive-Files", fmt), *headers])
        return [body]

    return app


def middleware(root: Path, body: bytes, mode: str, fmt: str = "zip", **options: Any) -> Any:
    return ZipMiddleware(upstream(body, fmt, options.pop("headers", ())),
                         roots={"/files/": str(root)}, verify_sizes=mode, **options)


def get(app: Any, path: str = "/dl", method: str = "GET",
        **headers: str) -> tuple[str, dict[str, str], bytes]:
    """Status, headers and body as the middleware gives them (no server in between)."""
    seen: list[Any] = []
    environ = webob.Request.blank(path, method=method, headers=headers).environ
    body = app(environ, lambda status, headerlist, exc_info=None: seen.extend([status, headerlist]))
    try:
        data = b"".join(body)
    finally:
        getattr(body, "close", lambda: None)()
    return seen[0], dict(seen[1]), data


# --- the same bytes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "options"),
    [("zip", {}), ("zip", {"compression": "deflate"}), ("zip", {"precompute_crc": True}),
     ("tar", {}), ("tar.gz", {})],
)
@pytest.mark.parametrize("crc", [False, True])
def test_lazy_gives_the_bytes_of_eager(root: Path, fmt: str, options: dict, crc: bool) -> None:
    body = manifest(root, crc=crc)
    eager = webtest.TestApp(middleware(root, body, "eager", fmt, **options)).get("/dl")
    lazy = webtest.TestApp(middleware(root, body, "lazy", fmt, **options)).get("/dl")
    assert lazy.body == eager.body
    assert lazy.headers.get("Content-Length") == eager.headers.get("Content-Length")
    if fmt == "zip":
        with zipfile.ZipFile(io.BytesIO(lazy.body)) as archive:
            assert archive.testzip() is None
            info = archive.getinfo("out/a.txt")
            assert info.date_time[0] > 1980  # the file's own mtime, learned when streamed
    elif fmt == "tar":
        with tarfile.open(fileobj=io.BytesIO(lazy.body)) as archive:
            assert archive.getmember("out/a.txt").mtime == int((root / "a.txt").stat().st_mtime)


@pytest.mark.parametrize("fmt", ["zip", "tar"])
def test_lazy_ranges_are_eagers_slices(root: Path, fmt: str) -> None:
    body = manifest(root)
    whole = webtest.TestApp(middleware(root, body, "eager", fmt)).get("/dl").body
    size = len(whole)
    ranges = [(0, 99), (BIG - 10, BIG + 700), (size - 200, size - 1), (1000, size - 1),
              (BIG + 30, BIG + 40)]
    for first, last in ranges:
        # A fresh app each time: no entry settled by an earlier pass.
        app = webtest.TestApp(middleware(root, body, "lazy", fmt))
        answer = app.get("/dl", headers={"Range": f"bytes={first}-{last}"}, status=206)
        assert answer.body == whole[first : last + 1], (first, last)
    app = webtest.TestApp(middleware(root, body, "lazy", fmt))
    answer = app.get("/dl", headers={"Range": f"bytes=0-9,{size - 50}-"}, status=206)
    assert answer.content_type == "multipart/byteranges"
    assert whole[:10] in answer.body and whole[size - 50 :] in answer.body


def test_the_central_directory_alone_settles_every_entry(root: Path) -> None:
    """A range holding only the central directory needs every entry's DOS time: each
    file is stat-ed (and checked) then, and the records are eager's."""
    body = manifest(root)
    whole = webtest.TestApp(middleware(root, body, "eager")).get("/dl").body
    app = webtest.TestApp(middleware(root, body, "lazy"))
    assert app.get("/dl", headers={"Range": "bytes=-300"}, status=206).body == whole[-300:]
    (root / "a.txt").write_bytes(b"shorter")
    with pytest.raises(SourceChangedError):
        webtest.TestApp(middleware(root, body, "lazy")).get(
            "/dl", headers={"Range": "bytes=-300"})


# --- what it gives up, and what it still checks before the first byte --------------------


def test_lazy_has_no_validators_of_its_own(root: Path) -> None:
    status, headers, _ = get(middleware(root, manifest(root), "lazy"))
    assert status == "200 OK"
    assert "ETag" not in headers and "Last-Modified" not in headers
    assert "Content-Length" in headers and headers["Accept-Ranges"] == "bytes"


def test_lazy_keeps_the_apps_validators_and_if_range_with_them(root: Path) -> None:
    body = manifest(root)
    validators = [("ETag", '"v1"'), ("Last-Modified", "Wed, 01 Jan 2025 00:00:00 GMT")]
    app = middleware(root, body, "lazy", headers=validators)
    status, headers, whole = get(app)
    assert headers["ETag"] == '"v1"' and headers["Last-Modified"].startswith("Wed, 01 Jan 2025")
    status, _, part = get(app, Range="bytes=10-19", **{"If-Range": '"v1"'})
    assert status.startswith("206") and part == whole[10:20]


def test_without_a_validator_if_range_starts_over(root: Path) -> None:
    app = middleware(root, manifest(root), "lazy")
    status, _, body = get(app, Range="bytes=10-19", **{"If-Range": '"anything"'})
    assert status == "200 OK" and body.startswith(b"PK")


def test_head_and_the_headers_stat_no_file(root: Path) -> None:
    """Nothing is stat-ed before the first byte: a HEAD answers from the manifest alone,
    even for a file that is gone (the GET then fails when it gets there)."""
    body = manifest(root)
    (root / "a.txt").unlink()
    status, headers, data = get(middleware(root, body, "lazy"), method="HEAD")
    assert status == "200 OK" and int(headers["Content-Length"]) > BIG


@pytest.mark.parametrize(
    ("line", "reason"),
    [(b"- 5 /files/../secret.txt x", b"outside the allowed folders"),
     (b"- 5 /files/sub/%00x x", b"bad manifest"),
     (b"- 5 /files/a%5cb x", b"outside the allowed folders"),
     (b"- 5 /files/ x", b"outside the allowed folders"),
     (b"- 5 /files/a.txt out/big.bin", b"archive name refused")],
)
def test_locations_and_names_are_still_refused_before_the_first_byte(
    root: Path, line: bytes, reason: bytes
) -> None:
    app = middleware(root, manifest(root) + line + b"\n", "lazy", allow_subrequests=False)
    status, _, body = get(app)
    assert status.startswith("500") and reason in body, body


def test_a_location_under_no_root_is_refused_without_sub_requests(root: Path) -> None:
    app = middleware(root, b"- 5 /elsewhere/a.txt a\n", "lazy", allow_subrequests=False)
    status, _, body = get(app)
    assert status.startswith("500") and b"outside the allowed folders" in body


def test_the_option_is_checked_at_start_up(root: Path) -> None:
    with pytest.raises(ValueError, match="verify_sizes"):
        ZipMiddleware(upstream(b""), roots={"/files/": str(root)}, verify_sizes="sometimes")


def test_a_tar_mtime_that_needs_a_pax_header_cuts_the_stream(root: Path) -> None:
    """The plan holds ustar headers only; an mtime before 1970 needs a pax header, which
    a lazy archive cannot grow into after announcing its length."""
    os.utime(root / "a.txt", (-86_400, -86_400))
    body = manifest(root)
    eager = webtest.TestApp(middleware(root, body, "eager", "tar")).get("/dl")
    assert b"mtime=-86400" in eager.body
    with pytest.raises(SourceChangedError, match="verify_sizes='eager'"):
        webtest.TestApp(middleware(root, body, "lazy", "tar")).get("/dl")


# --- files that are not what the manifest says: the connection is cut ---------------------


def break_missing(root: Path, tmp_path: Path) -> dict[str, int]:
    (root / "sub" / "b.txt").unlink()
    return {}


def break_shorter(root: Path, tmp_path: Path) -> dict[str, int]:
    (root / "sub" / "b.txt").write_bytes(b"bravo\n" * 49)
    return {"sub/b.txt": 300}


def break_longer(root: Path, tmp_path: Path) -> dict[str, int]:
    (root / "sub" / "b.txt").write_bytes(b"bravo\n" * 51)
    return {"sub/b.txt": 300}


def break_directory(root: Path, tmp_path: Path) -> dict[str, int]:
    (root / "sub" / "b.txt").unlink()
    (root / "sub" / "b.txt").mkdir()
    return {}


def break_symlink_out(root: Path, tmp_path: Path) -> dict[str, int]:
    (root / "sub" / "b.txt").unlink()
    (root / "sub" / "b.txt").symlink_to(tmp_path / "secret.txt")
    return {"sub/b.txt": 1000}  # the secret's size: only confinement can stop it


def break_folder_link_out(root: Path, tmp_path: Path) -> dict[str, int]:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "b.txt").write_bytes(b"TOP SECRET" * 30)
    os.rename(root / "sub", tmp_path / "old-sub")
    (root / "sub").symlink_to(tmp_path / "elsewhere")
    return {"sub/deep/c.txt": 8}  # gone with the folder: its line keeps its old size


BREAKS = [break_missing, break_shorter, break_longer, break_directory, break_symlink_out,
          break_folder_link_out]


@pytest.mark.parametrize("breaks", BREAKS, ids=lambda f: f.__name__[6:])
def test_a_file_that_differs_from_the_manifest_raises_mid_stream(
    root: Path, tmp_path: Path, breaks: Callable[..., dict[str, int]]
) -> None:
    sizes = {"sub/b.txt": 300}
    sizes.update(breaks(root, tmp_path))
    app = middleware(root, manifest(root, sizes=sizes), "lazy")
    status, headers, _ = get(app, method="HEAD")
    assert status == "200 OK"  # nothing was looked at yet
    environ = webob.Request.blank("/dl").environ
    chunks = app(environ, lambda status, headerlist, exc_info=None: None)
    received = b""
    with pytest.raises((SourceChangedError, SourceUnavailableError)):
        for chunk in chunks:
            received += chunk
    chunks.close()
    assert 0 < len(received) < int(headers["Content-Length"])  # it had started
    assert b"TOP SECRET" not in received


def curl(url: str, out: Path) -> tuple[int, str]:
    result = subprocess.run(["curl", "-sS", "-o", str(out), "-D", "-", url],
                            capture_output=True, timeout=60)
    return result.returncode, result.stdout.decode("latin-1").lower()


@pytest.mark.parametrize("breaks", BREAKS, ids=lambda f: f.__name__[6:])
def test_over_waitress_the_connection_is_cut(
    root: Path, tmp_path: Path, breaks: Callable[..., dict[str, int]], caplog: Any
) -> None:
    sizes = {"sub/b.txt": 300}
    sizes.update(breaks(root, tmp_path))
    app = middleware(root, manifest(root, sizes=sizes), "lazy")
    out = tmp_path / "download.zip"
    with thread_server(app) as url:
        code, headers = curl(url + "dl", out)
    assert "200 ok" in headers and "content-length:" in headers
    announced = int(headers.split("content-length:")[1].split()[0])
    assert code == 18, headers  # CURLE_PARTIAL_FILE: a short download, never a whole one
    assert 0 < out.stat().st_size < announced
    assert b"TOP SECRET" not in out.read_bytes()
    assert "archive aborted after" in caplog.text


def test_over_waitress_a_failure_in_the_first_chunk_is_a_500(root: Path, tmp_path: Path) -> None:
    """waitress sends the headers with the first chunk: a file that fails before it is
    complete makes the answer a 500 (the eager mode's answer, without the manifest line)."""
    body = manifest(root, files=["a.txt", "big.bin"])
    (root / "a.txt").unlink()
    out = tmp_path / "download.zip"
    with thread_server(middleware(root, body, "lazy")) as url:
        code, headers = curl(url + "dl", out)
    assert headers.startswith("http/1.1 500") and not out.read_bytes().startswith(b"PK")


def test_over_waitress_an_unchanged_tree_downloads_as_eager(root: Path, tmp_path: Path) -> None:
    body = manifest(root)
    eager = webtest.TestApp(middleware(root, body, "eager")).get("/dl").body
    out = tmp_path / "download.zip"
    with thread_server(middleware(root, body, "lazy")) as url:
        code, _ = curl(url + "dl", out)
    assert code == 0 and out.read_bytes() == eager


def test_deflate_reads_ahead_and_still_stops_at_a_wrong_size(root: Path) -> None:
    """Deflate compresses ahead of the writer (threads open later entries early): a file
    of the wrong size still raises, and only after the entries before it."""
    (root / "sub" / "b.txt").write_bytes(b"bravo\n" * 49)
    app = middleware(root, manifest(root, sizes={"sub/b.txt": 300}), "lazy",
                     compression="deflate")
    chunks = app(webob.Request.blank("/dl").environ, lambda *args: None)
    received = b""
    with pytest.raises(SourceChangedError, match="the manifest says 300 bytes"):
        for chunk in chunks:
            received += chunk
    chunks.close()
    assert received.startswith(b"PK") and b"out/big.bin" in received
