"""ZipApp in a real browser: headless Chromium on a live waitress server.

The issue's acceptance test: open a folder's page, tick two entries, press "Download as
zip", and get a zip holding exactly those two. Also: the same without JavaScript, the
"Download whole folder" link after browsing into a folder, a non-ASCII download name, and
the app mounted under a prefix. ``open_page`` fails any test whose page logs an error
(CSP violations included) or fetches anything from elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from browser import (
    DOWNLOAD_SELECTED,
    download,
    download_selection,
    download_whole_folder,
    live_server,
    open_page,
    tick,
)
from share_tree import check_zip, make_share

from zipwsgi import ZipApp

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_share(tmp_path_factory.mktemp("browser"))


@pytest.fixture(scope="module")
def url(root: Path) -> Iterator[str]:
    with live_server(ZipApp(root)) as base:
        yield base


def top_level(path: Path) -> set[str]:
    """The first path segment of every entry: what the person ticked."""
    return {name.split("/")[0] for name in check_zip(path.read_bytes()).namelist()}


def test_tick_two_entries_and_download(chromium: Browser, url: str, tmp_path: Path) -> None:
    saved = download_selection(chromium, url, ["README.txt", "café"], tmp_path)
    assert saved.name == "share.zip"
    archive = check_zip(saved.read_bytes())
    assert archive.namelist() == ["README.txt", "café/", "café/menu.txt"]
    assert archive.read("README.txt") == b"hello\n"


def test_tick_two_in_a_subfolder_without_javascript(
    chromium: Browser, url: str, tmp_path: Path
) -> None:
    saved = download_selection(
        chromium, url + "docs/", ["a.txt", "b"], tmp_path, java_script_enabled=False
    )
    assert saved.name == "docs.zip"
    assert top_level(saved) == {"a.txt", "b"}
    assert check_zip(saved.read_bytes()).read("b/c.txt") == b"C" * 300


def test_browse_into_a_folder_and_download_it_whole(
    chromium: Browser, url: str, tmp_path: Path
) -> None:
    with open_page(chromium) as page:
        page.goto(url)
        page.get_by_role("link", name="docs/", exact=True).click()
        page.wait_for_url(url + "docs/")
        assert page.title() == "docs"
        link = page.get_by_role("link", name="Download whole folder")
        saved = download(page, link.click, tmp_path)
    assert saved.name == "docs.zip"
    assert top_level(saved) == {"docs"}


def test_non_ascii_folder_downloads_under_its_name(
    chromium: Browser, url: str, tmp_path: Path
) -> None:
    saved = download_whole_folder(chromium, url + "caf%C3%A9/", tmp_path)
    assert saved.name == "café.zip"
    assert check_zip(saved.read_bytes()).namelist() == ["café/", "café/menu.txt"]


def test_mounted_under_a_prefix(chromium: Browser, root: Path, tmp_path: Path) -> None:
    from werkzeug.middleware.dispatcher import DispatcherMiddleware
    from werkzeug.wrappers import Response

    app = DispatcherMiddleware(Response("not here", status=404), {"/share": ZipApp(root)})
    with live_server(app) as base, open_page(chromium) as page:
        page.goto(base + "share")  # redirected to the folder URL
        page.wait_for_url(base + "share/")
        page.get_by_role("link", name="docs/", exact=True).click()
        page.wait_for_url(base + "share/docs/")
        tick(page, ["a.txt", "b"])
        button = page.get_by_role("button", name=DOWNLOAD_SELECTED)
        saved = download(page, button.click, tmp_path)
    assert top_level(saved) == {"a.txt", "b"}
