"""The standalone app's routes, in-process through webtest.

Every zip a route returns is opened by Python's zipfile and tested by ``unzip -t``.
Confinement attacks have their own module (test_app_confinement.py); the real server,
the command line and the Flask example are in test_app_server.py.
"""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path

import pytest
from share_tree import check_zip, file_names
from webtest import TestApp

from zipwsgi import ZipApp
from zipwsgi.app.listing import LISTING_CSP


def hrefs(html: str) -> list[str]:
    return [h for h in re.findall(r'href="([^"#][^"]*)"', html)]


def ticked_names(html: str) -> list[str]:
    return re.findall(r'<input type="checkbox" name="path" value="([^"]*)"', html)


# --- the folder page ---------------------------------------------------------------------


def test_root_page_lists_visible_entries(app: TestApp) -> None:
    page = app.get("/")
    assert page.content_type == "text/html"
    assert page.headers["Content-Security-Policy"].startswith(LISTING_CSP)
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert "Accept" in page.headers["Vary"]
    # Folders first, then files; hidden names, links out of the root and links to
    # hidden targets are absent.
    assert ticked_names(page.text) == ["café", "docs", "empty", "to-docs", "README.txt"]
    links = hrefs(page.text)
    for gone in (".private", "escape", "leak.txt", "abs", "peek", "secret"):
        assert gone not in page.text.replace("position: absolute", "")
        assert not [link for link in links if gone in link]


def test_page_links_sizes_and_form(app: TestApp) -> None:
    page = app.get("/docs/")
    assert ticked_names(page.text) == ["b", "a.txt"]  # .env hidden, deep-escape leaves
    links = hrefs(page.text)
    assert "/docs/b/" in links and "/docs/a.txt" in links
    assert 'action="/docs/"' in page.text
    assert 'href="/docs.zip"' in page.text  # "Download whole folder"
    assert 'data-size="300"' in page.text  # b/: the recursive total
    assert 'data-size="1000"' in page.text
    # Breadcrumbs: the root links home, the current folder is not a link.
    assert '<li><a href="/">share</a></li>' in page.text
    assert '<span aria-current="page">docs</span>' in page.text


def test_nested_page_breadcrumbs(app: TestApp) -> None:
    page = app.get("/docs/b/")
    assert '<a href="/">share</a>' in page.text
    assert '<a href="/docs/">docs</a>' in page.text
    assert '<span aria-current="page">b</span>' in page.text
    assert ticked_names(page.text) == ["c.txt"]


def test_folder_size_counts_everything_the_zip_holds(app: TestApp) -> None:
    page = app.get("/")
    # docs/ = a.txt + b/c.txt; .env is hidden and deep-escape leaves the folder.
    assert re.search(r'value="docs" data-size="1300"', page.text)
    archive = check_zip(app.get("/docs.zip").body)
    assert sum(i.file_size for i in archive.infolist()) == 1300


def test_empty_folder_page(app: TestApp) -> None:
    page = app.get("/empty/")
    assert "This folder is empty." in page.text


def test_non_ascii_names_are_percent_encoded_in_links(app: TestApp) -> None:
    page = app.get("/")
    assert 'href="/caf%C3%A9/"' in page.text
    assert app.get("/caf%C3%A9/").status_int == 200


def test_zip_link_falls_back_when_a_file_takes_the_name(root: Path, app: TestApp) -> None:
    (root / "docs.zip").write_bytes(b"not the folder")
    page = app.get("/docs/")
    assert 'href="/docs/?download"' in page.text
    assert app.get("/docs.zip").body == b"not the folder"  # the real file wins
    assert file_names(check_zip(app.get("/docs/?download").body)) == ["docs/a.txt", "docs/b/c.txt"]


def test_root_page_downloads_with_query(app: TestApp) -> None:
    assert 'href="/?download"' in app.get("/").text


def test_head_of_page(app: TestApp) -> None:
    full = app.get("/docs/")
    head = app.head("/docs/")
    assert head.body == b""
    assert head.headers["Content-Length"] == full.headers["Content-Length"]


# --- redirects, files, errors ------------------------------------------------------------


def test_folder_without_slash_redirects(app: TestApp) -> None:
    response = app.get("/docs", status=301)
    assert response.location == "http://localhost/docs/"
    response = app.get("/docs/b?x=1", status=301)
    assert response.location == "http://localhost/docs/b/?x=1"


def test_redirect_cannot_point_to_another_host(app: TestApp) -> None:
    """``//evil.example/x`` must not turn into ``Location: //evil.example/x/``."""
    (Path(app.app.root.path) / "evil.example").mkdir()
    for path in ("//evil.example", "///evil.example", "/./evil.example", "//evil.example/."):
        response = app.get("/", extra_environ={"PATH_INFO": path}, status=301)
        assert response.location == "http://localhost/evil.example/"


def test_plain_file_is_served(app: TestApp) -> None:
    response = app.get("/README.txt")
    assert response.body == b"hello\n"
    assert response.content_type == "text/plain"
    assert response.headers["Content-Security-Policy"] == "sandbox"
    assert response.headers["Accept-Ranges"] == "bytes"
    ranged = app.get("/docs/a.txt", headers={"Range": "bytes=10-19"}, status=206)
    assert ranged.body == b"A" * 10
    assert ranged.headers["Content-Range"] == "bytes 10-19/1000"
    again = app.get("/README.txt", headers={"If-None-Match": response.headers["ETag"]}, status=304)
    assert again.body == b""
    assert app.head("/README.txt").headers["Content-Length"] == "6"


def test_compressed_file_names_are_not_sent_as_content_encoding(root: Path, app: TestApp) -> None:
    (root / "logs.tar.gz").write_bytes(b"\x1f\x8b fake")
    response = app.get("/logs.tar.gz")
    assert "Content-Encoding" not in response.headers
    assert response.content_type == "application/octet-stream"


def test_file_with_a_slash_is_not_a_folder(app: TestApp) -> None:
    app.get("/README.txt/", status=404)


@pytest.mark.parametrize("path", ["/nope", "/nope/", "/nope.zip", "/docs/nope.txt", "/README.zip"])
def test_missing(app: TestApp, path: str) -> None:
    response = app.get(path, status=404)
    assert response.content_type == "text/html"
    assert "404 Not Found" in response.text
    assert "Traceback" not in response.text
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods(app: TestApp, method: str) -> None:
    response = app.request("/docs/", method=method, status=405)
    assert response.headers["Allow"] == "GET, HEAD, POST"


def test_post_to_a_file(app: TestApp) -> None:
    response = app.post("/README.txt", {"path": "x"}, status=405)
    assert response.headers["Allow"] == "GET, HEAD"


def test_error_page_links_home_under_script_name(root: Path) -> None:
    app = TestApp(ZipApp(root), extra_environ={"SCRIPT_NAME": "/files"})
    response = app.get("/nope", status=404)
    assert 'href="/files/"' in response.text


def test_unexpected_failure_is_a_plain_500(
    app: TestApp, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object, **kwargs: object) -> str:
        raise RuntimeError("boom /secret/path")

    monkeypatch.setattr("zipwsgi.app.render_listing", broken)
    response = app.get("/docs/", status=500)
    assert "boom" not in response.text and "Traceback" not in response.text
    assert "boom" in caplog.text


# --- whole-folder zips --------------------------------------------------------------------


def test_folder_zip(app: TestApp) -> None:
    response = app.get("/docs.zip")
    assert response.content_type == "application/zip"
    assert response.headers["Content-Disposition"] == 'attachment; filename="docs.zip"'
    assert int(response.headers["Content-Length"]) == len(response.body)
    archive = check_zip(response.body)
    assert archive.namelist() == ["docs/", "docs/a.txt", "docs/b/", "docs/b/c.txt"]
    assert archive.read("docs/b/c.txt") == b"C" * 300


def test_root_zip(app: TestApp) -> None:
    response = app.get("/?download")
    assert response.headers["Content-Disposition"] == 'attachment; filename="share.zip"'
    names = check_zip(response.body).namelist()
    assert "share/README.txt" in names and "share/café/menu.txt" in names
    # The link into the root is followed, links out and hidden things are not.
    assert "share/to-docs/a.txt" in names
    assert not [n for n in names if "private" in n or "peek" in n or "escape" in n]


def test_folder_zip_by_accept_header(app: TestApp) -> None:
    response = app.get("/docs/", headers={"Accept": "application/zip"})
    assert response.content_type == "application/zip"
    assert "Accept" in response.headers["Vary"]
    assert check_zip(response.body).namelist()[0] == "docs/"
    # Browsers (and curl's default */*) get the page.
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    assert app.get("/docs/", headers={"Accept": browser}).content_type == "text/html"
    assert app.get("/docs/", headers={"Accept": "*/*"}).content_type == "text/html"


def test_non_ascii_folder_name_gets_rfc6266_disposition(app: TestApp) -> None:
    response = app.get("/caf%C3%A9.zip")
    assert response.headers["Content-Disposition"] == (
        "attachment; filename=\"cafe.zip\"; filename*=UTF-8''caf%C3%A9.zip"
    )
    assert check_zip(response.body).namelist() == ["café/", "café/menu.txt"]


def test_link_to_a_folder_inside_the_root_downloads_under_its_own_name(app: TestApp) -> None:
    response = app.get("/to-docs.zip")
    assert 'filename="to-docs.zip"' in response.headers["Content-Disposition"]
    assert file_names(check_zip(response.body)) == ["to-docs/a.txt", "to-docs/b/c.txt"]


def test_empty_folder_zip(app: TestApp) -> None:
    assert check_zip(app.get("/empty.zip").body).namelist() == ["empty/"]


def test_deflate(root: Path) -> None:
    app = TestApp(ZipApp(root, compression="deflate"))
    response = app.get("/docs.zip")
    archive = check_zip(response.body)
    assert {i.compress_type for i in archive.infolist() if not i.is_dir()} == {zipfile.ZIP_DEFLATED}
    assert archive.read("docs/a.txt") == b"A" * 1000
    assert len(response.body) < 1300


def test_unknown_compression_is_refused(root: Path) -> None:
    with pytest.raises(ValueError, match="compression"):
        ZipApp(root, compression="bzip2")


def test_root_must_be_a_folder(root: Path) -> None:
    with pytest.raises(NotADirectoryError):
        ZipApp(root / "README.txt")


def test_show_hidden(root: Path) -> None:
    app = TestApp(ZipApp(root, show_hidden=True))
    assert ".private" in ticked_names(app.get("/").text)
    assert ".env" in ticked_names(app.get("/docs/").text)
    assert "docs/.env" in check_zip(app.get("/docs.zip").body).namelist()
    assert app.get("/.private/key.txt").status_int == 200


# --- HTTP semantics through archive_response --------------------------------------------


def test_head_range_etag_and_304(app: TestApp) -> None:
    full = app.get("/docs.zip")
    body, etag = full.body, full.headers["ETag"]
    assert full.headers["Accept-Ranges"] == "bytes" and "Last-Modified" in full.headers

    head = app.head("/docs.zip")
    assert head.body == b"" and head.headers["Content-Length"] == str(len(body))
    assert head.headers["ETag"] == etag

    part = app.get("/docs.zip", headers={"Range": "bytes=100-599"}, status=206)
    assert part.body == body[100:600]
    assert part.headers["Content-Range"] == f"bytes 100-599/{len(body)}"
    tail = app.get("/docs.zip", headers={"Range": "bytes=-50"}, status=206)
    assert tail.body == body[-50:]

    resumed = app.get("/docs.zip", headers={"Range": "bytes=700-", "If-Range": etag}, status=206)
    assert resumed.body == body[700:]
    stale = app.get("/docs.zip", headers={"Range": "bytes=700-", "If-Range": '"old"'})
    assert stale.status_int == 200 and stale.body == body

    app.get("/docs.zip", headers={"If-None-Match": etag}, status=304)
    beyond = app.get("/docs.zip", headers={"Range": f"bytes={len(body) + 10}-"}, status=416)
    assert beyond.headers["Content-Range"] == f"bytes */{len(body)}"


def test_etag_changes_with_the_folder(root: Path, app: TestApp) -> None:
    before = app.get("/docs.zip").headers["ETag"]
    (root / "docs" / "new.txt").write_bytes(b"new")
    after = app.get("/docs.zip")
    assert after.headers["ETag"] != before
    assert "docs/new.txt" in check_zip(after.body).namelist()


def test_deflated_zip_ranges_only_when_its_length_is_known(root: Path) -> None:
    """The engine may or may not predict a deflated size; either way HTTP stays honest."""
    app = TestApp(ZipApp(root, compression="deflate"))
    full = app.get("/docs.zip")
    check_zip(full.body)
    response = app.get("/docs.zip", headers={"Range": "bytes=0-9"})
    if full.headers.get("Accept-Ranges") == "bytes":
        assert int(full.headers["Content-Length"]) == len(full.body)
        assert response.status_int == 206 and response.body == full.body[:10]
    else:
        assert response.status_int == 200 and response.body == full.body


# --- selections ---------------------------------------------------------------------------


def test_selection_by_query(app: TestApp) -> None:
    response = app.get("/docs/?path=a.txt&path=b/c.txt")
    assert response.headers["Content-Disposition"] == 'attachment; filename="docs.zip"'
    assert check_zip(response.body).namelist() == ["a.txt", "b/c.txt"]


def test_selection_by_post_form(app: TestApp) -> None:
    response = app.post("/", {"path": ["README.txt", "docs"]})
    archive = check_zip(response.body)
    assert archive.namelist() == ["README.txt", "docs/", "docs/a.txt", "docs/b/", "docs/b/c.txt"]
    assert 'filename="share.zip"' in response.headers["Content-Disposition"]


def test_selection_by_multipart_post(app: TestApp) -> None:
    response = app.post("/docs/", {"path": "a.txt"}, content_type="multipart/form-data")
    assert check_zip(response.body).namelist() == ["a.txt"]


def test_selection_of_one_entry_is_named_after_it(app: TestApp) -> None:
    response = app.get("/?path=caf%C3%A9")
    assert "filename*=UTF-8''caf%C3%A9.zip" in response.headers["Content-Disposition"]
    assert check_zip(response.body).namelist() == ["café/", "café/menu.txt"]


def test_selection_overlaps_and_repeats_are_merged(app: TestApp) -> None:
    response = app.get("/docs/?path=b&path=b/c.txt&path=./b/&path=a.txt&path=a.txt")
    assert check_zip(response.body).namelist() == ["a.txt", "b/", "b/c.txt"]


def test_selection_supports_head_range_and_304(app: TestApp) -> None:
    url = "/docs/?path=a.txt&path=b"
    full = app.get(url)
    assert app.head(url).headers["Content-Length"] == str(len(full.body))
    part = app.get(url, headers={"Range": "bytes=5-54"}, status=206)
    assert part.body == full.body[5:55]
    app.get(url, headers={"If-None-Match": full.headers["ETag"]}, status=304)


def test_post_selection_equals_get_selection(app: TestApp) -> None:
    by_get = app.get("/docs/?path=a.txt&path=b").body
    by_post = app.post("/docs/", [("path", "a.txt"), ("path", "b")]).body
    assert by_get == by_post


@pytest.mark.parametrize("body", [{}, {"other": "x"}, {"path": ""}, {"path": "/"}])
def test_empty_selection(app: TestApp, body: dict[str, str]) -> None:
    response = app.post("/docs/", body, status=400)
    assert "select" in response.text.lower()


def test_selection_of_missing_entry(app: TestApp) -> None:
    app.get("/docs/?path=a.txt&path=missing.txt", status=404)


def test_selection_limits(root: Path) -> None:
    app = TestApp(ZipApp(root, max_selection=2, max_form_bytes=100))
    app.get("/docs/?path=a.txt&path=b&path=b/c.txt", status=413)
    app.post("/docs/", {"path": "a.txt", "padding": "x" * 200}, status=413)
    app.post("/docs/", b"{}", content_type="application/json", status=415)


def test_selection_keeps_non_ascii_names(root: Path, app: TestApp) -> None:
    (root / "docs" / "Отчёт 1.txt").write_bytes(b"report")
    response = app.post("/docs/", {"path": "Отчёт 1.txt"})
    assert check_zip(response.body).namelist() == ["Отчёт 1.txt"]
    assert "filename*=UTF-8''%D0%9E%D1%82%D1%87%D1%91%D1%82%201.txt.zip" in (
        response.headers["Content-Disposition"]
    )


def test_page_form_posts_what_it_lists(app: TestApp) -> None:
    """The form's checkbox values are names the selection route accepts, as posted."""
    page = app.get("/")
    form = page.forms["listing"]
    for box in form.fields["path"]:
        box.checked = True
    response = form.submit()
    names = check_zip(response.body).namelist()
    assert {n.split("/")[0] for n in names} == set(ticked_names(page.text))


# --- mounting under SCRIPT_NAME ----------------------------------------------------------


def test_mounted_under_a_prefix(root: Path) -> None:
    app = TestApp(ZipApp(root), extra_environ={"SCRIPT_NAME": "/shared files"})
    page = app.get("/docs/")
    assert 'action="/shared%20files/docs/"' in page.text
    assert 'href="/shared%20files/docs.zip"' in page.text
    assert 'href="/shared%20files/docs/b/"' in page.text
    assert '<a href="/shared%20files/">share</a>' in page.text
    response = app.get("/docs", status=301)
    assert response.location == "http://localhost/shared%20files/docs/"
    assert check_zip(app.get("/docs.zip").body).namelist()[0] == "docs/"
    assert 'href="/shared%20files/?download"' in app.get("/").text


def test_mount_point_without_slash_redirects(root: Path) -> None:
    app = ZipApp(root)
    environ = {"SCRIPT_NAME": "/files", "PATH_INFO": ""}
    response = TestApp(app).get("/", extra_environ=environ, status=301)
    assert response.location == "http://localhost/files/"


# --- awkward trees ------------------------------------------------------------------------


def test_names_that_are_not_utf8(root: Path, app: TestApp) -> None:
    """Linux names are bytes; one that is not UTF-8 still lists, serves and zips."""
    folder = bytes(root) + b"/caf\xe9"
    Path(os.fsdecode(folder)).mkdir()
    Path(os.fsdecode(folder + b"/men\xfc.txt")).write_bytes(b"latin-1 named")
    page = app.get("/")
    assert 'href="/caf%E9/"' in page.text
    assert 'href="/caf%E9/men%FC.txt"' in app.get("/caf%E9/").text
    assert app.get("/caf%E9/men%FC.txt").body == b"latin-1 named"
    response = app.get("/caf%E9.zip")
    assert "caf%EF%BF%BD.zip" in response.headers["Content-Disposition"]
    archive = check_zip(response.body)
    assert archive.namelist() == ["caf\ufffd/", "caf\ufffd/men\ufffd.txt"]
    assert archive.read("caf\ufffd/men\ufffd.txt") == b"latin-1 named"


def test_unreadable_entries_are_left_out(
    root: Path, app: TestApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(Simulated with os.access, and with the mode-bit shortcut that spares most files
    an access() call: the suite may run as root, which can read anything.)"""
    locked = str(root / "docs" / "a.txt")
    real_access = os.access
    monkeypatch.setattr(
        "zipwsgi.paths.walk.os.access",
        lambda path, mode: path != locked and real_access(path, mode),
    )
    monkeypatch.setattr("zipwsgi.paths.walk.surely_readable", lambda st: False)
    assert ticked_names(app.get("/docs/").text) == ["b"]
    assert file_names(check_zip(app.get("/docs.zip").body)) == ["docs/b/c.txt"]


def test_selected_folder_holds_what_its_row_counted(root: Path, app: TestApp) -> None:
    """docs/b/up.txt -> ../a.txt leaves b but stays in docs: docs' page counts it in b's
    size, so a selection made on docs' page includes it too."""
    os.symlink("../a.txt", root / "docs" / "b" / "up.txt")
    page = app.get("/docs/")
    assert 'value="b" data-size="1300"' in page.text
    picked = check_zip(app.post("/docs/", {"path": "b"}).body)
    assert sum(i.file_size for i in picked.infolist()) == 1300
    own = check_zip(app.get("/docs/b.zip").body)  # b's own zip: the link leaves b
    assert file_names(own) == ["b/c.txt"]


def test_symlink_loop_ends(root: Path, app: TestApp) -> None:
    os.symlink("..", root / "docs" / "b" / "up")
    os.symlink("loop", root / "loop")
    names = check_zip(app.get("/?download").body).namelist()
    assert not [n for n in names if "/up/" in n or "loop" in n]
    app.get("/loop/", status=404)


def test_path_info_that_breaks_pep3333(root: Path) -> None:
    app = TestApp(ZipApp(root), lint=False)
    response = app.get("/", extra_environ={"PATH_INFO": "/\u0416"}, status=400)
    assert "malformed" in response.text
