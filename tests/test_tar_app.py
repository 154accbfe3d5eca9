"""The standalone app's tar and tar.gz downloads: routes in webtest, bytes over waitress.

Every folder and selection must hold the same entries whatever the format: the tar of a
folder is compared with its zip (same names, same bytes), so the confinement, hidden-file
and symlink rules proven for zip (test_app.py, test_app_confinement.py) hold for tar too.
Over a real server, GNU tar reads the downloads from a pipe and ``zipwsgi serve`` answers
all three formats. The page in a real browser is in test_tar_browser.py.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import tarfile
from pathlib import Path
from typing import Optional

import pytest
from browser import live_server
from readers import _compare, _tree, need, scratch_dir
from servers import zipwsgi_serve
from share_tree import SECRET, check_zip
from tar_readers import check_all_tar
from webtest import TestApp

from zipwsgi import ZipApp


def members(body: bytes) -> dict[str, Optional[bytes]]:
    """Name -> bytes, folders as ``name/`` -> None (zipfile's spelling), read by tarfile."""
    got: dict[str, Optional[bytes]] = {}
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:*") as archive:
        for info in archive:
            if info.isdir():
                got[info.name + "/"] = None
            else:
                assert info.isreg(), (info.name, info.type)
                member = archive.extractfile(info)
                assert member is not None
                got[info.name] = member.read()
    return got


def zip_members(body: bytes) -> dict[str, Optional[bytes]]:
    archive = check_zip(body)
    return {name: None if name.endswith("/") else archive.read(name)
            for name in archive.namelist()}


# --- routes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "content_type", "filename"),
    [
        ("/docs.tar", "application/x-tar", "docs.tar"),
        ("/docs.tar.gz", "application/gzip", "docs.tar.gz"),
        ("/docs/?download&format=tar", "application/x-tar", "docs.tar"),
        ("/docs/?download&format=tar.gz", "application/gzip", "docs.tar.gz"),
        ("/docs/?download&format=TGZ", "application/gzip", "docs.tar.gz"),
        ("/?download&format=tar", "application/x-tar", "share.tar"),
        ("/caf%C3%A9.tar", "application/x-tar", "café.tar"),
        ("/to-docs.tar.gz", "application/gzip", "to-docs.tar.gz"),
    ],
)
def test_folder_downloads_hold_what_the_zip_holds(
    app: TestApp, url: str, content_type: str, filename: str
) -> None:
    response = app.get(url)
    assert response.headers["Content-Type"] == content_type
    assert filename in response.headers["Content-Disposition"].replace("caf%C3%A9", "café")
    zip_url = re.sub(r"&format=[^&]*", "", re.sub(r"\.tar(\.gz)?$", ".zip", url))
    assert members(response.body) == zip_members(app.get(zip_url).body)
    assert SECRET not in response.body and b"HIDDEN-SECRET" not in response.body


def test_plain_tar_is_exactly_sized_and_tar_gz_is_not(root: Path) -> None:
    from webob import Request

    app = ZipApp(root)
    tar = Request.blank("/docs.tar").get_response(app)
    assert tar.content_length == len(tar.body) and tar.headers["Accept-Ranges"] == "bytes"
    tgz = Request.blank("/docs.tar.gz").get_response(app)
    assert tgz.content_length is None and "Accept-Ranges" not in tgz.headers


@pytest.mark.parametrize("fmt", ["tar", "tar.gz"])
def test_selections_by_query_post_and_multipart(app: TestApp, fmt: str) -> None:
    expected = {"a.txt": b"A" * 1000, "b/": None, "b/c.txt": b"C" * 300}
    by_query = app.get(f"/docs/?path=a.txt&path=b&format={fmt}")
    by_post = app.post("/docs/", {"path": ["a.txt", "b"], "format": fmt})
    by_multipart = app.post("/docs/", {"path": ["a.txt", "b"], "format": fmt},
                            content_type="multipart/form-data")
    for response in (by_query, by_post, by_multipart):
        assert members(response.body) == expected
        assert f'filename="docs.{fmt}"' in response.headers["Content-Disposition"]
    assert by_query.body == by_post.body == by_multipart.body
    one = app.post("/", {"path": "README.txt", "format": fmt})
    assert f'filename="README.txt.{fmt}"' in one.headers["Content-Disposition"]


def test_a_post_without_format_is_a_zip_and_the_query_format_is_a_fallback(
    app: TestApp,
) -> None:
    assert app.post("/docs/", {"path": "a.txt"}).content_type == "application/zip"
    assert app.post("/docs/?format=tar", {"path": "a.txt"}).content_type == "application/x-tar"
    posted_wins = app.post("/docs/?format=tar", {"path": "a.txt", "format": "zip"})
    assert posted_wins.content_type == "application/zip"


@pytest.mark.parametrize("value", ["rar", "tar.bz2", "", "zip;tar"])
def test_an_unknown_format_is_a_400_that_echoes_nothing(app: TestApp, value: str) -> None:
    for response in (app.get(f"/docs/?download&format={value}", status=400),
                     app.get(f"/docs/?path=a.txt&format={value}", status=400),
                     app.post("/docs/", {"path": "a.txt", "format": value}, status=400)):
        assert "choose zip, tar or tar.gz" in response.text
        assert not value or value not in response.text


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        ("application/x-tar", "application/x-tar"),
        ("application/gzip", "application/gzip"),
        ("application/x-tar;q=0.5, application/zip", "application/zip"),
        ("text/html;q=0.1, application/x-tar", "application/x-tar"),
        ("*/*", "text/html"),
    ],
)
def test_folder_url_negotiates_the_format(app: TestApp, accept: str, content_type: str) -> None:
    response = app.get("/docs/", headers={"Accept": accept})
    assert response.content_type == content_type
    assert response.headers["Vary"] == "Accept"


def test_a_real_file_with_the_tar_name_wins(root: Path, app: TestApp) -> None:
    (root / "docs.tar").write_bytes(b"a real file")
    (root / "docs.tar.gz").write_bytes(b"another real file")
    assert app.get("/docs.tar").body == b"a real file"
    assert app.get("/docs.tar.gz").body == b"another real file"
    page = app.get("/docs/").text
    assert 'href="/docs/?download&amp;format=tar"' in page
    assert 'href="/docs/?download&amp;format=tar.gz"' in page
    assert 'href="/docs.zip"' in page
    assert members(app.get("/docs/?download&format=tar").body)["docs/a.txt"] == b"A" * 1000


@pytest.mark.parametrize("url", ["/missing.tar", "/README.txt.tar", "/..tar", "/.private.tar",
                                 "/escape.tar.gz", "/docs.TAR"])
def test_tar_names_of_no_visible_folder_are_404(app: TestApp, url: str) -> None:
    response = app.get(url, expect_errors=True)
    assert response.status_int in (403, 404)
    assert SECRET not in response.body and b"HIDDEN-SECRET" not in response.body


def test_the_page_offers_every_format(app: TestApp) -> None:
    page = app.get("/docs/").text
    assert re.search(r'<select name="format" id="format"><option value="zip" selected>zip'
                     r'</option><option value="tar">tar</option><option value="tar.gz">'
                     r"tar.gz</option></select>", page)
    assert 'href="/docs.tar"' in page and 'href="/docs.tar.gz"' in page
    assert ">Download</button>" in page
    root_page = app.get("/").text
    assert 'href="/?download&amp;format=tar"' in root_page


def test_tar_head_range_etag_and_304(app: TestApp) -> None:
    whole = app.get("/docs.tar")
    size, etag = len(whole.body), whole.headers["ETag"]
    head = app.head("/docs.tar")
    assert head.headers["Content-Length"] == str(size) and head.body == b""
    part = app.get("/docs.tar", headers={"Range": "bytes=500-1600"}, status=206)
    assert part.body == whole.body[500:1601]
    assert part.headers["Content-Range"] == f"bytes 500-1600/{size}"
    assert app.get("/docs.tar", headers={"Range": "bytes=1-2", "If-Range": etag},
                   status=206).body == whole.body[1:3]
    assert app.get("/docs.tar", headers={"If-None-Match": etag}, status=304).body == b""
    app.get("/docs.tar", headers={"Range": f"bytes={size}-"}, status=416)
    assert etag != app.get("/docs.zip").headers["ETag"]
    assert etag != app.get("/docs.tar.gz").headers["ETag"]


def test_deflate_compression_leaves_tar_alone(root: Path) -> None:
    stored, deflate = TestApp(ZipApp(root)), TestApp(ZipApp(root, compression="deflate"))
    assert stored.get("/docs.tar").body == deflate.get("/docs.tar").body
    assert stored.get("/docs.tar.gz").body == deflate.get("/docs.tar.gz").body


def test_names_that_are_not_utf8_become_replacement_characters(
    root: Path, app: TestApp
) -> None:
    folder = bytes(root) + b"/caf\xe9"
    Path(os.fsdecode(folder)).mkdir()
    Path(os.fsdecode(folder + b"/men\xfc.txt")).write_bytes(b"latin-1 named")
    response = app.get("/caf%E9.tar")
    assert members(response.body) == {"caf\ufffd/": None,
                                      "caf\ufffd/men\ufffd.txt": b"latin-1 named"}


# --- over waitress: GNU tar from a pipe, and `zipwsgi serve` -----------------------------------


def gnu_tar_from_curl(
    url: str, *curl_args: str, gzip: bool = False
) -> dict[str, Optional[bytes]]:
    """``curl URL | tar -x[z]f -``: GNU tar extracting the download as it arrives."""
    tar, _ = need("tar"), need("curl")
    with scratch_dir() as out:
        args = " ".join(f"'{a}'" for a in curl_args)
        z = "z" if gzip else ""
        command = f"curl -sS --fail {args} '{url}' | {tar} -x{z}f - -C '{out}'"
        result = subprocess.run(["bash", "-o", "pipefail", "-c", command],
                                capture_output=True, timeout=120)
        assert result.returncode == 0 and not result.stderr, result.stderr.decode()
        return _tree(out)


DOCS = {"docs/": None, "docs/a.txt": b"A" * 1000, "docs/b/": None, "docs/b/c.txt": b"C" * 300}
PICKED = {"README.txt": b"hello\n", "café/": None, "café/menu.txt": b"coffee 2.50\ntea 2.00\n"}


def test_gnu_tar_reads_folders_and_selections_from_a_pipe(root: Path, tmp_path: Path) -> None:
    with live_server(ZipApp(root)) as url:
        _compare("docs.tar", gnu_tar_from_curl(url + "docs.tar"), DOCS)
        _compare("docs.tar.gz", gnu_tar_from_curl(url + "docs.tar.gz", gzip=True), DOCS)
        _compare("format=tar", gnu_tar_from_curl(
            url + "?path=README.txt&path=caf%C3%A9&format=tar"), PICKED)
        _compare("POST format=tar.gz", gnu_tar_from_curl(
            url, "-d", "path=README.txt&path=caf%C3%A9&format=tar.gz", gzip=True), PICKED)
        target = tmp_path / "share.tar"
        subprocess.run(["curl", "-sS", "--fail", "-o", str(target), url + "?download&format=tar"],
                       check=True, timeout=60)
    check_all_tar(target, zip_members(TestApp(ZipApp(root)).get("/?download").body))


def test_curl_resumes_a_tar_from_the_app(root: Path, tmp_path: Path) -> None:
    need("curl")
    with live_server(ZipApp(root)) as url:
        whole = tmp_path / "whole.tar"
        subprocess.run(["curl", "-sS", "-o", str(whole), url + "docs.tar"], check=True)
        data = whole.read_bytes()
        for cut in (100, 2048, len(data) - 1):
            part = tmp_path / f"{cut}.tar"
            part.write_bytes(data[:cut])
            result = subprocess.run(["curl", "-sS", "-C", "-", "-o", str(part), "-w",
                                     "%{http_code}", url + "docs.tar"],
                                    capture_output=True, check=True)
            assert result.stdout == b"206" and part.read_bytes() == data


def test_zipwsgi_serve_serves_all_three_formats(root: Path) -> None:
    need("curl")
    with zipwsgi_serve(root) as server:
        page = subprocess.run(["curl", "-sS", server.url + "docs/"], capture_output=True,
                              check=True).stdout.decode()
        assert '<select name="format"' in page and 'href="/docs.tar.gz"' in page
        _compare("serve .tar", gnu_tar_from_curl(server.url + "docs.tar"), DOCS)
        _compare("serve .tar.gz", gnu_tar_from_curl(server.url + "docs.tar.gz", gzip=True),
                 DOCS)
        _compare("serve format=tar.gz", gnu_tar_from_curl(
            server.url + "docs/", "-d", "path=a.txt&format=tar.gz", gzip=True),
            {"a.txt": b"A" * 1000})
        zipped = subprocess.run(["curl", "-sS", server.url + "docs.zip"], capture_output=True,
                                check=True).stdout
        assert zip_members(zipped)["docs/a.txt"] == b"A" * 1000
